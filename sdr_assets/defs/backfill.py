"""`sdr-assets backfill`: materialise a range of partitions through Dagster, one run each.

The range is of time keys, for one radio sensor (``--sensor``, default ``default``); the
sensor is registered as a partition of the Dagster instance first when it is not yet.

The CLI hands in the Definitions, the Dagster instance (the one at $DAGSTER_HOME when it is
set, so runs show in the UI beside UI-launched backfills, else an ephemeral one) and the
sensor's paths. Partitions the hot DB no longer holds are reported up front and skipped,
never silently.
"""

from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
from tqdm import tqdm

from sdr_assets.defs.partitions import TIME_PARTITIONS, ensure_sensor_partitions, multi_key, partition_minutes
from sdr_assets.errors import ConfigError
from sdr_assets.paths import DataPaths
from sdr_assets.records import NS_PER_S
from sdr_assets.store import snapshot as snap


@dataclass
class BackfillReport:
    succeeded: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    not_held: list[str] = field(default_factory=list)


def partition_range(first: str, last: str) -> list[str]:
    keys = TIME_PARTITIONS.get_partition_keys()
    for k in (first, last):
        if k not in keys:
            raise ConfigError(
                f"partition {k!r} is not a closed partition of this deployment "
                f"({len(keys)} partitions, {keys[0]} .. {keys[-1]}, "
                f"{partition_minutes()}-minute); "
                "use keys like 2026-11-23-00:00 and check SDR_ASSETS_PARTITION_MINUTES."
            )
    i, j = keys.index(first), keys.index(last)
    if j < i:
        raise ConfigError(f"--to {last} comes before --from {first}; swap them.")
    return keys[i : j + 1]


def held_partitions(keys: list[str], hot: Path) -> tuple[list[str], list[str]]:
    """Split time keys into (still held, no longer held) by the retention of the hot DB ``hot``."""
    if not hot.exists():
        return keys, []
    ok, gone = [], []
    for k in keys:
        end_ns = int(TIME_PARTITIONS.time_window_for_partition_key(k).end.timestamp() * NS_PER_S)
        (gone if snap.retention_dropped(hot, end_ns) is not None else ok).append(k)
    return ok, gone


def run_backfill(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    paths: DataPaths,
    keys: list[str],
    selection: list[str],
    echo=print,
) -> BackfillReport:
    """Materialise ``selection`` of ``defs`` for each time key of the sensor of ``paths``, in
    ``instance``; report keys as ``SENSOR|TIME``."""
    from sdr_assets.store.sensors import require_registered

    sensor = paths.sensor
    require_registered(paths, sensor)
    report = BackfillReport()
    keys, not_held = held_partitions(keys, paths.hot_db)
    report.not_held = [str(multi_key(sensor, k)) for k in not_held]
    for k in report.not_held:
        echo(f"skipped {k}: no longer held by the hot DB (retention dropped it)")
    known = {k.to_user_string() for k in defs.resolve_all_asset_keys()}
    unknown = [name for name in selection if name not in known]
    if unknown:
        raise ConfigError(f"unknown asset(s) {', '.join(unknown)} in --select; choose from {', '.join(sorted(known))}.")
    assets = [defs.get_assets_def(name) for name in selection]
    resources = dict(defs.resources)
    ensure_sensor_partitions(instance, [sensor])
    for key in tqdm([str(multi_key(sensor, k)) for k in keys], desc="backfill", unit="partition"):
        res = dg.materialize(
            assets,
            partition_key=key,
            instance=instance,
            resources=resources,
            raise_on_error=False,
            tags={"sdr_assets/backfill": "cli"},
        )
        (report.succeeded if res.success else report.failed).append(key)
        if not res.success:
            echo(f"failed {key}: run {res.run_id} (see the Dagster UI or its event log)")
    return report
