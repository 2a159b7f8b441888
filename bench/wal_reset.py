"""The hot DB's checkpointer against SQLite's WAL-reset race: live snapshots must all be intact.

A hot DB of --size-mb is built, then --rounds times: a writer subprocess (HotWriter, the byte
cap active so retention deletes as it writes) appends one 256 KiB chunk a commit at
--rate-mb-s for --seconds while this process takes snapshots back to back (take_snapshot:
one-step backup, integrity_check and every chunk's CRC-32). Reported: snapshots taken and
failed per round, the hot DB's own integrity_check after each round, the writer's checkpoints
and parks. SQLite 3.7.0-3.51.2 can corrupt a database when a checkpoint starts while another
connection's commit resets the WAL (sqlite.org/wal.html#walresetbug); store/checkpoint.py
guards against it. Modes: background (the default checkpointer), laps (a lap every 2 MiB:
the writer parked thousands of times), unguarded (the guard disabled: a control), inline.
Target: 0 failed. Exit 0 regardless.

    PYTHONPATH=$PWD .venv/bin/python bench/wal_reset.py [--mode background] [--size-mb 40]
        [--rate-mb-s 6.4] [--seconds 8] [--rounds 10]
"""

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sdr_assets.records import Chunk, SourceInfo  # noqa: E402
from sdr_assets.store.hot import HotWriter  # noqa: E402
from sdr_assets.store.snapshot import take_snapshot  # noqa: E402

CHUNK_BYTES = 256 * 1024
MODES = ("background", "laps", "unguarded", "inline")


def writer_main(hot: str, rate_mb_s: float, seconds: float, mode: str) -> None:
    """Subprocess: one chunk a commit at a steady rate (as fast as it goes above ~1000 MB/s)."""
    from sdr_assets.store import checkpoint

    if mode == "laps":
        checkpoint.RESET_BYTES, checkpoint.PARK_MAX_TAIL_S, checkpoint.CHECKPOINT_MIN_BYTES = 2 << 20, 10.0, 1 << 20
    if mode == "unguarded":  # the control: the guard lifted before every step
        step = checkpoint.Checkpointer._step

        def unguarded(self, conn):
            self._guard = None
            return step(self, conn)

        checkpoint.Checkpointer._step = unguarded
    pool = [os.urandom(CHUNK_BYTES) for _ in range(8)]
    interval_s = CHUNK_BYTES / (rate_mb_s * 1e6)
    kw = {"checkpoint": "inline"} if mode == "inline" else {}
    with HotWriter(hot, cap_bytes=os.path.getsize(hot), **kw) as w:
        cid, t, _ = w.last_chunk_end()
        start, k = time.monotonic(), 0
        print("ready", flush=True)
        while time.monotonic() - start < seconds:
            c = Chunk(t, 100e6, 3.2e6, None, pool[k % 8])
            t, k = c.t_end_ns, k + 1
            w.write_batch(cid, [c])
            sleep_s = start + k * interval_s - time.monotonic()
            if sleep_s > 0:
                time.sleep(sleep_s)
        ckpt = w._ckpt
        figures = {"commits": k, "checkpoints": 0, "parks": 0}
        if ckpt is not None:
            figures.update(checkpoints=ckpt.n_checkpoints, parks=ckpt.n_parks)
    print(json.dumps(figures), flush=True)


def build(hot: Path, size_mb: float) -> None:
    pool = [os.urandom(CHUNK_BYTES) for _ in range(32)]
    n = int(size_mb * 1e6 / CHUNK_BYTES)
    with HotWriter(hot, cap_bytes=None) as w:
        cid = w.begin_capture(SourceInfo("synthetic://bench", "synthetic", 100e6, 3.2e6), time.time_ns())
        t = 1_700_000_000 * 10**9
        for i in range(0, n, 16):
            cs = []
            for j in range(i, min(n, i + 16)):
                cs.append(Chunk(t, 100e6, 3.2e6, None, pool[j % 32]))
                t = cs[-1].t_end_ns
            w.write_batch(cid, cs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=MODES, default="background")
    ap.add_argument("--size-mb", type=float, default=40.0)
    ap.add_argument("--rate-mb-s", type=float, default=6.4)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--dir", default=None, help="where the temporary files go (default: $TMPDIR)")
    args = ap.parse_args()
    total = failed = 0
    with tempfile.TemporaryDirectory(prefix="bench_wal_reset_", dir=args.dir) as tmp:
        tmp = Path(tmp)
        hot = tmp / "hot.db"
        build(hot, args.size_mb)
        for r in range(args.rounds):
            cmd = [sys.executable, __file__, "--writer", str(hot), str(args.rate_mb_s), str(args.seconds), args.mode]
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
            if proc.stdout.readline().strip() != "ready":
                raise SystemExit(f"the writer did not start (exit {proc.wait()})")
            results = []
            while proc.poll() is None:
                results.append(take_snapshot(hot, tmp / "snaps" / "s.db"))
            figures = proc.stdout.read().strip()
            if proc.wait() != 0:
                raise SystemExit(f"the writer failed (exit {proc.returncode})")
            bad = [s.integrity for s in results if s.integrity != "ok"]
            conn = sqlite3.connect(hot)
            try:
                hot_check = conn.execute("PRAGMA integrity_check").fetchone()[0]
            finally:
                conn.close()
            total, failed = total + len(results), failed + len(bad)
            first = f" e.g. {bad[0].splitlines()[-1]}" if bad else ""
            print(
                f"{args.mode} round {r + 1}: {len(results)} snapshots, {len(bad)} failed{first}; "
                f"hot DB {hot_check}; writer {figures}",
                flush=True,
            )
    print(f"{args.mode}: {failed} of {total} snapshots failed (target 0): {'ok' if failed == 0 else 'MISS'}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--writer"]:
        writer_main(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5])
    else:
        sys.exit(main())
