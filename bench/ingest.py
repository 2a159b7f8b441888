"""Capture ingest against bare SQLite, pair by pair in this run, plus a real-time capture's
memory and commit latency.

  1. real time (first, while this process is small: wait4's ru_maxrss of a child counts the
     memory of the fork before its exec, VmHWM does not): see 3 below.
  2. pairs (alternating order, --pairs of them), each on a fresh database, the same blobs
     (--size-mb of 256 KiB cu8 chunks from a pool of 16 random ones):
     a. bare SQLite: one connection, the hot DB's pragmas (64 KiB pages, WAL,
        synchronous=NORMAL, journal_size_limit, cache_size, SQLite's default in-line
        autocheckpoint), the hot DB's chunks table, the minimal loop: BEGIN IMMEDIATE,
        executemany INSERT of one batch (16 chunks = 4 MiB, the service's batch), COMMIT;
        then close (the final checkpoint);
     b. the product: a CaptureService fed the same chunks by an in-memory unpaced source
        (the reader thread, the ring, the writer thread, HotWriter with its retention check,
        CRC-32s, telemetry and checkpoints), from run() to its return (hot DB closed).
     MB/s of each (bytes / wall time, the final checkpoint included), b/a per pair, median;
     an untimed os.sync() before each run, so neither pays for the other's writeback.
  3. real time: `sdr-assets capture --source 'synthetic://?seed=1&rate=3200000'
     --duration-s N` in a subprocess (this file with --probe: the CLI's own main, plus a hook
     that records every chunk commit's latency and the process's VmHWM at exit): peak RSS
     (VmHWM; cross-checked with wait4's ru_maxrss), commit latency p50/p99/max over every
     commit, samples received / stored / lost, the checkpoints from the hot DB's telemetry,
     and which heavy modules the process imported.
Targets: b/a median >= 0.9; peak RSS <= 150 MB; commit p99 <= 50 ms; 0 samples lost.
Exit 0 regardless (the table says MISS).

    PYTHONPATH=$PWD .venv/bin/python bench/ingest.py [--size-mb 768] [--pairs 7]
        [--realtime-s 60] [--quick] [--dir DIR] [--skip-pairs] [--skip-realtime]
"""

import argparse
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHUNK_BYTES = 256 * 1024  # the sources' default chunk: 128 Ki samples
BATCH_CHUNKS = 16  # 4 MiB: the capture service's batch (DEFAULT_BATCH_MAX_BYTES, checked in main)
POOL = 16
RATE_HZ = 3_200_000.0
FC_HZ = 433.92e6
HEAVY = ("numpy", "scipy", "torch", "dagster", "PIL", "ultralytics", "pandas", "matplotlib")
SUMMARY_PREFIX = "capture "


def blob_pool(n: int = POOL) -> list[bytes]:
    rng = random.Random(1)
    return [rng.randbytes(CHUNK_BYTES) for _ in range(n)]


def pct(xs: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(round(q / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


# ---- (a) bare SQLite ------------------------------------------------------------------------
def bare_sqlite(path: Path, pool: list[bytes], n_chunks: int) -> float:
    """The minimal insert loop; seconds from connect to close."""
    from sdr_assets.store.db import CACHE_SIZE_KIB, JOURNAL_SIZE_LIMIT_BYTES, PAGE_SIZE

    t0 = time.perf_counter()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT_BYTES}")
    conn.execute(f"PRAGMA cache_size=-{CACHE_SIZE_KIB}")
    conn.execute("PRAGMA secure_delete=OFF")
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.execute(
        "CREATE TABLE chunks (seq INTEGER PRIMARY KEY, capture_id INTEGER NOT NULL, t_start_ns INTEGER NOT NULL, "
        "sample_rate_hz REAL NOT NULL, center_freq_hz REAL NOT NULL, gain_db REAL, n_samples INTEGER NOT NULL, "
        "iq BLOB NOT NULL, iq_crc32 INTEGER)"
    )
    conn.execute("CREATE INDEX chunks_t_start ON chunks (t_start_ns)")
    n_samples = CHUNK_BYTES // 2
    dt_ns = int(n_samples / RATE_HZ * 1e9)
    t_ns = time.time_ns() - 86400 * 10**9
    for i0 in range(0, n_chunks, BATCH_CHUNKS):
        rows = [
            (i + 1, 1, t_ns + i * dt_ns, RATE_HZ, FC_HZ, None, n_samples, pool[i % len(pool)])
            for i in range(i0, min(n_chunks, i0 + BATCH_CHUNKS))
        ]
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO chunks (seq, capture_id, t_start_ns, sample_rate_hz, center_freq_hz, gain_db, n_samples, iq) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.execute("COMMIT")
    conn.close()
    return time.perf_counter() - t0


# ---- (b) the product's capture path -----------------------------------------------------------
def capture_service(path: Path, pool: list[bytes], n_chunks: int) -> tuple[float, dict]:
    """The real CaptureService fed the same chunks, unpaced; seconds from run() to its return."""
    from sdr_assets.capture.base import Source
    from sdr_assets.capture.service import CaptureService
    from sdr_assets.records import Chunk, SourceInfo

    class MemorySource(Source):
        def open(self):
            return SourceInfo("memory://bench", "file", FC_HZ, RATE_HZ, realtime=False)

        def expected_samples(self):
            return n_chunks * CHUNK_BYTES // 2

        def events(self):
            dt_ns = int(CHUNK_BYTES // 2 / RATE_HZ * 1e9)
            t_ns = time.time_ns() - 86400 * 10**9  # in the past: never held for the wall clock
            for i in range(n_chunks):
                if self._stopping:
                    return
                yield Chunk(t_ns + i * dt_ns, FC_HZ, RATE_HZ, None, pool[i % len(pool)])

    svc = CaptureService(MemorySource(), path, cap_bytes=4 * n_chunks * CHUNK_BYTES)
    t0 = time.perf_counter()
    summary = svc.run()
    wall_s = time.perf_counter() - t0
    if summary.samples_stored != n_chunks * CHUNK_BYTES // 2 or summary.samples_lost:
        raise SystemExit(f"the capture lost samples: {summary.line()}")
    return wall_s, {"lost": sum(summary.samples_lost.values())}


def run_pairs(tmp: Path, size_mb: float, n_pairs: int) -> dict:
    pool = blob_pool()
    n_chunks = max(BATCH_CHUNKS, int(size_mb * 1e6 // CHUNK_BYTES))
    n_bytes = n_chunks * CHUNK_BYTES
    pairs = []
    os.sync()
    for k in range(n_pairs):
        result = {}
        order = ("bare", "capture") if k % 2 == 0 else ("capture", "bare")
        for which in order:
            db = tmp / f"{which}{k}.db"
            if which == "bare":
                wall_s = bare_sqlite(db, pool, n_chunks)
            else:
                wall_s, _ = capture_service(db, pool, n_chunks)
            result[which] = n_bytes / wall_s / 1e6
            for p in tmp.glob(f"{which}{k}.db*"):
                p.unlink()
            os.sync()  # (untimed) the next run starts with the disk's queue empty, whichever ran first
        result["ratio"] = result["capture"] / result["bare"]
        result["order"] = "/".join(order)
        pairs.append(result)
        print(
            f"  pair {k + 1} ({result['order']}): bare {result['bare']:.0f} MB/s, "
            f"capture {result['capture']:.0f} MB/s, ratio {result['ratio']:.2f}",
            flush=True,
        )
    return {
        "n_chunks": n_chunks,
        "bytes": n_bytes,
        "pairs": pairs,
        "median_ratio": statistics.median(p["ratio"] for p in pairs),
        "median_bare_mb_s": statistics.median(p["bare"] for p in pairs),
        "median_capture_mb_s": statistics.median(p["capture"] for p in pairs),
    }


# ---- real time ---------------------------------------------------------------------------------
def probe(argv: list[str]) -> None:
    """Runs in the capture subprocess: the CLI's main with a commit-latency hook."""
    import atexit
    import re

    from sdr_assets.capture import telemetry_sampler

    out = Path(os.environ["BENCH_PROBE_OUT"])
    commits: list[float] = []
    note = telemetry_sampler.TelemetrySampler.note_commit

    def noting(self, commit_s, n_bytes):
        commits.append(commit_s)
        note(self, commit_s, n_bytes)

    telemetry_sampler.TelemetrySampler.note_commit = noting

    def dump():
        status = Path("/proc/self/status").read_text()
        hwm_kb = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))
        top = sorted({m.split(".")[0] for m in sys.modules})
        out.write_text(json.dumps({"commit_s": commits, "vm_hwm_kb": hwm_kb, "modules": top}))

    atexit.register(dump)
    from sdr_assets.cli import main

    main(argv, prog_name="sdr-assets")


def telemetry(hot: Path) -> dict[str, tuple[float, float, float]]:
    """{metric: (min, avg, max)} of the newest capture's telemetry."""
    conn = sqlite3.connect(hot.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT metric, min(value), avg(value), max(value) FROM telemetry "
            "WHERE capture_id = (SELECT max(capture_id) FROM captures) GROUP BY metric"
        )
        return {r[0]: r[1:] for r in rows}
    finally:
        conn.close()


def run_realtime(tmp: Path, seconds: float) -> dict:
    import re

    home = tmp / "home_rt"
    home.mkdir()
    out = tmp / "probe.json"
    env = dict(
        os.environ, SDR_ASSETS_HOME=str(home), PYTHONUNBUFFERED="1", PYTHONPATH=str(REPO), BENCH_PROBE_OUT=str(out)
    )
    cmd = [sys.executable, __file__, "--probe", "capture", "--source", "synthetic://?seed=1&rate=3200000"]
    cmd += ["--duration-s", f"{seconds:g}", "--partition-minutes", "1"]
    log = tmp / "rt.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=fh, env=env, cwd=REPO)
    polled = [0]

    def poll():  # VmHWM as the parent sees it, until the child ends
        status = Path(f"/proc/{proc.pid}/status")
        while True:
            try:
                m = re.search(r"VmHWM:\s+(\d+)", status.read_text())
            except OSError:
                return
            if m is None:
                return
            polled[0] = max(polled[0], int(m.group(1)))
            time.sleep(0.2)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    poller.join(timeout=2)
    text = log.read_text()
    summary = [ln for ln in text.splitlines() if ln.startswith(SUMMARY_PREFIX) and " ended " in ln]
    if code != 0 or not summary or not out.exists():
        raise SystemExit(f"capture failed (exit {code}):\n{text}")
    m = re.search(r"received (\d+) samples, stored (\d+) \(([\d.]+) MB\), lost (\d+)", summary[-1])
    probe_out = json.loads(out.read_text())
    ms = [s * 1000 for s in probe_out["commit_s"]]
    tel = telemetry(home / "hot.db")
    return {
        "seconds": seconds,
        "summary": summary[-1],
        "received": int(m.group(1)),
        "stored": int(m.group(2)),
        "lost": int(m.group(4)),
        "vm_hwm_mb": probe_out["vm_hwm_kb"] * 1024 / 1e6,
        "polled_vm_hwm_mb": polled[0] * 1024 / 1e6,
        "ru_maxrss_mb": usage.ru_maxrss * 1024 / 1e6,
        "commits": len(ms),
        "commit_ms_p50": pct(ms, 50),
        "commit_ms_p99": pct(ms, 99),
        "commit_ms_max": max(ms),
        "heavy_modules": [m for m in probe_out["modules"] if m in HEAVY],
        "telemetry": {
            k: tel[k]
            for k in (
                "checkpoints",
                "checkpoint_ms_max",
                "wal_mb",
                "writer_parks",
                "writer_parked_ms_max",
                "ring_high_water",
                "cpu_percent",
                "rss_mb",
                "commit_ms_p99",
            )
            if k in tel
        },
        "log": text.strip().splitlines()[-6:],
    }


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISS"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mb", type=float, default=768.0, help="bytes each run of a pair writes (MB, 1e6)")
    ap.add_argument("--pairs", type=int, default=7, help="pairs of (bare, capture) runs, alternating order")
    ap.add_argument("--realtime-s", type=float, default=60.0, help="length of the 3.2 MS/s run")
    ap.add_argument("--quick", action="store_true", help="128 MB, 2 pairs and 15 s, for development")
    ap.add_argument("--skip-pairs", action="store_true")
    ap.add_argument("--skip-realtime", action="store_true")
    ap.add_argument("--dir", default=None, help="where the temporary files go (default: $TMPDIR)")
    args = ap.parse_args()
    if args.quick:
        args.size_mb, args.pairs, args.realtime_s = 128.0, 2, 15.0
    sys.path.insert(0, str(REPO))
    from sdr_assets.capture.service import DEFAULT_BATCH_MAX_BYTES

    if BATCH_CHUNKS * CHUNK_BYTES != DEFAULT_BATCH_MAX_BYTES:
        raise SystemExit("bench/ingest.py: BATCH_CHUNKS no longer matches the service's batch; update it")
    results: dict = {"args": vars(args)}
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_ingest_", dir=args.dir) as tmp:
        tmp = Path(tmp)
        if not args.skip_realtime:
            print(f"real time: synthetic 3.2 MS/s for {args.realtime_s:g} s", flush=True)
            rt = results["realtime"] = run_realtime(tmp, args.realtime_s)
            tel = rt["telemetry"]
            expected = RATE_HZ * args.realtime_s
            ckpt = (
                f"{tel['checkpoints'][1] * args.realtime_s:.0f} off the commit path, longest "
                f"{tel['checkpoint_ms_max'][2]:.0f} ms, WAL <= {tel['wal_mb'][2]:.0f} MB; writer parked "
                f"{tel['writer_parks'][1] * args.realtime_s:.0f}x, longest {tel['writer_parked_ms_max'][2]:.0f} ms"
                if "checkpoints" in tel
                else "in-line (no checkpoint telemetry)"
            )
            rows += [
                (
                    f"realtime synthetic 3.2 MS/s, {args.realtime_s:g} s",
                    f"received {rt['received']:,}",
                    f"~{expected:,.0f}",
                    "",
                ),
                ("  stored / lost", f"{rt['stored']:,} / {rt['lost']:,}", "lost 0", verdict(rt["lost"] == 0)),
                (
                    "  peak RSS (VmHWM)",
                    f"{rt['vm_hwm_mb']:.0f} MB (ru_maxrss {rt['ru_maxrss_mb']:.0f})",
                    "<= 150 MB",
                    verdict(rt["vm_hwm_mb"] <= 150),
                ),
                (
                    f"  commit ms p50 / p99 / max ({rt['commits']} commits)",
                    f"{rt['commit_ms_p50']:.1f} / {rt['commit_ms_p99']:.1f} / {rt['commit_ms_max']:.1f}",
                    "p99 <= 50 ms",
                    verdict(rt["commit_ms_p99"] <= 50),
                ),
                ("  checkpoints", ckpt, "", ""),
                (
                    "  ring high water / CPU avg",
                    f"{tel['ring_high_water'][2]:.1%} / {tel['cpu_percent'][1]:.0f} %",
                    "",
                    "",
                ),
                ("  heavy modules imported", ", ".join(rt["heavy_modules"]) or "none", "", ""),
            ]
        if not args.skip_pairs:
            print(f"pairs: {args.pairs} x ({args.size_mb:g} MB bare SQLite, {args.size_mb:g} MB capture)", flush=True)
            pr = results["pairs"] = run_pairs(tmp, args.size_mb, args.pairs)
            rows += [
                ("bare SQLite insert (median)", f"{pr['median_bare_mb_s']:,.0f} MB/s", "baseline", ""),
                ("capture service (median)", f"{pr['median_capture_mb_s']:,.0f} MB/s", "", ""),
                (
                    "  capture / bare, per pair",
                    " ".join(f"{p['ratio']:.2f}" for p in pr["pairs"]),
                    "",
                    "",
                ),
                (
                    "  capture / bare, median",
                    f"{pr['median_ratio']:.2f}x",
                    ">= 0.9x",
                    verdict(pr["median_ratio"] >= 0.9),
                ),
            ]
    if rows:
        w = [max(len(r[i]) for r in rows) for i in range(4)]
        print(f"{'measure':<{w[0]}}  {'result':<{w[1]}}  {'target':<{w[2]}}  verdict")
        for r in rows:
            print(f"{r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {r[2]:<{w[2]}}  {r[3]}")
    out_dir = REPO / "bench" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "ingest.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"(details: {out_dir / 'ingest.json'})")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--probe"]:
        probe(sys.argv[2:])
    else:
        sys.exit(main())
