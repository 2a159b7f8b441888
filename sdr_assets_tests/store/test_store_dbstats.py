"""The database-stats view (`sdr-assets stats --database`): rows, oldest/newest, bytes per table."""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from sdr_assets.errors import StoreError
from sdr_assets.records import Chunk, SourceInfo
from sdr_assets.store.dbstats import database_view
from sdr_assets.store.hot import HotWriter

BIN = Path(sys.executable).parent
T0 = 1_763_856_000 * 10**9
INFO = SourceInfo(uri="synthetic://t", kind="synthetic", center_freq_hz=1e8, sample_rate_hz=1e6)


def _fill(hot: Path) -> None:
    with HotWriter(hot, cap_bytes=None) as w:
        cid = w.begin_capture(INFO, T0)
        t = T0
        for s in range(20):
            chunks = [Chunk(t, 1e8, 1e6, None, os.urandom(300_000))]
            t = chunks[-1].t_end_ns
            w.write_batch(cid, chunks, telemetry=[(T0 + s * 10**9, "capture", "rss_mb", 50.0 + s)])


def test_view_counts_rows_times_and_bytes_per_table(tmp_path):
    hot = tmp_path / "hot.db"
    _fill(hot)
    view = database_view(hot)
    by = {t.name: t for t in view.tables}
    assert by["chunks"].rows == 20 and by["chunks"].oldest_ns == T0 and by["chunks"].time_column == "t_start_ns"
    assert by["telemetry"].rows == 20 and (by["telemetry"].oldest_ns, by["telemetry"].newest_ns) == (
        T0,
        T0 + 19 * 10**9,
    )
    assert by["captures"].rows == 1 and by["captures"].oldest_ns == T0
    conn = sqlite3.connect(hot)
    try:  # the blob tables' bytes are computed, not read page by page: they agree with dbstat
        measured = conn.execute("SELECT sum(pgsize) FROM dbstat WHERE name IN ('chunks', 'chunks_t_start')").fetchone()[
            0
        ]
    finally:
        conn.close()
    assert by["chunks"].bytes == measured
    assert sum(t.bytes for t in view.tables) <= view.file_bytes
    with pytest.raises(StoreError, match="does not exist"):
        database_view(tmp_path / "none.db")


def test_stats_database_command_shows_both_dbs(data_root):
    _fill(data_root / "hot.db")
    out = subprocess.run(
        [str(BIN / "sdr-assets"), "stats", "--database"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert out.returncode == 0, out.stderr
    assert "hot database" in out.stdout and "chunks" in out.stdout and "telemetry" in out.stdout
    assert "analysis database" in out.stdout and "does not exist yet" in out.stdout
    assert "telemetry bound, each DB: cap 500 MB, max age 90 days" in out.stdout
    bad = subprocess.run(
        [str(BIN / "sdr-assets"), "stats", "--database"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SDR_ASSETS_TELEMETRY_CAP_MB": "lots"},
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error: SDR_ASSETS_TELEMETRY_CAP_MB='lots'")
