"""Jobs, the sensor that follows every radio sensor's hot DB, and the fallback schedule."""

import json
import time

import dagster as dg

from sdr_assets.defs.executor import analysis_executor
from sdr_assets.defs.partitions import SENSOR_TIME, SENSORS, TIME_PARTITIONS, multi_key
from sdr_assets.defs.resources import SdrStore
from sdr_assets.paths import DEFAULT_SENSOR
from sdr_assets.records import NS_PER_S, utc_datetime
from sdr_assets.store import snapshot as snap
from sdr_assets.store.sensors import list_sensors

analysis_job = dg.define_asset_job(
    "analysis_job",
    selection=dg.AssetSelection.groups("analysis"),
    partitions_def=SENSOR_TIME,
    description="Snapshot a sensor's hot DB, load the partition's window, render its spectrograms, "
    "decode, label and detect: one process for the whole chain (in_process).",
    executor_def=analysis_executor(),
)

analysis_schedule = dg.build_schedule_from_partitioned_job(
    analysis_job,
    name="analysis_schedule",
    description="Fallback: materialise each partition, for every registered sensor, when it "
    "closes (hot_db_sensor does this by default when a hot DB has data).",
)


def newest_closed_partition(first_t_start_ns: int, last_t_end_ns: int, now_ns: int) -> str | None:
    """The newest partition that has ended both on the wall clock and in the stored data, and
    that holds some of the data (none when the data has not yet crossed a partition end)."""
    upto = utc_datetime(min(last_t_end_ns, now_ns))
    keys = TIME_PARTITIONS.get_partition_keys(current_time=upto)
    if not keys:
        return None
    end = TIME_PARTITIONS.time_window_for_partition_key(keys[-1]).end.timestamp() * NS_PER_S
    return keys[-1] if end > first_t_start_ns else None


def _cursor(raw: str | None) -> dict[str, str]:
    """sensor -> last requested time key (a bare key: the single-sensor cursor of old)."""
    if not raw:
        return {}
    if raw.startswith("{"):
        return json.loads(raw)
    return {DEFAULT_SENSOR: raw}


@dg.sensor(job=analysis_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def hot_db_sensor(context: dg.SensorEvaluationContext, store: SdrStore):
    """Serves every radio sensor: registers new ones as partitions, then requests each sensor's
    newest closed partition once its hot DB holds data past the partition's end."""
    paths = store.paths()
    sensors = list_sensors(paths, on_error=context.log.error)  # one bad file stops no other sensor
    known = set(context.instance.get_dynamic_partitions(SENSORS.name))
    new = [s.name for s in sensors if s.name not in known]
    cursor = _cursor(context.cursor)
    requests, waiting = [], []
    for sensor in sensors:
        held = snap.hot_time_range(sensor.hot_db) if sensor.hot_db.exists() else None
        key = None if held is None else newest_closed_partition(held[0], held[1], time.time_ns())
        if key is None or cursor.get(sensor.name) == key:
            why = (
                "no hot DB yet"
                if not sensor.hot_db.exists()
                else "no chunks yet"
                if held is None
                else f"last requested {cursor.get(sensor.name)}"
            )
            waiting.append(f"{sensor.name}: {why}")
            continue
        cursor[sensor.name] = key
        mk = multi_key(sensor.name, key)
        requests.append(dg.RunRequest(run_key=str(mk), partition_key=mk))
    context.update_cursor(json.dumps(cursor, sort_keys=True))
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[SENSORS.build_add_request(new)] if new else [],
        skip_reason=None
        if requests
        else (
            "no newly closed partition (" + "; ".join(waiting) + "). Start a capture with "
            "`sdr-assets capture --sensor NAME --source URI`."
        ),
    )
