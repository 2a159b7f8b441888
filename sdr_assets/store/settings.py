"""Settings fixed once per data root, kept in ``$SDR_ASSETS_HOME/settings.json``.

The first time partition must not move with the calendar: a start recomputed at every load
("7 days before today") makes old partitions vanish from the UI and from backfills, and changes
the partitions definition under Dagster every day. So the start is decided once, at the first
load on a data root, and written here; every later load (today, next month, after an upgrade)
reads the same day back. ``SDR_ASSETS_PARTITION_START`` still wins when set (see
defs/partitions.py).

The first start chosen is the earlier of (a) the first stored sample's day in any of the data
root's hot databases and (b) ``fallback_day`` (the caller passes 7 days before now, so a fresh
root can address the recent past, e.g. recordings stamped a few days back). The file is written
atomically (a reader never sees half of it); a data root that cannot be written still loads,
with the start computed for this load only and ``source`` saying so.
"""

import json
import os
import sqlite3
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from sdr_assets.errors import ConfigError, StoreError
from sdr_assets.records import utc_datetime
from sdr_assets.store.db import connect_ro

SETTINGS_FILE = "settings.json"
KEY_PARTITION_START = "partition_start"


@dataclass(frozen=True)
class PartitionStart:
    day: date
    source: str  # "saved", "fixed now (first load)", "not saved: <why>"


def _first_sample_day(hot_dbs: list[Path]) -> date | None:
    """The UTC day of the earliest chunk in any of ``hot_dbs`` (short read-only reads)."""
    first_ns = None
    for path in hot_dbs:
        if not path.exists():
            continue
        try:
            conn = connect_ro(path)
            try:
                row = conn.execute("SELECT min(t_start_ns) FROM chunks").fetchone()
            finally:
                conn.close()
        except (sqlite3.Error, StoreError):
            continue  # an unreadable or foreign hot DB says nothing about the start
        if row and row[0] is not None and (first_ns is None or row[0] < first_ns):
            first_ns = row[0]
    if first_ns is None:
        return None
    return utc_datetime(first_ns).date()


def read_settings(root: Path) -> dict:
    path = Path(root) / SETTINGS_FILE
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{path} is not readable JSON ({exc}); fix it or delete it "
            f"(the partition start is then fixed again at the next load)."
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object; fix it or delete it.")
    return data


def _write_settings(root: Path, data: dict) -> None:
    path = Path(root) / SETTINGS_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


def fixed_partition_start(root: Path, hot_dbs: list[Path], fallback_day: date) -> PartitionStart:
    """The data root's first partition day: read back, or fixed now and saved."""
    root = Path(root)
    data = read_settings(root)
    raw = data.get(KEY_PARTITION_START)
    if raw is not None:
        try:
            return PartitionStart(datetime.strptime(str(raw), "%Y-%m-%d").date(), "saved")
        except ValueError as exc:
            raise ConfigError(
                f"{root / SETTINGS_FILE}: {KEY_PARTITION_START}={raw!r} is not a "
                "YYYY-MM-DD date; correct it (keep the day your history starts)."
            ) from exc
    first = _first_sample_day(hot_dbs)
    day = min(d for d in (first, fallback_day) if d is not None)
    try:
        root.mkdir(parents=True, exist_ok=True)
        _write_settings(root, {**data, KEY_PARTITION_START: day.isoformat()})
    except OSError as exc:
        return PartitionStart(day, f"not saved: {exc.strerror or exc}")
    return PartitionStart(day, "fixed now (first load)")
