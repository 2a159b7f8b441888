"""Time partitions for the analysis assets, configured through the environment at load time.

``SDR_ASSETS_PARTITION_MINUTES`` (default 60; `make run` uses 5) sets the length: it must
divide an hour (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30) or be 60. ``SDR_ASSETS_PARTITION_START``
(``YYYY-MM-DD``, default: 7 days before today, UTC) sets the first partition. Keys look like
``2026-11-23-00:00`` (UTC).
"""

import os
from datetime import UTC, datetime, timedelta

import dagster as dg

from sdr_assets.errors import ConfigError

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


def partition_start() -> str:
    raw = os.environ.get(ENV_START, "").strip()
    if not raw:
        day = datetime.now(UTC).date() - timedelta(days=7)
        return day.strftime("%Y-%m-%d") + "-00:00"
    try:
        datetime.strptime(raw, "%Y-%m-%d")
    except ValueError as exc:
        raise ConfigError(f"{ENV_START}={raw!r} is not a date; use YYYY-MM-DD.") from exc
    return raw + "-00:00"


def build_time_partitions() -> dg.TimeWindowPartitionsDefinition:
    minutes = partition_minutes()
    cron = "0 * * * *" if minutes == 60 else f"*/{minutes} * * * *"
    return dg.TimeWindowPartitionsDefinition(
        cron_schedule=cron, start=partition_start(), fmt=PARTITION_FMT, timezone="UTC"
    )


def window_ns(context) -> tuple[int, int]:
    """The partition's [start, end) in ns since the epoch."""
    tw = context.partition_time_window
    return int(tw.start.timestamp() * 1e9), int(tw.end.timestamp() * 1e9)


TIME_PARTITIONS = build_time_partitions()
DAILY_PARTITIONS = dg.DailyPartitionsDefinition(start_date=partition_start()[:10], timezone="UTC")
