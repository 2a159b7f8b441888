"""Analysis assets through Dagster: CLI materialisation on captured data, checks, bad input."""

import hashlib
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
from PIL import Image

from sdr_assets.dsp.stft import FrameGeometry
from sdr_assets_tests.helpers import check_results, failure_text, materialize, meta, pkey

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
RATE_HZ = 250_000


def _past_minute(minutes_ago: int = 90) -> datetime:
    t = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return t.replace(second=0, microsecond=0)


def _capture(env, uri: str, *extra: str) -> None:
    out = subprocess.run(
        [str(BIN / "sdr-assets"), "capture", "--source", uri, "--no-realtime", "--partition-minutes", "1", *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr


@pytest.fixture
def env(data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("SDR_ASSETS_PARTITION_MINUTES", "1")
    dh = tmp_path / "dagster_home"
    dh.mkdir()
    (dh / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    return dict(os.environ, DAGSTER_HOME=str(dh), SDR_ASSETS_PARTITION_MINUTES="1")


def test_cli_materialize_then_tone_lands_on_its_row(env, data_root):
    start = _past_minute()
    uri = (
        f"synthetic://?seed=7&rate={RATE_HZ}&kinds=cw&emissions_per_s=0.3"
        f"&start={start:%Y-%m-%dT%H:%M:%SZ}&duration_s=130"
    )
    _capture(env, uri)
    key = pkey((start + timedelta(minutes=1)).strftime("%Y-%m-%d-%H:%M"))
    sync = subprocess.run(
        [str(BIN / "sdr-assets"), "sensors", "sync"], env=env, capture_output=True, text=True, timeout=120
    )
    assert sync.returncode == 0 and "default" in sync.stdout, sync.stdout + sync.stderr
    out = subprocess.run(
        [
            str(BIN / "dagster"),
            "asset",
            "materialize",
            "-m",
            "sdr_assets.definitions",
            "--select",
            "hot_snapshot,iq_window,spectrograms",
            "--partition",
            key,
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "RUN_SUCCESS" in out.stdout + out.stderr

    conn = sqlite3.connect(data_root / "analysis.db")
    frames = conn.execute(
        "SELECT t_start_ns, t_end_ns, sample_rate_hz, center_freq_hz, nfft, "
        "hop, width_px, height_px, path FROM frames WHERE partition_key = ? "
        "ORDER BY t_start_ns",
        (key,),
    ).fetchall()
    anns = conn.execute(
        "SELECT t_start_ns, t_end_ns, freq_lower_hz, freq_upper_hz FROM "
        "annotations WHERE partition_key = ? AND label = 'cw'",
        (key,),
    ).fetchall()
    assert len(frames) >= 30 and anns
    checked = 0
    for t0, t1, fs, fc, nfft, hop, w, h, path in frames:
        geom = FrameGeometry(t0, fs, fc, nfft, hop, w, h)
        inside = [a for a in anns if a[0] < t1 and a[1] > t0]
        if len(inside) != 1:
            continue  # one tone at a time, so the brightest row is unambiguous
        a_t0, a_t1, f_lo, f_hi = inside[0]
        x0, x1 = int(max(0, geom.t_ns_to_x(a_t0))) + 1, int(min(w, geom.t_ns_to_x(a_t1))) - 1
        if x1 - x0 < 8:
            continue
        img = np.asarray(Image.open(data_root / path), dtype=np.float32)
        row = int(np.argmax(img[:, x0:x1].mean(axis=1)))
        tone_hz = (f_lo + f_hi) / 2
        assert abs(geom.y_to_freq_hz(row) - tone_hz) <= geom.bin_hz, (row, tone_hz)
        checked += 1
    assert checked >= 1


def _checks(result):
    return {name: passed for name, passed, _ in check_results(result)}


@pytest.mark.calendar
def test_empty_partition_is_an_empty_window_not_a_crash(env, data_root):
    start = _past_minute(120)
    _capture(env, f"synthetic://?seed=1&rate={RATE_HZ}&start={start:%Y-%m-%dT%H:%M:%SZ}&duration_s=20")
    later = (start + timedelta(minutes=10)).strftime("%Y-%m-%d-%H:%M")  # no data there
    res = materialize(["hot_snapshot", "iq_window", "spectrograms"], later)
    assert res.success
    win = meta(res, "iq_window")
    assert win["empty"] is True and win["samples"] == 0 and "empty" in win["note"]
    assert meta(res, "spectrograms")["frames"] == 0


def test_corrupt_snapshot_fails_and_hot_db_is_untouched(env, data_root):
    start = _past_minute(150)
    _capture(env, f"synthetic://?seed=2&rate={RATE_HZ}&start={start:%Y-%m-%dT%H:%M:%SZ}&duration_s=70")
    key = start.strftime("%Y-%m-%d-%H:%M")
    hot = data_root / "hot.db"
    res = materialize(["hot_snapshot"], key)
    assert res.success and _checks(res) == {"snapshot_integrity": True}
    before = hashlib.sha256(hot.read_bytes()).hexdigest()
    snap = next((data_root / "snapshots").glob("*.db"))
    with open(snap, "r+b") as f:  # flip bytes in the middle of the copy
        f.seek(snap.stat().st_size // 2)
        f.write(os.urandom(8192))
    res = materialize(["iq_window"], key)
    assert not res.success
    assert "corrupt" in failure_text(res)
    assert hashlib.sha256(hot.read_bytes()).hexdigest() == before


@pytest.mark.calendar
def test_sensor_requests_newest_closed_partition_once(env, data_root):
    from sdr_assets.defs.automation import hot_db_sensor
    from sdr_assets.defs.resources import SdrStore

    start = _past_minute(30)
    _capture(env, f"synthetic://?seed=3&rate={RATE_HZ}&start={start:%Y-%m-%dT%H:%M:%SZ}&duration_s=125")
    instance = dg.DagsterInstance.ephemeral()
    ctx = dg.build_sensor_context(instance=instance, resources={"store": SdrStore()})
    res = hot_db_sensor(ctx)
    # the default sensor becomes a partition of the 'sensor' dimension in the same tick
    assert [r.partition_keys for r in res.dynamic_partitions_requests] == [["default"]]
    # data runs to start+125 s (whole chunks), so the newest closed partition starts at +1 min
    (req,) = res.run_requests
    assert req.partition_key == pkey((start + timedelta(minutes=1)).strftime("%Y-%m-%d-%H:%M"))
    assert req.run_key == req.partition_key
    instance.add_dynamic_partitions("sensor", ["default"])
    again = hot_db_sensor(
        dg.build_sensor_context(cursor=ctx.cursor, instance=instance, resources={"store": SdrStore()})
    )
    assert not again.run_requests and not again.dynamic_partitions_requests
    assert "last requested" in again.skip_reason.skip_message
    # a cursor from the single-sensor days (a bare time key) still means "already requested"
    old = hot_db_sensor(
        dg.build_sensor_context(
            cursor=req.partition_key.split("|")[1], instance=instance, resources={"store": SdrStore()}
        )
    )
    assert not old.run_requests


@pytest.mark.calendar
def test_sensor_skips_without_hot_db(env):
    from sdr_assets.defs.automation import hot_db_sensor
    from sdr_assets.defs.resources import SdrStore

    res = hot_db_sensor(
        dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(), resources={"store": SdrStore()})
    )
    assert not res.run_requests
    assert "default: no hot DB yet" in res.skip_reason.skip_message
    assert "sdr-assets capture" in res.skip_reason.skip_message


@pytest.mark.calendar
def test_sensor_waits_until_the_data_crosses_a_partition_end(env, data_root):
    """A capture that started inside the current partition has no closed partition to offer:
    the sensor must not request the empty partition before it."""
    from sdr_assets.defs.automation import hot_db_sensor
    from sdr_assets.defs.resources import SdrStore

    start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(seconds=5)
    _capture(env, f"synthetic://?seed=3&rate={RATE_HZ}&start={start:%Y-%m-%dT%H:%M:%SZ}&duration_s=20")
    res = hot_db_sensor(
        dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(), resources={"store": SdrStore()})
    )
    assert not res.run_requests and res.skip_reason is not None


def test_corrupt_snapshot_stops_iq_window_in_the_same_run(env, data_root):
    """snapshot_integrity is a blocking check: a corrupt copy never reaches the analysis DB."""
    start = _past_minute(170)
    _capture(env, f"synthetic://?seed=4&rate={RATE_HZ}&start={start:%Y-%m-%dT%H:%M:%SZ}&duration_s=70")
    key = start.strftime("%Y-%m-%d-%H:%M")
    hot = data_root / "hot.db"
    conn = sqlite3.connect(hot)
    ((page,),) = conn.execute("PRAGMA page_size").fetchall()
    conn.close()
    n_pages = hot.stat().st_size // page
    with open(hot, "r+b") as f:  # damage a page in the middle: the backup copies it faithfully
        f.seek(page * (n_pages // 2))
        f.write(os.urandom(8192))
    res = materialize(["hot_snapshot", "iq_window"], key, quiet=True)
    assert _checks(res) == {"snapshot_integrity": False}
    assert meta(res, "hot_snapshot") is not None  # the copy was made and judged ...
    assert meta(res, "iq_window") is None  # ... and the window was never loaded from it
    started = {e.step_key for e in res.all_events if e.event_type_value == "STEP_START"}
    assert started == {"hot_snapshot"}, started
    assert "snapshot_integrity" in failure_text(res)
    analysis = data_root / "analysis.db"
    if analysis.exists():
        rows = (
            sqlite3.connect(analysis)
            .execute("SELECT count(*) FROM chunks WHERE partition_key = ?", (pkey(key),))
            .fetchone()[0]
        )
        assert rows == 0
