"""Dagster's own history on a real instance (a DAGSTER_HOME with the repo's dagster.yaml):
tick retention as dagster.yaml states it, and dagster_run_history deleting old runs with their
event-log shards and compute logs, never an asset's latest run or the current model's."""

import shutil
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

from sdr_assets.defs.resources import SdrStore
from sdr_assets.store import registry
from sdr_assets.store.window import AnalysisDB
from sdr_assets_tests.helpers import failure_text, materialize, meta

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    return home


@pytest.fixture
def instance(home):
    inst = dg.DagsterInstance.from_config(str(home))
    yield inst
    inst.dispose()


def test_tick_retention_is_what_dagster_yaml_says(instance):
    from dagster._core.definitions.run_request import InstigatorType
    from dagster._core.scheduler.instigation import TickStatus as T

    assert instance.get_tick_retention_settings(InstigatorType.SENSOR) == {
        T.SKIPPED: 7,
        T.SUCCESS: 7,
        T.FAILURE: 30,
        T.STARTED: 7,
    }
    assert set(instance.get_tick_retention_settings(InstigatorType.SCHEDULE).values()) == {30}
    assert set(instance.get_tick_retention_settings(InstigatorType.AUTO_MATERIALIZE).values()) == {7}
    # the production instance (PostgreSQL) keeps the same rule
    prod = yaml.safe_load((REPO / "deploy" / "dagster.postgres.yaml").read_text())
    assert prod["retention"] == yaml.safe_load((REPO / "dagster.yaml").read_text())["retention"]


@dg.asset
def tone():
    return dg.MaterializeResult(metadata={"n": 1})


@dg.asset
def boom():
    raise RuntimeError("this run fails")


def _model(version: str):
    """A stand-in with detector_model's key (the real one trains YOLO): its version metadata."""

    @dg.asset(name="detector_model")
    def _m():
        return dg.MaterializeResult(metadata={"version": version, "promoted": True})

    return _m


def _run(instance, asset) -> str:
    res = dg.materialize([asset], instance=instance, raise_on_error=False)
    return res.run_id


def _run_files(home: Path, run_id: str) -> list[Path]:
    """Every file under DAGSTER_HOME that is the run's (its name or a folder's names it)."""
    return [p for p in home.rglob("*") if p.is_file() and run_id in str(p.relative_to(home))]


def test_run_history_keeps_latest_and_current_model_runs_and_deletes_the_rest(home, instance, data_root):
    old_tone = [_run(instance, tone) for _ in range(2)]
    latest_tone = _run(instance, tone)
    failed = _run(instance, boom)
    current_run, newer_model_run = _run(instance, _model("v1")), _run(instance, _model("v2"))
    adb = data_root / "analysis.db"  # the registry says v1 is current (v2 lost to it)
    AnalysisDB(adb).open()
    for i, v in enumerate(["v1", "v2"]):
        registry.register_model(adb, v, data_root / v / "best.pt", None, [], {}, {"map50": 0.5}, ["cw"], created_ns=i)
    registry.promote(adb, "v1")
    doomed = old_tone + [failed]
    assert all(_run_files(home, r) for r in doomed)  # each has its event-log shard on disk
    n_files = sum(len(_run_files(home, r)) for r in doomed)
    bytes_on_disk = sum(p.stat().st_size for r in doomed for p in _run_files(home, r))

    res = materialize(["dagster_run_history"], None, instance=instance, store=SdrStore(keep_run_days=30))
    assert res.success, failure_text(res)
    m = meta(res, "dagster_run_history")
    assert m["runs_deleted"] == 0 and m["runs_before"] == 7 and m["current_model"] == "v1"
    first_housekeeping = res.run_id

    time.sleep(1.1)  # run creation times have one-second resolution
    res = materialize(["dagster_run_history"], None, instance=instance, store=SdrStore(keep_run_days=0))

    assert res.success, failure_text(res)
    m = meta(res, "dagster_run_history")
    assert m["runs_deleted"] == 3 and m["runs_after"] == m["runs_before"] - 3
    assert m["files_removed"] == n_files >= 3 and m["bytes_freed"] == bytes_on_disk > 0
    left = {r.run_id for r in instance.get_runs()}
    assert left == {latest_tone, current_run, newer_model_run, first_housekeeping, res.run_id}
    for r in doomed:  # rows, shard files and compute logs: nothing of it is left
        assert instance.get_run_by_id(r) is None and not _run_files(home, r)
    # the index keeps no event of a deleted run: the UI shows tone's latest materialisation only
    mats = instance.fetch_materializations(dg.AssetKey("tone"), limit=10).records
    assert [rec.run_id for rec in mats] == [latest_tone]


def test_negative_keep_run_days_is_refused(instance):
    res = materialize(["dagster_run_history"], None, instance=instance, store=SdrStore(keep_run_days=-1))
    assert not res.success and "keep_run_days=-1: must be >= 0" in failure_text(res)
