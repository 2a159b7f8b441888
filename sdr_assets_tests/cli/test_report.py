"""Telemetry report and plots on real captures: `sdr-assets report --plot` from the hot DB, and
the partition_plots asset (waterfall + telemetry chart from the partition's snapshot)."""

import base64
import io
import os
import re
import sqlite3
import statistics
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from PIL import Image

from sdr_assets.store.plots import METRICS
from sdr_assets_tests.helpers import materialize, pkey

BIN = Path(sys.executable).parent
RATE_HZ = 250_000


def _capture(uri: str, *extra: str) -> None:
    env = dict(os.environ, SDR_ASSETS_PARTITION_MINUTES="1")
    out = subprocess.run(
        [str(BIN / "sdr-assets"), "capture", "--source", uri, "--partition-minutes", "1", *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr


def _rows(db: Path, where: str = "", args=()):
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(
            f"SELECT t_ns, capture_id, metric, value FROM telemetry WHERE process = 'capture' AND (metric IN "
            f"({', '.join('?' * len(METRICS))}) OR metric GLOB 'gpu[0-9]*_*') {where} ORDER BY t_ns",
            (*METRICS, *args),
        ).fetchall()
    finally:
        conn.close()


def _expected(rows):
    by = {}
    for t, c, m, v in rows:
        by.setdefault(m, []).append((t, c, v))
    lost = {}
    for _, c, v in by.get("samples_lost", []):
        lost[c] = max(lost.get(c, 0), int(v))
    return {
        "rows": len(rows),
        "captures": len({r[1] for r in rows}),
        "ingest_mean": statistics.fmean(v for _, _, v in by["ingest_mb_s"]),
        "ingest_max": max(v for _, _, v in by["ingest_mb_s"]),
        "lost": sum(lost.values()),
        "p99_max": max(v for _, _, v in by["commit_ms_p99"]),
        "p50_median": statistics.median(v for _, _, v in by["commit_ms_p50"]),
        "size_mb": by["db_size_bytes"][-1][2] / 1e6,
    }


def _panels(png: bytes) -> int:
    """Panels in a chart image: each has a dark top and bottom spine spanning the width."""
    grey = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
    rows = np.flatnonzero((grey < 80).mean(axis=1) > 0.5)
    return (np.count_nonzero(np.diff(rows) > 1) + 1) // 2 if rows.size else 0


def _md_png(md: str) -> bytes:
    b64 = md.split("data:image/png;base64,", 1)[1].split(")", 1)[0]
    return base64.b64decode(b64)


def test_report_plot_and_partition_plots_from_real_telemetry(data_root, tmp_path):
    start = (datetime.now(UTC) - timedelta(minutes=90)).replace(second=0, microsecond=0)
    # a replay into a past partition (capture 1), then 3 s of real-time capture (capture 2)
    _capture(
        f"synthetic://?seed=4&rate={RATE_HZ}&kinds=cw,ook&start={start + timedelta(seconds=5):%Y-%m-%dT%H:%M:%SZ}"
        "&duration_s=10",
        "--no-realtime",
    )
    _capture(f"synthetic://?seed=1&rate={RATE_HZ}", "--duration-s", "3")
    hot = data_root / "hot.db"
    rows = _rows(hot)
    want = _expected(rows)
    assert want["captures"] == 2 and len({r[0] for r in rows if r[1] == 2}) >= 3  # a row set a second

    from sdr_assets.cli import main

    png = tmp_path / "telemetry.png"
    r = CliRunner().invoke(main, ["report", "--plot", str(png), "--since-minutes", "10"])
    assert r.exit_code == 0, r.output
    out = r.output
    assert f"telemetry rows: {want['rows']} from 2 capture(s)" in out
    assert f"ingest: mean {want['ingest_mean']:.2f} MB/s, max {want['ingest_max']:.2f} MB/s" in out
    assert f"samples lost: {want['lost']} since each capture started" in out
    assert f"commit: p50 median {want['p50_median']:.2f} ms, p99 max {want['p99_max']:.2f} ms" in out
    assert f"DB size: {want['size_mb']:.1f} MB" in out
    data = png.read_bytes()
    img = Image.open(io.BytesIO(data))
    assert img.format == "PNG" and img.size == (720, 960) and 15_000 < len(data) < 500_000
    assert _panels(data) == 8 and "8 panels" in out
    # resource telemetry beside the capture's own: the machine's CPU and memory, once a second
    cpu = [v for _, c, m, v in rows if m == "sys_cpu_percent" and c == 2]
    mem = [v for _, c, m, v in rows if m == "sys_mem_used_mb" and c == 2]
    assert len(cpu) >= 2 and all(0 <= v <= 100 for v in cpu) and all(v > 10 for v in mem)
    assert f"CPU: system mean {statistics.fmean(v for _, _, m, v in rows if m == 'sys_cpu_percent'):.1f} %" in out
    assert ("GPU: none recorded" in out) == (not any(m.startswith("gpu") for _, _, m, _ in rows))

    # partition_plots: waterfall + telemetry of the replayed window, from its snapshot
    key = pkey(start.strftime("%Y-%m-%d-%H:%M"))
    res = materialize(["hot_snapshot", "iq_window", "spectrograms", "partition_plots"], key)
    assert res.success
    meta = {
        k: getattr(v, "value", v)
        for k, v in res.asset_materializations_for_node("partition_plots")[-1].metadata.items()
    }
    snap = data_root / "snapshots" / f"hot-{key.split('|')[1].replace(':', '')}.db"
    in_window = _rows(
        snap,
        "AND t_ns >= ? AND t_ns < ?",
        (int(start.timestamp() * 1e9), int((start + timedelta(minutes=1)).timestamp() * 1e9)),
    )
    assert in_window == []  # the replay was ingested now: its rows are those of capture 1
    assert meta["telemetry_rows"] == len(_rows(snap, "AND capture_id = 1")) > 0
    assert meta["telemetry_selection"].startswith("capture(s) 1: replayed")
    chart = _md_png(meta["telemetry"])
    assert Path(meta["telemetry_path"]).read_bytes() == chart and _panels(chart) == 8
    assert Path(meta["telemetry_path"]).parent == data_root / "reports" / "default" / key.split("|")[1].replace(":", "")
    waterfall = Image.open(io.BytesIO(_md_png(meta["waterfall"])))
    assert waterfall.format == "PNG" and waterfall.size == (1200, 595) and meta["window_s"] == 60.0
    assert Path(meta["waterfall_path"]).read_bytes() == _md_png(meta["waterfall"])

    # a window the real-time capture covered: its rows by time, from a snapshot (not the live DB)
    from sdr_assets.store.plots import partition_telemetry, summarize

    t_rt = [t for t, c, _, _ in rows if c == 2]
    series = partition_telemetry(snap, min(t_rt), max(t_rt) + 1)
    assert series.selection == "time range"
    assert summarize(series).n_rows == len(_rows(snap, "AND t_ns >= ? AND t_ns <= ?", (min(t_rt), max(t_rt))))


def test_report_bad_input(data_root, tmp_path):
    from sdr_assets.cli import main

    r = CliRunner().invoke(main, ["report", "--plot", str(tmp_path / "x.png")])
    assert r.exit_code == 2 and "does not exist yet; start the capture first" in r.output
    _capture(f"synthetic://?seed=2&rate={RATE_HZ}&start=2026-01-01T00:00:00Z&duration_s=1", "--no-realtime")
    r = CliRunner().invoke(main, ["report", "--since-minutes", "0"])
    assert r.exit_code == 2 and "--since-minutes 0: must be > 0" in r.output
    # telemetry is stamped at ingest (now): a window that ends before it holds none
    r = CliRunner().invoke(main, ["report", "--since-minutes", "1e-9"])
    assert r.exit_code == 2 and "no capture telemetry" in r.output and "Widen --since-minutes" in r.output
    assert not (tmp_path / "x.png").exists() and re.search(r"hot\.db", r.output)
