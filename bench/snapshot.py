"""Snapshot cost: one-step online backup vs `cp`, and the live writer's commit latency
without vs with snapshots running, both measured in this run.

A hot DB of --size-mb is built with HotWriter (256 KiB chunks). Then:
  1. copy speed: `cp` of the (checkpointed) file vs the backup step of take_snapshot,
     and the whole take_snapshot (backup + integrity_check + CRC pass + fsync + rename);
  2. a writer subprocess (the capture service's role) appends 256 KiB chunks at --rate-mb-s
     with the byte cap active (retention deletes as it writes), for --seconds alone, then for
     --seconds while this process takes snapshots back to back (every commit overlaps one),
     then (control) --seconds while `cp` copies the same file back to back, --rounds times
     interleaved. Reported: the writer's transaction latency p50/p99/max
     (BatchResult.commit_s, pooled over rounds), the p99 of each round, and the p99 ratio.
Targets: backup >= 0.5x cp; p99 with snapshots <= 2x p99 alone. Exit 0 regardless.

    .venv/bin/python bench/snapshot.py [--size-mb 400] [--rate-mb-s 6.4] [--seconds 8]
        [--rounds 3] [--chunks-per-batch 1] [--checkpoint background[,1000,256,...]]
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdr_assets.records import Chunk, SourceInfo  # noqa: E402
from sdr_assets.store.hot import HotWriter  # noqa: E402
from sdr_assets.store.snapshot import take_snapshot  # noqa: E402

CHUNK_BYTES = 256 * 1024
FS_HZ = 3.2e6
INFO = SourceInfo("synthetic://bench", "synthetic", 100e6, FS_HZ)


def blob_pool(n: int = 32) -> list[bytes]:
    return [os.urandom(CHUNK_BYTES) for _ in range(n)]


def build(path: Path, size_mb: float) -> int:
    pool = blob_pool()
    n = int(size_mb * 1e6 / CHUNK_BYTES)
    with HotWriter(path, cap_bytes=None) as w:
        cid = w.begin_capture(INFO, time.time_ns())
        t = 1_700_000_000 * 10**9
        for i in range(0, n, 16):
            cs = []
            for j in range(i, min(n, i + 16)):
                cs.append(Chunk(t, 100e6, FS_HZ, None, pool[j % len(pool)]))
                t = cs[-1].t_end_ns
            w.write_batch(cid, cs)
    return n


def writer_main(hot: str, rate_mb_s: float, seconds: float, ckpt_mode: str, per_batch: int, out: str) -> None:
    """Subprocess: append batches at a steady rate; dump the commit latencies as JSON.
    ``ckpt_mode``: 'background' (the checkpointer thread) or N (in-line, wal_autocheckpoint=N)."""
    pool = blob_pool(8)
    interval_s = per_batch * CHUNK_BYTES / (rate_mb_s * 1e6)
    lat, wal_max = [], 0
    ckpt = {"checkpoint": "background"}
    if ckpt_mode != "background":
        ckpt = {"checkpoint": "inline", "wal_autocheckpoint_pages": int(ckpt_mode)}
    with HotWriter(hot, cap_bytes=os.path.getsize(hot), **ckpt) as w:
        cid, t, _ = w.last_chunk_end()
        start = time.monotonic()
        k = 0
        while time.monotonic() - start < seconds:
            cs = []
            for _ in range(per_batch):
                cs.append(Chunk(t, 100e6, FS_HZ, None, pool[k % len(pool)]))
                t, k = cs[-1].t_end_ns, k + 1
            lat.append(w.write_batch(cid, cs).commit_s)
            wal_max = max(wal_max, os.path.getsize(f"{hot}-wal") if os.path.exists(f"{hot}-wal") else 0)
            sleep = start + len(lat) * interval_s - time.monotonic()
            if sleep > 0:
                time.sleep(sleep)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(out).write_text(json.dumps({"lat": lat, "wal_max": wal_max, "rss_mb": rss_mb}))


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


PHASES = ("alone", "snapshots", "cp")  # cp: the same bytes copied by `cp`, as a control


def run_writer(tmp: Path, hot: Path, args, ckpt_mode: str, phase: str) -> tuple[dict, list]:
    out = tmp / "lat.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--writer",
            str(hot),
            str(args.rate_mb_s),
            str(args.seconds),
            ckpt_mode,
            str(args.chunks_per_batch),
            str(out),
        ]
    )
    snaps = []
    while proc.poll() is None and phase != "alone":  # back to back: every commit overlaps one
        if phase == "snapshots":
            snaps.append(take_snapshot(hot, tmp / "snaps" / "live.db"))
        else:
            subprocess.run(["cp", str(hot), str(tmp / "cp.db")], check=True)
            snaps.append(None)
    if proc.wait() != 0:
        raise SystemExit(f"writer subprocess failed with code {proc.returncode}")
    for leftover in (tmp / "snaps", tmp / "cp.db"):
        if leftover.is_dir():
            shutil.rmtree(leftover)
        elif leftover.exists():
            leftover.unlink()
    return json.loads(out.read_text()), snaps


def latency_table(tmp: Path, hot: Path, args) -> None:
    modes = [x.strip() for x in args.checkpoint.split(",")]
    print(
        f"\nwriter at {args.rate_mb_s} MB/s, {args.chunks_per_batch} x 256 KiB a commit, byte cap active; "
        f"{args.rounds} rounds of {args.seconds:g} s each: alone / snapshots back to back / cp back to back"
    )
    print(
        f"{'checkpoints / phase':<30}{'n':>6}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'WAL MB':>8}"
        f"{'RSS MB':>8}{'copies':>7}   p99 per round"
    )
    for mode in modes:
        pooled = {ph: [] for ph in PHASES}
        extra = {ph: dict(wal=0.0, rss=0.0, n=0, bad=0, rounds=[]) for ph in PHASES}
        for _ in range(args.rounds):
            for ph in PHASES:
                r, copies = run_writer(tmp, hot, args, mode, ph)
                lat = [x * 1e3 for x in r["lat"]]
                pooled[ph] += lat
                e = extra[ph]
                e["wal"] = max(e["wal"], r["wal_max"] / 1e6)
                e["rss"] = max(e["rss"], r["rss_mb"])
                e["n"] += len(copies)
                e["bad"] += sum(c is not None and c.integrity != "ok" for c in copies)
                e["rounds"].append(pct(lat, 0.99))
        for ph in PHASES:
            lat, e = pooled[ph], extra[ph]
            rounds = " ".join(f"{x:.1f}" for x in e["rounds"])
            print(
                f"{(mode if mode == 'background' else f'in-line {mode} pages') + f', {ph}':<30}{len(lat):6d}{pct(lat, 0.5):9.2f}"
                f"{pct(lat, 0.99):9.2f}{max(lat):9.2f}{e['wal']:8.1f}{e['rss']:8.0f}{e['n']:7d}   {rounds}"
                + (f"  ({e['bad']} snapshots NOT ok)" if e["bad"] else "")
            )
        alone = pct(pooled["alone"], 0.99)
        ratio = pct(pooled["snapshots"], 0.99) / alone
        print(f"{'  p99 ratio snapshots / alone':<30}{ratio:>23.2f}x   target <= 2: {'ok' if ratio <= 2 else 'MISS'}")
        print(
            f"{'  p99 ratio cp / alone':<30}{pct(pooled['cp'], 0.99) / alone:>23.2f}x   (control: the same "
            "bytes copied without SQLite)"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=float, default=400)
    ap.add_argument("--rate-mb-s", type=float, default=6.4)
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--chunks-per-batch", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--checkpoint",
        default="background",
        help="comma-separated modes to compare: background (the checkpointer thread) or N "
        "(in-line, wal_autocheckpoint=N pages), e.g. background,1000",
    )
    ap.add_argument("--dir", default=None, help="where the temp folder goes (default: system temp)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-snapshot-", dir=args.dir) as d:
        tmp = Path(d)
        hot = tmp / "hot.db"
        t = time.perf_counter()
        n = build(hot, args.size_mb)
        size = os.path.getsize(hot)
        print(
            f"hot DB: {size / 1e6:.0f} MB, {n} chunks of 256 KiB, built in {time.perf_counter() - t:.1f} s "
            f"({size / 1e6 / (time.perf_counter() - t):.0f} MB/s through HotWriter)"
        )

        # 1. copy speed, 3 interleaved runs each (median); the file is in the page cache for both
        cp_s, snaps = [], []
        for _ in range(3):
            t = time.perf_counter()
            subprocess.run(["cp", str(hot), str(tmp / "cp.db")], check=True)
            cp_s.append(time.perf_counter() - t)
            os.unlink(tmp / "cp.db")
            snaps.append(take_snapshot(hot, tmp / "snaps" / "one.db"))
        shutil.rmtree(tmp / "snaps")
        med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
        cp_t, bk_t, all_t = med(cp_s), med([r.backup_s for r in snaps]), med([r.seconds for r in snaps])
        chk_t = med([r.check_s for r in snaps])
        mb = size / 1e6
        print(f"\n{'copy of ' + format(mb, '.0f') + ' MB (median of 3)':<40}{'s':>8}{'MB/s':>9}{'x cp':>7}")
        print(f"{'cp':<40}{cp_t:8.3f}{mb / cp_t:9.0f}{1:7.2f}")
        print(
            f"{'backup step (one step, pages=-1)':<40}{bk_t:8.3f}{mb / bk_t:9.0f}{cp_t / bk_t:7.2f}"
            f"   target >= 0.5: {'ok' if cp_t / bk_t >= 0.5 else 'MISS'}"
        )
        print(
            f"{'take_snapshot (+check, CRC, fsync)':<40}{all_t:8.3f}{mb / all_t:9.0f}{cp_t / all_t:7.2f}"
            f"   (check {chk_t:.3f} s; integrity {', '.join(sorted({r.integrity for r in snaps}))})"
        )

        # 2. writer latency without / with snapshots
        latency_table(tmp, hot, args)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--writer":
        writer_main(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5], int(sys.argv[6]), sys.argv[7])
        sys.exit(0)
    sys.exit(main())
