"""SigMF export throughput against a plain file copy of the same bytes, measured in one run.

Builds a hot DB of --size-mb of cu8 (HotWriter, 1 MiB chunks), snapshots it, loads one window
into an analysis DB, then times ``export_partition`` (stream the chunks out of SQLite, sha512,
fsync, metadata) against ``cp`` of the exported data file plus fsync (the baseline), and the
telemetry chart for a 1-hour series of 1 row set a second.

    .venv/bin/python bench/export.py            # --size-mb 256 --repeat 3
"""

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def _copy_fsync(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)
    with open(dst, "rb+") as fh:
        os.fsync(fh.fileno())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-export-"))
    os.environ["SDR_ASSETS_HOME"] = str(tmp)
    from sdr_assets.records import Chunk, SourceInfo
    from sdr_assets.sigmf.export import export_partition
    from sdr_assets.store.hot import HotWriter
    from sdr_assets.store.plots import TelemetrySeries, plot_telemetry
    from sdr_assets.store.snapshot import take_snapshot
    from sdr_assets.store.window import AnalysisDB

    fs, n = 2_400_000, 1 << 19  # 1 MiB chunks
    t0 = 1_790_000_000 * 10**9
    rng = np.random.default_rng(0)
    block = rng.integers(0, 256, 2 * n, dtype=np.uint8).tobytes()
    n_chunks = args.size_mb
    try:
        with HotWriter(tmp / "hot.db", cap_bytes=None) as w:
            cid = w.begin_capture(SourceInfo("bench://", "synthetic", 433.92e6, fs), t0)
            t = t0
            for _ in range(0, n_chunks, 16):
                batch = []
                for _ in range(16):
                    c = Chunk(t, 433.92e6, fs, None, block)
                    batch.append(c)
                    t = c.t_end_ns
                w.write_batch(cid, batch)
        take_snapshot(tmp / "hot.db", tmp / "snap.db", nice=0)
        with AnalysisDB(tmp / "analysis.db") as db:
            db.load_window(tmp / "snap.db", "bench", t0, t + 1, keep_partitions=2)
        (tmp / "hot.db").unlink()
        (tmp / "snap.db").unlink()
        exp_s, cp_s = [], []
        for i in range(args.repeat):
            a = time.perf_counter()
            res = export_partition(tmp / "analysis.db", "bench", tmp / f"out{i}")
            exp_s.append(time.perf_counter() - a)
            a = time.perf_counter()
            _copy_fsync(res.recordings[0].data_path, tmp / "copy.bin")
            cp_s.append(time.perf_counter() - a)
            (tmp / "copy.bin").unlink()
            shutil.rmtree(tmp / f"out{i}")
        mb = res.n_bytes / 1e6
        e, c = min(exp_s), min(cp_s)
        print(
            f"export {mb:.0f} MB: {e:.2f} s = {mb / e:.0f} MB/s; cp+fsync {c:.2f} s = {mb / c:.0f} MB/s; "
            f"ratio {c / e:.2f}x of cp (best of {args.repeat})"
        )
        series = TelemetrySeries("bench", None, None)
        ts = t0 + np.arange(3600) * 10**9
        for m, v in (
            ("ingest_mb_s", 4.8),
            ("samples_lost_per_s", 0.0),
            ("commit_ms_p50", 1.0),
            ("commit_ms_p99", 3.0),
            ("db_size_bytes", 1e9),
        ):
            series.by_metric[m] = [(int(x), 1, v) for x in ts]
        a = time.perf_counter()
        chart = plot_telemetry(series, tmp / "chart.png", config_root=tmp)
        print(f"telemetry chart, 3600 row sets: {time.perf_counter() - a:.2f} s, {len(chart.png) / 1024:.0f} KiB")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
