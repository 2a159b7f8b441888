"""The executor every job runs on, chosen by ``SDR_ASSETS_EXECUTOR`` when the definitions load.

- unset: Dagster's default (each step in its own process on this machine; the launchpad may
  pick ``in_process`` per run), except the sensor-driven ``analysis_job``, which runs in process
  (:func:`analysis_executor`).
- ``multiprocess`` / ``in_process``: that executor for every run.
- ``celery``: each step is queued on a Celery broker and run by ``dagster-celery`` workers,
  on this machine or others (README "Production"). Needs the ``prod`` extra, an instance every
  worker reaches (PostgreSQL, ``deploy/dagster.postgres.yaml``) and the same
  ``$SDR_ASSETS_HOME`` on every worker (a shared volume). Broker and result backend:
  ``SDR_ASSETS_CELERY_BROKER`` and ``SDR_ASSETS_CELERY_BACKEND`` (default: both
  ``redis://localhost:6379/0``), the same values the workers start with
  (``deploy/celery.yaml``).
"""

import os

import dagster as dg

from sdr_assets.errors import ConfigError

ENV_EXECUTOR = "SDR_ASSETS_EXECUTOR"
ENV_BROKER = "SDR_ASSETS_CELERY_BROKER"
ENV_BACKEND = "SDR_ASSETS_CELERY_BACKEND"
DEFAULT_BROKER = "redis://localhost:6379/0"
EXECUTORS = ("multiprocess", "in_process", "celery")


def executor_name() -> str:
    """The configured executor name, "" for Dagster's default."""
    raw = os.environ.get(ENV_EXECUTOR, "").strip().lower().replace("-", "_")
    if raw and raw not in EXECUTORS:
        raise ConfigError(
            f"{ENV_EXECUTOR}={raw!r} is not an executor this project knows; use one of "
            f"{', '.join(EXECUTORS)}, or leave it unset for Dagster's default."
        )
    return raw


def _first_env(*names: str):
    # An env reference keeps secrets (a broker password) out of the definition; Dagster reads
    # the variable when the run starts.
    for name in names:
        if os.environ.get(name):
            return {"env": name}
    return DEFAULT_BROKER


def celery_config() -> dict:
    """The celery_executor config: broker and result backend from the environment."""
    return {"broker": _first_env(ENV_BROKER), "backend": _first_env(ENV_BACKEND, ENV_BROKER)}


def build_executor() -> dg.ExecutorDefinition | None:
    """The executor for Definitions(executor=...); None keeps Dagster's default."""
    name = executor_name()
    if name == "multiprocess":
        return dg.multiprocess_executor
    if name == "in_process":
        return dg.in_process_executor
    if name == "celery":
        try:
            from dagster_celery import celery_executor
        except ImportError as exc:
            raise ConfigError(
                f"{ENV_EXECUTOR}=celery needs dagster-celery: pip install -e '.[prod]' (README \"Production\")."
            ) from exc
        return celery_executor.configured(celery_config(), name="celery")
    return None


def analysis_executor() -> dg.ExecutorDefinition | None:
    """The executor of the sensor-driven analysis_job: in_process unless SDR_ASSETS_EXECUTOR names
    one (then None: the Definitions' executor). A window's steps run one after another anyway
    (each needs the one before, or shares the core), and a process per step cost more CPU than
    the work (bench/chain.py: start-up, imports and the instance per step); runs of different
    windows and sensors still run side by side, each its own process."""
    return dg.in_process_executor if not executor_name() else None
