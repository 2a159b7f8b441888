"""Backfills from the CLI: held partitions materialise; dropped ones say so clearly."""

import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from sdr_assets_tests.helpers import materialize, pkey

pytestmark = pytest.mark.calendar  # re-run under faketime +60days (test_calendar.py)

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]


def _env(tmp_path):
    dh = tmp_path / "dagster_home"
    dh.mkdir(exist_ok=True)
    (dh / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    return dict(os.environ, DAGSTER_HOME=str(dh))


def _capture(env, start, duration_s, *extra):
    uri = f"synthetic://?seed=4&rate=250000&start={start:%Y-%m-%dT%H:%M:%SZ}&duration_s={duration_s}"
    out = subprocess.run(
        [str(BIN / "sdr-assets"), "capture", "--source", uri, "--no-realtime", "--partition-minutes", "1", *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr


def _backfill(env, first, last, select="hot_snapshot,iq_window"):
    return subprocess.run(
        [str(BIN / "sdr-assets"), "backfill", "--from", first, "--to", last, "--select", select],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _key(t):
    return t.strftime("%Y-%m-%d-%H:%M")


def test_cli_backfill_materialises_each_partition(tmp_path, data_root):
    env = _env(tmp_path)
    start = (datetime.now(UTC) - timedelta(minutes=40)).replace(second=0, microsecond=0)
    _capture(env, start, 185)
    out = _backfill(env, _key(start), _key(start + timedelta(minutes=2)))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "3 succeeded, 0 failed, 0 no longer held" in out.stdout
    rows = (
        sqlite3.connect(data_root / "analysis.db")
        .execute("SELECT partition_key, n_samples FROM partitions ORDER BY partition_key")
        .fetchall()
    )
    assert [r[0] for r in rows] == [pkey(_key(start + timedelta(minutes=i))) for i in range(3)]
    assert all(n >= 250_000 * 59 for _, n in rows)
    # the runs are in the Dagster instance, so the UI lists them
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as inst:
        assert len(inst.get_runs()) == 3


def test_partition_no_longer_held_is_reported_not_silently_skipped(tmp_path, data_root):
    env = _env(tmp_path)
    start = (datetime.now(UTC) - timedelta(minutes=80)).replace(second=0, microsecond=0)
    # 64 MB cap holds ~2 minutes at 0.25 MS/s: the first minutes of a 5-minute run are pruned
    _capture(env, start, 300, "--cap-bytes", str(64 * 2**20))
    out = _backfill(env, _key(start), _key(start + timedelta(minutes=4)))
    assert out.returncode == 1
    assert f"skipped default|{_key(start)}: no longer held by the hot DB" in out.stderr
    assert "no longer held" in out.stdout and "0 failed" in out.stdout

    res = materialize(["hot_snapshot"], _key(start))
    assert not res.success
    failure = next(e for e in res.all_events if e.is_step_failure)
    msg = failure.event_specific_data.error.message
    assert "no longer held by the hot database" in msg and "--cap-bytes" in msg


def test_backfill_bad_keys_are_clear_errors(tmp_path):
    env = _env(tmp_path)
    out = _backfill(env, "yesterday", "today")
    assert out.returncode == 2 and "is not a closed partition" in out.stderr
    assert "Traceback" not in out.stderr
