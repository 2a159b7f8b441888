"""What the snapshot replica costs in upload bandwidth (docs/replica.md).

1. Measured: a hot DB below its cap and one at its cap, each snapshot's size against the IQ
   bytes it holds (the snapshot is the whole hot DB: every page, free ones too).
2. Computed from (1) (a hot DB at its cap snapshots to the cap's size): MB a partition and MB/s on average at 0.25/1.024/2.4/3.2 MS/s for 5- and
   60-minute partitions, with the default cap (store.hot.default_cap_bytes) the capture uses.
3. Measured on loopback when SeaweedFS is installed: upload MB/s of one snapshot (hashing,
   multipart, verification), the replica's overhead apart from the network.

    python bench/replica_bandwidth.py
"""

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdr_assets.capture.service import CaptureService  # noqa: E402
from sdr_assets.capture.uri import open_source  # noqa: E402
from sdr_assets.store.hot import default_cap_bytes  # noqa: E402
from sdr_assets.store.snapshot import take_snapshot  # noqa: E402

RATE_HZ = 1_024_000


def capture(hot: Path, seconds: float, cap_bytes: int | None) -> int:
    src = open_source(f"synthetic://?seed=1&rate={RATE_HZ}&duration_s={seconds}", realtime=False)
    summary = CaptureService(src, hot, cap_bytes=cap_bytes, window_s_for_capacity_check=60.0).run()
    return summary.bytes_stored


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="replica-bw-"))
    rows = []
    for label, seconds, cap in (("below cap", 60.0, None), ("at cap (300 MB)", 300.0, 300_000_000)):
        hot = tmp / f"hot-{len(rows)}.db"
        stored = capture(hot, seconds, cap)
        snap = take_snapshot(hot, tmp / f"snap-{len(rows)}.db", nice=0)
        import sqlite3

        conn = sqlite3.connect(snap.path)
        held = conn.execute("SELECT sum(length(iq)) FROM chunks").fetchone()[0]
        conn.close()
        rows.append((label, stored, held, snap.n_bytes))
        print(
            f"{label}: captured {stored / 1e6:.1f} MB, hot DB holds {held / 1e6:.1f} MB of IQ, "
            f"snapshot {snap.n_bytes / 1e6:.1f} MB ({snap.n_bytes / held:.3f} x the IQ it holds)"
        )
    at_cap = rows[1][3] / 300_000_000  # a hot DB at its cap: the snapshot is the cap's size
    print(
        f"\nper partition with the default cap (a running capture keeps its hot DB at the cap; "
        f"snapshot = cap x {at_cap:.3f} as measured):"
    )
    print(
        "| rate MS/s | partition | IQ in the window MB | default cap MB | snapshot MB | avg upload MB/s "
        "| x the IQ rate |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for minutes in (5, 60):
        for msps in (0.25, 1.024, 2.4, 3.2):
            window_mb = msps * 2 * 60 * minutes
            cap, _ = default_cap_bytes(msps * 1e6, minutes * 60.0)
            snap_mb = cap / 1e6 * at_cap
            rate = snap_mb / (minutes * 60)
            print(
                f"| {msps:g} | {minutes} min | {window_mb:,.0f} | {cap / 1e6:,.0f} | {snap_mb:,.0f} | "
                f"{rate:.2f} | {rate / (msps * 2):.1f} |"
            )
    try:
        from sdr_assets_tests.s3_support import BUCKET, SeaweedServer, weed_missing
    except ImportError as exc:
        print(f"\nloopback upload: skipped ({exc})")
        return
    if weed_missing():
        print(f"\nloopback upload: skipped ({weed_missing()})")
        return
    from sdr_assets.replica.s3 import ReplicaConfig, S3Replica

    srv = SeaweedServer(tmp / "weed")
    srv.start()
    try:
        replica = S3Replica(ReplicaConfig.from_env(srv.env(SDR_ASSETS_REPLICA_URL=f"s3://{BUCKET}/bench")))
        snap = tmp / "snap-1.db"
        t = time.perf_counter()
        res = replica.upload(snap, "default")
        print(
            f"\nloopback upload of {res.n_bytes / 1e6:.0f} MB: {time.perf_counter() - t:.2f} s "
            f"({res.mb_per_s:.0f} MB/s incl. sha256 + part MD5s, {res.parts} parts, verified)"
        )
    finally:
        srv.stop()
        for p in tmp.rglob("*"):
            if p.is_file():
                p.unlink()


if __name__ == "__main__":
    main()
