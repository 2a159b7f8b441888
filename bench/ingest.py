"""Capture ingest: the capture service against a raw sequential file write, both measured in
this run, plus a real-time synthetic run that must lose nothing.

  1. raw write: the bytes of a generated cu8 recording written to a new file in 4 MiB
     blocks, fsync at the end (the disk's sequential ceiling here);
  2. capture: `sdr-assets capture --source file://REC` (unpaced) into a fresh hot DB, as a
     subprocess; sustained MB/s and MS/s from its own summary (bytes stored / run time,
     the final commit and checkpoint included); its peak RSS from wait4() (the kernel's
     figure for that child), cross-checked by sampling it with psutil;
  3. real time: `sdr-assets capture --source 'synthetic://?seed=1&rate=3200000'
     --duration-s 60`: samples received, stored and lost (from the hot DB's telemetry).
Targets: capture >= 0.3x raw write; peak RSS <= 150 MB; 0 samples lost at 3.2 MS/s.
Exit 0 regardless (the table says MISS).

    .venv/bin/python bench/ingest.py [--size-mb 768] [--realtime-s 60] [--quick] [--dir DIR]
"""

import argparse
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).parent / "sdr-assets")
BLOCK_BYTES = 4 * 1024 * 1024
RATE_HZ = 2_400_000
SUMMARY_RE = re.compile(
    r"ended \((\S+)\) after ([\d.]+) s: received (\d+) samples, stored (\d+) "
    r"\(([\d.]+) MB\), lost (\d+)"
)


def make_recording(path: Path, size_bytes: int) -> bytes:
    """A cu8 file of pseudo-random bytes (one 4 MiB block repeated); returns the block."""
    block = np.random.default_rng(1).integers(0, 256, BLOCK_BYTES, dtype=np.uint8).tobytes()
    with open(path, "wb") as fh:
        for off in range(0, size_bytes, BLOCK_BYTES):
            fh.write(block[: min(BLOCK_BYTES, size_bytes - off)])
    return block


def raw_write_mb_s(path: Path, block: bytes, size_bytes: int) -> float:
    t0 = time.perf_counter()
    with open(path, "wb") as fh:
        for off in range(0, size_bytes, BLOCK_BYTES):
            fh.write(block[: min(BLOCK_BYTES, size_bytes - off)])
        fh.flush()
        os.fsync(fh.fileno())
    return size_bytes / (time.perf_counter() - t0) / 1e6


def run_capture(home: Path, *args: str) -> dict:
    """Run `sdr-assets capture ARGS` with its own data root; summary + peak RSS."""
    env = dict(os.environ, SDR_ASSETS_HOME=str(home), PYTHONUNBUFFERED="1")
    log = home.parent / f"{home.name}.log"
    home.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as fh:
        t0 = time.perf_counter()
        proc = subprocess.Popen([CLI, "capture", *args], stdout=subprocess.DEVNULL, stderr=fh, env=env, cwd=REPO)
    sampled = [0]

    def sample():
        try:
            p = psutil.Process(proc.pid)
            while True:
                sampled[0] = max(sampled[0], p.memory_info().rss)
                time.sleep(0.05)
        except psutil.NoSuchProcess:  # it ended
            return

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall_s = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    sampler.join(timeout=2)
    text = log.read_text()
    m = SUMMARY_RE.search(text)
    if proc.returncode != 0 or m is None:
        raise SystemExit(f"capture failed (exit {proc.returncode}):\n{text}")
    reason, dur_s, received, stored, mb, lost = m.groups()
    return {
        "end_reason": reason,
        "duration_s": float(dur_s),
        "wall_s": wall_s,
        "received": int(received),
        "stored": int(stored),
        "lost": int(lost),
        "bytes_stored": int(stored) * 2,
        "peak_rss_mb": usage.ru_maxrss * 1024 / 1e6,
        "sampled_rss_mb": sampled[0] / 1e6,
        "log": text.strip().splitlines(),
    }


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


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISS"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mb", type=float, default=768.0, help="recording size (MB, 1e6 bytes)")
    ap.add_argument("--realtime-s", type=float, default=60.0, help="length of the 3.2 MS/s run")
    ap.add_argument("--quick", action="store_true", help="128 MB and 10 s, for development")
    ap.add_argument("--dir", default=None, help="where the temporary files go (default: $TMPDIR)")
    args = ap.parse_args()
    if args.quick:
        args.size_mb, args.realtime_s = 128.0, 10.0
    size_bytes = int(args.size_mb * 1e6) // 2 * 2
    results: dict = {"size_mb": args.size_mb, "realtime_s": args.realtime_s}
    with tempfile.TemporaryDirectory(prefix="bench_ingest_", dir=args.dir) as tmp:
        tmp = Path(tmp)
        rec = tmp / "bench_433.92M_2400k.cu8"
        block = make_recording(rec, size_bytes)
        raw = raw_write_mb_s(tmp / "raw_copy.cu8", block, size_bytes)
        (tmp / "raw_copy.cu8").unlink()
        cap = run_capture(
            tmp / "home_file",
            "--source",
            f"file://{rec}",
            "--cap-bytes",
            str(3 * size_bytes),
            "--partition-minutes",
            "0.1",
        )
        rec.unlink()
        cap_mb_s = cap["bytes_stored"] / cap["duration_s"] / 1e6
        cap_ms_s = cap["stored"] / cap["duration_s"] / 1e6
        tel_file = telemetry(tmp / "home_file" / "hot.db")
        rt = run_capture(
            tmp / "home_rt",
            "--source",
            "synthetic://?seed=1&rate=3200000",
            "--duration-s",
            f"{args.realtime_s:g}",
            "--partition-minutes",
            "1",
        )
        tel_rt = telemetry(tmp / "home_rt" / "hot.db")
    expected = 3_200_000 * args.realtime_s
    results.update(
        raw_write_mb_s=raw,
        capture=cap,
        capture_mb_s=cap_mb_s,
        capture_ms_s=cap_ms_s,
        ratio=cap_mb_s / raw,
        realtime=rt,
        realtime_expected_samples=expected,
        telemetry_file={k: tel_file[k] for k in ("commit_ms_max", "ring_high_water") if k in tel_file},
        telemetry_realtime={
            k: tel_rt[k]
            for k in ("commit_ms_p99", "commit_ms_max", "cpu_percent", "ring_high_water", "rss_mb")
            if k in tel_rt
        },
    )
    rows = [
        ("raw sequential write (fsync)", f"{raw:,.0f} MB/s", "baseline", ""),
        (
            "capture, file source unpaced",
            f"{cap_mb_s:,.0f} MB/s = {cap_ms_s:,.1f} MS/s",
            f"{args.size_mb:g} MB in {cap['duration_s']:.2f} s",
            "",
        ),
        ("  capture / raw write", f"{cap_mb_s / raw:.2f}x", ">= 0.3x", verdict(cap_mb_s / raw >= 0.3)),
        ("  capture lost", f"{cap['lost']}", "0", verdict(cap["lost"] == 0 and cap["stored"] * 2 == size_bytes)),
        ("  capture peak RSS (wait4)", f"{cap['peak_rss_mb']:.0f} MB", "<= 150 MB", verdict(cap["peak_rss_mb"] <= 150)),
        ("  (psutil sampled RSS)", f"{cap['sampled_rss_mb']:.0f} MB", "", ""),
        (
            "  commit ms max / ring high water",
            f"{tel_file['commit_ms_max'][2]:.0f} ms / {tel_file['ring_high_water'][2]:.0%}",
            "",
            "",
        ),
        (
            f"realtime synthetic 3.2 MS/s, {args.realtime_s:g} s",
            f"received {rt['received']:,}",
            f"~{expected:,.0f} expected",
            "",
        ),
        ("  stored / lost", f"{rt['stored']:,} / {rt['lost']:,}", "lost 0", verdict(rt["lost"] == 0)),
        (
            "  peak RSS / CPU avg (max)",
            f"{rt['peak_rss_mb']:.0f} MB / {tel_rt['cpu_percent'][1]:.0f} % ({tel_rt['cpu_percent'][2]:.0f} %)",
            "<= 150 MB",
            verdict(rt["peak_rss_mb"] <= 150),
        ),
        (
            "  commit ms p99 (worst second) / max",
            f"{tel_rt['commit_ms_p99'][2]:.1f} / {tel_rt['commit_ms_max'][2]:.1f} ms",
            "",
            "",
        ),
        ("  ring high water", f"{tel_rt['ring_high_water'][2]:.1%} of 64 MiB", "", ""),
    ]
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
    sys.exit(main())
