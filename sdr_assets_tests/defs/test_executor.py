"""SDR_ASSETS_EXECUTOR picks the executor of every job (sdr_assets/defs/executor.py)."""

import dagster as dg
import pytest

from sdr_assets.defs import executor as ex
from sdr_assets.errors import ConfigError
from sdr_assets_tests.conftest import needs, try_import


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in (ex.ENV_EXECUTOR, ex.ENV_BROKER, ex.ENV_BACKEND):
        monkeypatch.delenv(name, raising=False)


def test_unset_keeps_dagsters_default():
    assert ex.build_executor() is None
    defs = dg.Definitions(assets=[_asset], executor=ex.build_executor())
    assert defs.resolve_implicit_global_asset_job_def().executor_def.name == "multi_or_in_process_executor"


@pytest.mark.parametrize(
    "value, name", [("in_process", "in_process"), ("In-Process", "in_process"), ("multiprocess", "multiprocess")]
)
def test_named_executor_is_every_jobs_executor(monkeypatch, value, name):
    monkeypatch.setenv(ex.ENV_EXECUTOR, value)
    defs = dg.Definitions(
        assets=[_asset], jobs=[dg.define_asset_job("j", selection=[_asset])], executor=ex.build_executor()
    )
    assert defs.resolve_implicit_global_asset_job_def().executor_def.name == name
    assert defs.resolve_job_def("j").executor_def.name == name


@needs(try_import("dagster_celery", "the prod and dev extras bring dagster-celery: pip install -e '.[dev]'")[1])
def test_celery_reads_broker_and_backend_from_the_environment(monkeypatch):
    monkeypatch.setenv(ex.ENV_EXECUTOR, "celery")
    assert ex.build_executor().name == "celery"
    assert ex.celery_config() == {"broker": ex.DEFAULT_BROKER, "backend": ex.DEFAULT_BROKER}
    monkeypatch.setenv(ex.ENV_BROKER, "redis://:secret@broker:6379/1")
    # the backend follows the broker; neither URL (a password) is copied into the definition
    assert ex.celery_config() == {"broker": {"env": ex.ENV_BROKER}, "backend": {"env": ex.ENV_BROKER}}
    monkeypatch.setenv(ex.ENV_BACKEND, "redis://backend:6379/2")
    assert ex.celery_config()["backend"] == {"env": ex.ENV_BACKEND}


def test_unknown_executor_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(ex.ENV_EXECUTOR, "k8s")
    with pytest.raises(ConfigError, match="multiprocess, in_process, celery"):
        ex.build_executor()


@dg.asset
def _asset():
    return 1


def test_the_sensor_driven_analysis_job_runs_in_process_unless_an_executor_is_named(monkeypatch):
    assert ex.analysis_executor() is dg.in_process_executor
    monkeypatch.setenv(ex.ENV_EXECUTOR, "multiprocess")
    assert ex.analysis_executor() is None  # the Definitions' executor (multiprocess) then
    from sdr_assets.definitions import defs

    # the loaded definitions: analysis_job was built when they were imported (no variable set)
    assert defs.resolve_job_def("analysis_job").executor_def.name == "in_process"
