"""Dagster's own history: a daily asset that deletes finished runs older than ``keep_run_days``.

Dagster OSS purges schedule and sensor ticks itself (``retention:`` in dagster.yaml) but has no
setting for run history: every run keeps its row, its event log (on SQLite one
``history/runs/<run_id>.db`` file a run) and its compute logs (``storage/<run_id>/``) forever.
``dagster_run_history`` deletes them through the instance (``DagsterInstance.delete_run``, the
compute log manager), daily at 03:30 UTC (after the 02:00 training) by ``housekeeping_schedule``.

Never deleted: runs not finished, the run that holds each asset's latest materialisation (so
every asset still shows when it last ran) and the run that trained the current model.
"""

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
from dagster._core.storage.dagster_run import FINISHED_STATUSES
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.local_compute_log_manager import LocalComputeLogManager

from sdr_assets.defs.resources import SdrStore
from sdr_assets.errors import ConfigError
from sdr_assets.store import registry
from sdr_assets.store.retention import Removed, remove_tree

GROUP = "housekeeping"
DETECTOR_MODEL = dg.AssetKey("detector_model")
_BATCH = 200


@dataclass
class RunPurge(Removed):
    runs_deleted: int = 0


def protected_runs(instance: dg.DagsterInstance, current_model_version: str | None) -> set[str]:
    """Runs that hold an asset's latest materialisation, and the run that trained the current model."""
    keys = instance.get_asset_keys()
    keep = {e.run_id for e in instance.get_latest_materialization_events(keys).values() if e is not None}
    if current_model_version is None:
        return keep
    cursor = None
    while True:
        res = instance.fetch_materializations(DETECTOR_MODEL, limit=_BATCH, cursor=cursor)
        for rec in res.records:
            mat = rec.asset_materialization
            version = getattr(mat.metadata.get("version"), "value", None) if mat else None
            if version == current_model_version:
                return keep | {rec.run_id}
        if not res.has_more:
            return keep
        cursor = res.cursor


def _run_files(instance: dg.DagsterInstance, run_id: str) -> list[Path]:
    """The files and folders a run leaves on disk beside its rows: its SQLite event-log shard
    (``history/runs/<run_id>.db``, emptied but not removed by ``delete_run``) and its local
    compute-log folder (``storage/<run_id>/``)."""
    out = []
    events, logs = instance.event_log_storage, instance.compute_log_manager
    if isinstance(events, SqliteEventLogStorage):
        shard = Path(events.path_for_shard(run_id))
        out += [shard, shard.with_name(shard.name + "-wal"), shard.with_name(shard.name + "-shm")]
    if isinstance(logs, LocalComputeLogManager):
        out.append(Path(logs.get_captured_local_path([run_id, "any"], "log")).parent)
    return out


def purge_runs(instance: dg.DagsterInstance, before: datetime, protect: set[str]) -> RunPurge:
    """Delete every finished run created before ``before`` and not in ``protect``: its row, its
    events, its event-log shard file and its compute logs."""
    filters = dg.RunsFilter(statuses=list(FINISHED_STATUSES), created_before=before)
    run_ids, cursor = [], None
    while True:  # collect first: a cursor must not name a run already deleted
        records = instance.get_run_records(filters=filters, limit=_BATCH, cursor=cursor, ascending=True)
        run_ids += [r.dagster_run.run_id for r in records if r.dagster_run.run_id not in protect]
        if len(records) < _BATCH:
            break
        cursor = records[-1].dagster_run.run_id
    out = RunPurge()
    for run_id in run_ids:
        instance.delete_run(run_id)
        for path in _run_files(instance, run_id):
            out.add(remove_tree(path))  # counted, then gone
        instance.compute_log_manager.delete_logs(prefix=[run_id])  # any other log manager's
        out.runs_deleted += 1
    return out


@dg.asset(group_name=GROUP, kinds={"dagster"})
def dagster_run_history(context: dg.AssetExecutionContext, store: SdrStore):
    """Deletes finished Dagster runs (rows, event logs, compute logs) older than keep_run_days."""
    if store.keep_run_days < 0:
        raise ConfigError(
            f"keep_run_days={store.keep_run_days}: must be >= 0 (days of run history to keep; "
            "0 keeps only the runs that hold an asset's latest materialisation)."
        )
    paths = store.paths()
    current = registry.current_model(paths.analysis_db) if paths.analysis_db.exists() else None
    before = datetime.now(UTC) - timedelta(days=store.keep_run_days)
    instance = context.instance
    total = len(instance.get_run_ids())
    protect = protected_runs(instance, current.version if current else None) | {context.run_id}
    t0 = time.perf_counter()
    res = purge_runs(instance, before, protect)
    context.log.info(
        f"deleted {res.runs_deleted} runs created before {before:%Y-%m-%d %H:%M} UTC "
        f"({res.files} files, {res.bytes_freed / 1e6:.1f} MB of event and compute logs)"
    )
    return dg.MaterializeResult(
        metadata={
            "runs_deleted": res.runs_deleted,
            "runs_before": total,
            "runs_after": total - res.runs_deleted,
            "files_removed": res.files,
            "bytes_freed": res.bytes_freed,
            "MB_freed": round(res.bytes_freed / 1e6, 2),
            "deleted_before": before.strftime("%Y-%m-%d %H:%M UTC"),
            "keep_run_days": store.keep_run_days,
            "runs_protected": len(protect),
            "current_model": current.version if current else "none",
            "seconds": round(time.perf_counter() - t0, 2),
        }
    )


housekeeping_job = dg.define_asset_job(
    "housekeeping_job",
    selection=dg.AssetSelection.assets(dagster_run_history),
    description="Delete Dagster run history older than the store's keep_run_days.",
)

housekeeping_schedule = dg.ScheduleDefinition(
    name="housekeeping_schedule",
    job=housekeeping_job,
    cron_schedule="30 3 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily at 03:30 UTC: delete finished runs older than keep_run_days (their logs too).",
)
