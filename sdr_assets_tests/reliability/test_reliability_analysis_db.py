"""The analysis DB deleted or corrupted between runs: the next materialisation of iq_window and
spectrograms rebuilds the window from the snapshot (same samples, same frames, checks green),
a corrupt file is moved aside (kept for a post-mortem), the hot DB is never touched."""

import os
import sqlite3
import subprocess
from datetime import UTC, datetime, timedelta

import pytest

from sdr_assets_tests.capture_support import CLI, REPO
from sdr_assets_tests.helpers import check_results, db_files_digest, failure_text, materialize, meta


@pytest.fixture
def window(data_root):
    """A 70 s replay (250 kS/s) into a past minute, materialised once: (key, samples, frames)."""
    start = (datetime.now(UTC) - timedelta(minutes=100)).replace(second=0, microsecond=0)
    uri = f"synthetic://?seed=4&rate=250000&start={start:%Y-%m-%dT%H:%M:%SZ}&duration_s=70"
    out = subprocess.run(
        [CLI, "capture", "--source", uri, "--no-realtime", "--partition-minutes", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr
    key = start.strftime("%Y-%m-%d-%H:%M")
    res = materialize(["hot_snapshot", "iq_window", "spectrograms"], key, quiet=True)
    assert res.success, failure_text(res)
    return key, meta(res, "iq_window")["samples"], meta(res, "spectrograms")["frames"]


@pytest.mark.parametrize("damage", ["deleted", "garbage", "garbage_in_a_big_file"])
def test_a_lost_or_corrupt_analysis_db_is_rebuilt_from_the_snapshot(data_root, window, damage, monkeypatch):
    key, samples, frames = window
    adb, hot = data_root / "analysis.db", data_root / "hot.db"
    hot_before = db_files_digest(hot)
    assert not os.path.exists(f"{adb}-wal")  # closed between runs
    if damage == "deleted":
        adb.unlink()
    else:
        if damage == "garbage_in_a_big_file":
            # Files over QUICK_CHECK_MAX_BYTES (64 MiB: every real analysis DB) get a schema read
            # only at open; the damage is then found by the load itself.
            monkeypatch.setattr("sdr_assets.store.window.QUICK_CHECK_MAX_BYTES", 1 << 20)
        size = adb.stat().st_size
        offset, n = size // 2, 64 * 1024  # its middle
        if damage == "garbage_in_a_big_file":  # where the load must read: the chunks' index,
            # which the window's reload walks (the middle may hold pages a reload only frees)
            conn = sqlite3.connect(f"file:{adb}?mode=ro", uri=True)
            (root,), (page,) = (
                conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'chunks_partition'").fetchone(),
                conn.execute("PRAGMA page_size").fetchone(),
            )
            conn.close()
            offset, n = (root - 1) * page, page
        with open(adb, "r+b") as fh:  # overwrite it with garbage
            fh.seek(offset)
            fh.write(os.urandom(n))
    res = materialize(["iq_window", "spectrograms"], key, quiet=True)
    assert res.success, failure_text(res)
    assert meta(res, "iq_window")["samples"] == samples and meta(res, "spectrograms")["frames"] == frames
    assert all(passed for _, passed, _ in check_results(res)), check_results(res)
    aside = sorted(p.name for p in data_root.glob("analysis.db.corrupt-*") if not p.name.endswith(("-wal", "-shm")))
    assert len(aside) == (0 if damage == "deleted" else 1)
    assert db_files_digest(hot) == hot_before
