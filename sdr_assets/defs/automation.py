"""Jobs, the sensor that follows the hot DB, and the fallback schedule."""

import time
from datetime import UTC, datetime

import dagster as dg

from sdr_assets.defs.partitions import TIME_PARTITIONS
from sdr_assets.paths import DataPaths
from sdr_assets.store import snapshot as snap

analysis_job = dg.define_asset_job(
    "analysis_job",
    selection=dg.AssetSelection.groups("analysis"),
    partitions_def=TIME_PARTITIONS,
    description="Snapshot the hot DB, load the partition's window and render its spectrograms.",
)

analysis_schedule = dg.build_schedule_from_partitioned_job(
    analysis_job, name="analysis_schedule",
    description="Fallback: materialise each partition when it closes (the sensor does this "
                "by default when the hot DB has data).")


def newest_closed_partition(first_t_start_ns: int, last_t_end_ns: int, now_ns: int) -> str | None:
    """The newest partition that has ended both on the wall clock and in the stored data, and
    that holds some of the data (none when the data has not yet crossed a partition end)."""
    upto = datetime.fromtimestamp(min(last_t_end_ns, now_ns) / 1e9, tz=UTC)
    keys = TIME_PARTITIONS.get_partition_keys(current_time=upto)
    if not keys:
        return None
    end = TIME_PARTITIONS.time_window_for_partition_key(keys[-1]).end.timestamp() * 1e9
    return keys[-1] if end > first_t_start_ns else None


@dg.sensor(job=analysis_job, minimum_interval_seconds=30,
           default_status=dg.DefaultSensorStatus.RUNNING)
def hot_db_sensor(context: dg.SensorEvaluationContext):
    """Requests the newest closed partition once the hot DB holds data past its end."""
    hot = DataPaths.from_env().hot_db
    if not hot.exists():
        return dg.SkipReason(f"no hot database yet at {hot}; start `sdr-assets capture`.")
    held = snap.hot_time_range(hot)
    if held is None:
        return dg.SkipReason("the hot database holds no chunks yet.")
    key = newest_closed_partition(held[0], held[1], time.time_ns())
    if key is None or key == context.cursor:
        return dg.SkipReason(f"no newly closed partition (last requested: {context.cursor}).")
    context.update_cursor(key)
    return dg.RunRequest(run_key=key, partition_key=key)
