"""Several radio sensors: each its own hot DB and (sensor x time) partitions; hot_db_sensor serves
them all; the CLI registers them. Real captures (subprocesses), real SQLite files, a real
Dagster instance on disk."""

import json
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from sdr_assets_tests.defs.test_defs_analysis import env  # noqa: F401 - 1-minute partitions, a DAGSTER_HOME
from sdr_assets_tests.helpers import materialize

pytestmark = pytest.mark.calendar  # re-run under faketime +60days (test_calendar.py)

BIN = Path(sys.executable).parent
RATE_HZ = 250_000


def _cli(env, *args, timeout=180):
    return subprocess.run([str(BIN / "sdr-assets"), *args], env=env, capture_output=True, text=True, timeout=timeout)


def _capture(env, sensor: str, seed: int, start: datetime, duration_s: int):
    uri = f"synthetic://?seed={seed}&rate={RATE_HZ}&start={start:%Y-%m-%dT%H:%M:%SZ}&duration_s={duration_s}"
    out = _cli(env, "capture", "--sensor", sensor, "--source", uri, "--no-realtime", "--partition-minutes", "1")
    assert out.returncode == 0, out.stderr
    return out


def _minute(t: datetime) -> str:
    return t.strftime("%Y-%m-%d-%H:%M")


def test_cli_registers_sensors_and_refuses_bad_names(env, data_root):
    out = _cli(
        env, "sensors", "add", "roof-433", "--description", "roof, 433 MHz whip", "--source", "rtl_tcp://10.0.0.5:1234"
    )
    assert out.returncode == 0, out.stderr
    assert f"hot DB {data_root / 'sensors' / 'roof-433' / 'hot.db'}" in out.stdout
    assert "added partition(s) roof-433" in out.stdout  # DAGSTER_HOME is set: registered at once
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as inst:
        assert inst.get_dynamic_partitions("sensor") == ["roof-433"]
    meta = json.loads((data_root / "sensors" / "roof-433" / "sensor.json").read_text())
    assert meta["source"] == "rtl_tcp://10.0.0.5:1234" and meta["description"].startswith("roof")

    listed = _cli(env, "sensors", "list")
    assert listed.returncode == 0
    names = [line.split()[0] for line in listed.stdout.splitlines()]
    assert names == ["default", "roof-433"] and "no hot DB yet" in listed.stdout

    synced = _cli(env, "sensors", "sync")
    assert synced.returncode == 0 and "added partition(s) default" in synced.stdout
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as inst:
        assert sorted(inst.get_dynamic_partitions("sensor")) == ["default", "roof-433"]

    for bad, why in [
        ("Roof", "not valid"),
        ("a|b", "not valid"),
        ("", "not valid"),
        ("roof-433", "already registered"),
        ("default", "already registered"),
    ]:
        r = _cli(env, "sensors", "add", bad)
        assert r.returncode == 2 and why in r.stderr and "Traceback" not in r.stderr, (bad, r.stderr)
    r = _cli(env, "capture", "--sensor", "attic", "--source", "synthetic://?seed=1", "--duration-s", "1")
    assert r.returncode == 2 and "sensor 'attic' is not registered" in r.stderr
    assert "sdr-assets sensors add attic" in r.stderr and not (data_root / "sensors" / "attic").exists()
    # a damaged registration is named, not skipped
    (data_root / "sensors" / "roof-433" / "sensor.json").write_text("{not json")
    r = _cli(env, "sensors", "list")
    assert r.returncode == 2 and "sensors/roof-433/sensor.json" in r.stderr
    # ... while the Dagster sensor logs it and goes on serving the other sensors
    from sdr_assets.defs.automation import hot_db_sensor
    from sdr_assets.defs.resources import SdrStore

    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        res = hot_db_sensor(dg.build_sensor_context(instance=instance, resources={"store": SdrStore()}))
    assert "default: no hot DB yet" in res.skip_reason.skip_message
    assert "roof-433" not in res.skip_reason.skip_message


def test_two_sensors_own_hot_dbs_and_partitions_served_by_one_sensor(env, data_root):
    from sdr_assets.defs.automation import hot_db_sensor
    from sdr_assets.defs.resources import SdrStore
    from sdr_assets.store.snapshot import hot_time_range

    assert _cli(env, "sensors", "add", "attic").returncode == 0
    start = (datetime.now(UTC) - timedelta(minutes=30)).replace(second=0, microsecond=0)
    _capture(env, "default", 1, start, 70)
    _capture(env, "attic", 2, start, 130)  # a different band, and a minute longer
    hot_default, hot_attic = data_root / "hot.db", data_root / "sensors" / "attic" / "hot.db"
    assert hot_time_range(hot_default)[1] < hot_time_range(hot_attic)[1]

    # one tick: both sensors become partitions, each gets its newest closed window requested
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        ctx = dg.build_sensor_context(instance=instance, resources={"store": SdrStore()})
        res = hot_db_sensor(ctx)
        added = [k for r in res.dynamic_partitions_requests for k in r.partition_keys]
        assert added == ["default"]  # attic was registered by `sensors add` (DAGSTER_HOME set)
        keys = sorted(r.partition_key for r in res.run_requests)
        assert keys == [f"attic|{_minute(start + timedelta(minutes=1))}", f"default|{_minute(start)}"]
        assert json.loads(ctx.cursor) == {"attic": _minute(start + timedelta(minutes=1)), "default": _minute(start)}
        instance.add_dynamic_partitions("sensor", added)
        chain = ["hot_snapshot", "iq_window", "spectrograms"]
        results = {k: materialize(chain, k, instance=instance, quiet=True) for k in keys}
    assert all(r.success for r in results.values())

    conn = sqlite3.connect(data_root / "analysis.db")
    held = dict(conn.execute("SELECT partition_key, n_samples FROM partitions").fetchall())
    assert set(held) == set(keys) and all(n >= RATE_HZ * 59 for n in held.values())
    # each window came from its own sensor's hot DB: different seeds, different bands
    truth = {
        k: conn.execute("SELECT count(*), sum(freq_lower_hz) FROM annotations WHERE partition_key = ?", (k,)).fetchone()
        for k in keys
    }
    assert truth[keys[0]] != truth[keys[1]] and all(n > 0 for n, _ in truth.values())
    snaps = {
        k: Path(r.asset_materializations_for_node("hot_snapshot")[0].metadata["path"].value) for k, r in results.items()
    }
    assert snaps[keys[0]].parent == data_root / "sensors" / "attic" / "snapshots"
    assert snaps[keys[1]].parent == data_root / "snapshots"
    frames = dict(conn.execute("SELECT partition_key, min(path) FROM frames GROUP BY 1").fetchall())
    assert frames[keys[0]].startswith("spectrograms/attic/") and frames[keys[1]].startswith("spectrograms/default/")

    # backfill of one sensor touches that sensor's hot DB only
    out = _cli(
        env,
        "backfill",
        "--sensor",
        "attic",
        "--from",
        _minute(start),
        "--to",
        _minute(start),
        "--select",
        "hot_snapshot,iq_window",
    )
    assert out.returncode == 0 and "1 succeeded" in out.stdout, out.stderr
    assert f"attic|{_minute(start)}" in {r[0] for r in conn.execute("SELECT partition_key FROM partitions")}
    st = _cli(env, "status", "--sensor", "attic")
    assert st.returncode == 0 and str(hot_attic) in st.stdout


def test_analysis_db_of_the_single_sensor_days_migrates_chunks_to_sensor_and_seq(tmp_path):
    """Migration 3 keys chunks by (sensor, seq): old bare keys belong to 'default', nothing is
    lost, and two sensors' chunk 1 can then live side by side."""
    from sdr_assets.store.db import ANALYSIS_APP_ID, analysis_migrations, migrate

    path = tmp_path / "analysis.db"
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate(conn, analysis_migrations()[:2], application_id=ANALYSIS_APP_ID) == 2
    row = (
        "INSERT INTO chunks (seq, partition_key, capture_id, t_start_ns, sample_rate_hz, center_freq_hz, "
        "gain_db, n_samples, iq, iq_crc32) VALUES (?, ?, 1, ?, 250000.0, 433.92e6, NULL, 2, ?, 7)"
    )
    conn.execute(row, (1, "2026-11-01-00:00", 10, b"\x01\x02\x03\x04"))
    conn.execute(row, (2, "roof|2026-11-01-00:00", 20, b"\x05\x06\x07\x08"))
    assert migrate(conn, analysis_migrations()[:3], application_id=ANALYSIS_APP_ID) == 3
    got = conn.execute("SELECT sensor, seq, partition_key, iq, iq_crc32 FROM chunks ORDER BY seq").fetchall()
    assert got == [
        ("default", 1, "2026-11-01-00:00", b"\x01\x02\x03\x04", 7),
        ("roof", 2, "roof|2026-11-01-00:00", b"\x05\x06\x07\x08", 7),
    ]
    conn.execute(
        "INSERT INTO chunks (sensor, seq, partition_key, capture_id, t_start_ns, sample_rate_hz, "
        "center_freq_hz, n_samples, iq) VALUES ('roof', 1, 'roof|x', 1, 5, 1.0, 1.0, 1, x'00')"
    )
    with pytest.raises(sqlite3.IntegrityError):  # but one sensor's seq is still unique
        conn.execute(
            "INSERT INTO chunks (sensor, seq, partition_key, capture_id, t_start_ns, sample_rate_hz, "
            "center_freq_hz, n_samples, iq) VALUES ('roof', 1, 'roof|y', 1, 5, 1.0, 1.0, 1, x'00')"
        )
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_fallback_schedule_requests_the_closed_window_of_every_sensor(env):
    from sdr_assets.defs.automation import analysis_schedule

    tick = datetime.now(UTC).replace(second=0, microsecond=0)  # derived from now, never a date
    closed = (tick - timedelta(minutes=1)).strftime("%Y-%m-%d-%H:%M")
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        instance.add_dynamic_partitions("sensor", ["default", "roof"])
        ctx = dg.build_schedule_context(instance=instance, scheduled_execution_time=tick)
        keys = sorted(r.partition_key for r in analysis_schedule.evaluate_tick(ctx).run_requests)
    assert keys == [f"default|{closed}", f"roof|{closed}"]
