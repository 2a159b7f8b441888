"""Time partitions for the analysis assets, configured through the environment at load time.

``SDR_ASSETS_PARTITION_MINUTES`` (default 60; `make run` uses 5) sets the length: it must
divide an hour (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30) or be 60. ``SDR_ASSETS_PARTITION_START``
(``YYYY-MM-DD``) sets the first partition; unset, the start is fixed once per data root at its
first load (``$SDR_ASSETS_HOME/settings.json``: the earlier of the first stored sample's day and
7 days before that load, see store/settings.py), so history stays addressable and the
partitions definition never moves with the calendar. ``sdr-assets home`` prints it. Keys look
like ``2026-11-23-00:00`` (UTC).

The analysis assets are partitioned by time x radio sensor (:data:`SENSOR_TIME`): the sensor
dimension is dynamic (``hot_db_sensor`` adds every sensor registered under the data root, see
store/sensors.py), and a key reads ``SENSOR|TIME``, e.g. ``default|2026-11-23-00:00``.
"""

import os
from datetime import UTC, datetime, timedelta

import dagster as dg

from sdr_assets.errors import ConfigError
from sdr_assets.records import NS_PER_S

PARTITION_FMT = "%Y-%m-%d-%H:%M"
ENV_MINUTES = "SDR_ASSETS_PARTITION_MINUTES"
ENV_START = "SDR_ASSETS_PARTITION_START"
_VALID_MINUTES = (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60)


def partition_minutes() -> int:
    raw = os.environ.get(ENV_MINUTES, "60").strip()
    try:
        minutes = int(raw)
    except ValueError:
        minutes = -1
    if minutes not in _VALID_MINUTES:
        raise ConfigError(
            f"{ENV_MINUTES}={raw!r} is not a partition length this project supports; "
            f"use one of {', '.join(map(str, _VALID_MINUTES))} (minutes dividing an hour)."
        )
    return minutes


def partition_start_and_source() -> tuple[str, str]:
    """The first partition's key and where it came from (the variable or the data root)."""
    raw = os.environ.get(ENV_START, "").strip()
    if not raw:
        from sdr_assets.paths import DataPaths
        from sdr_assets.store.sensors import list_sensors
        from sdr_assets.store.settings import fixed_partition_start

        paths = DataPaths.from_env()
        hot_dbs = [s.hot_db for s in list_sensors(paths, on_error=lambda *_: None)]
        fixed = fixed_partition_start(paths.root, hot_dbs, datetime.now(UTC).date() - timedelta(days=7))
        where = str(paths.root / "settings.json")
        return fixed.day.strftime(
            "%Y-%m-%d"
        ) + "-00:00", where if fixed.source == "saved" else f"{where}, {fixed.source}"
    try:
        datetime.strptime(raw, "%Y-%m-%d")
    except ValueError as exc:
        raise ConfigError(f"{ENV_START}={raw!r} is not a date; use YYYY-MM-DD.") from exc
    return raw + "-00:00", ENV_START


def partition_start() -> str:
    return partition_start_and_source()[0]


def build_time_partitions() -> dg.TimeWindowPartitionsDefinition:
    minutes = partition_minutes()
    cron = "0 * * * *" if minutes == 60 else f"*/{minutes} * * * *"
    return dg.TimeWindowPartitionsDefinition(
        cron_schedule=cron, start=PARTITION_START, fmt=PARTITION_FMT, timezone="UTC"
    )


def sensor_of(context) -> str:
    """The radio sensor of a (sensor x time) partition."""
    return context.partition_key.keys_by_dimension[SENSOR_DIM]


def multi_key(sensor: str, time_key: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({SENSOR_DIM: sensor, TIME_DIM: time_key})


def ensure_sensor_partitions(instance: dg.DagsterInstance, names) -> list[str]:
    """Add the sensors the instance does not know yet as dynamic partitions; returns those added."""
    known = set(instance.get_dynamic_partitions(SENSORS.name))
    new = [n for n in names if n not in known]
    if new:
        instance.add_dynamic_partitions(SENSORS.name, new)
    return new


def window_ns(context) -> tuple[int, int]:
    """The partition's [start, end) in ns since the epoch."""
    tw = context.partition_time_window
    return int(tw.start.timestamp() * NS_PER_S), int(tw.end.timestamp() * NS_PER_S)


PARTITION_START = partition_start()
TIME_PARTITIONS = build_time_partitions()
SENSOR_DIM, TIME_DIM = "sensor", "time"
SENSORS = dg.DynamicPartitionsDefinition(name="sensor")
SENSOR_TIME = dg.MultiPartitionsDefinition({TIME_DIM: TIME_PARTITIONS, SENSOR_DIM: SENSORS})
DAILY_PARTITIONS = dg.DailyPartitionsDefinition(start_date=PARTITION_START[:10], timezone="UTC")
