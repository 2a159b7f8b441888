"""The radio sensors of one data root: a registry of folders, and their partition keys.

Every sensor has its own hot DB, written by its own capture service. The ``default`` sensor
always exists (its hot DB is ``$SDR_ASSETS_HOME/hot.db``); others are registered with
``sdr-assets sensors add NAME``, which writes ``sensors/NAME/sensor.json`` (atomically: a
reader never sees half a file). The Dagster side turns the registry into dynamic partitions.

Analysis keys (the ``partition_key`` column of the analysis DB, file names) are Dagster's
multi-partition strings, ``SENSOR|TIME`` (dimensions in name order: sensor, then time), e.g.
``default|2026-11-23-04:00``.
"""

import contextlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from sdr_assets.errors import ConfigError
from sdr_assets.paths import DEFAULT_SENSOR, DataPaths

NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")  # whole name: use fullmatch (no "$": it allows "\n")
KEY_SEP = "|"


@dataclass(frozen=True)
class SensorInfo:
    name: str
    hot_db: Path
    description: str = ""
    source: str = ""
    registered_ns: int = 0


def check_name(name: str) -> str:
    """A sensor name is a partition key and a folder name: lower-case letters, digits, - and _."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ConfigError(
            f"sensor name {name!r} is not valid: use 1-40 lower-case letters, "
            "digits, '-' or '_', starting with a letter or digit (e.g. roof-433)."
        )
    return name


def _meta_path(paths: DataPaths, name: str) -> Path:
    return paths.for_sensor(name).sensor_dir / "sensor.json"


def register_sensor(paths: DataPaths, name: str, *, description: str = "", source: str = "") -> SensorInfo:
    """Add a sensor to the data root's registry (its folder and sensor.json); errors if it exists."""
    check_name(name)
    if name == DEFAULT_SENSOR or _meta_path(paths, name).exists():
        raise ConfigError(
            f"sensor {name!r} is already registered in {paths.root}; `sdr-assets sensors list` shows them."
        )
    folder = paths.for_sensor(name).sensor_dir
    info = {"name": name, "description": description, "source": source, "registered_ns": time.time_ns()}
    tmp = folder / "sensor.json.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(info, indent=1) + "\n")
        os.replace(tmp, _meta_path(paths, name))
    except OSError as exc:
        with contextlib.suppress(OSError):  # a half-written sensor.json.tmp (disk full)
            tmp.unlink(missing_ok=True)
        raise ConfigError(
            f"cannot register sensor {name!r}: cannot write {folder} ({exc.strerror}); "
            f"make the data root {paths.root} writable or set $SDR_ASSETS_HOME to "
            "a writable folder."
        ) from exc
    return SensorInfo(name, paths.for_sensor(name).hot_db, description, source, info["registered_ns"])


def list_sensors(paths: DataPaths, on_error=None) -> list[SensorInfo]:
    """The default sensor first, then the registered ones by name. A sensor.json that cannot
    be read is an error naming the file, never silently skipped: raised, or, with
    ``on_error(message)`` (a service that must keep serving the others), reported and left out."""
    out = [SensorInfo(DEFAULT_SENSOR, paths.for_sensor(DEFAULT_SENSOR).hot_db, "the embedded default")]
    base = paths.root / "sensors"
    for meta in sorted(base.glob("*/sensor.json")) if base.is_dir() else []:
        try:
            info = json.loads(meta.read_text())
        except (OSError, ValueError) as exc:
            msg = (
                f"cannot read sensor registration {meta} ({exc}); fix or delete that file, "
                "then register the sensor again."
            )
            if on_error is None:
                raise ConfigError(msg) from exc
            on_error(msg)
            continue
        name = meta.parent.name
        if NAME_RE.fullmatch(name):
            out.append(
                SensorInfo(
                    name,
                    paths.for_sensor(name).hot_db,
                    str(info.get("description", "")),
                    str(info.get("source", "")),
                    int(info.get("registered_ns", 0)),
                )
            )
    return out


def require_registered(paths: DataPaths, name: str) -> str:
    """``name`` if it is the default or registered, else a ConfigError saying how to register it."""
    check_name(name)
    if name != DEFAULT_SENSOR and not _meta_path(paths, name).exists():
        known = ", ".join(s.name for s in list_sensors(paths))
        raise ConfigError(
            f"sensor {name!r} is not registered in {paths.root} (known: {known}); "
            f"register it first: sdr-assets sensors add {name}"
        )
    return name


def analysis_key(sensor: str, time_key: str) -> str:
    return f"{sensor}{KEY_SEP}{time_key}"


def split_key(key: str, default_sensor: str = DEFAULT_SENSOR) -> tuple[str, str]:
    """``roof|2026-11-23-04:00`` -> (roof, 2026-11-23-04:00); a bare time key belongs to
    ``default_sensor``."""
    sensor, sep, time_key = str(key).rpartition(KEY_SEP)
    return (sensor if sep else default_sensor), time_key


def key_slug(key: str) -> str:
    """A key as a relative file path: ``roof|2026-11-23-04:00`` -> ``roof/2026-11-23-0400``."""
    sensor, time_key = split_key(key)
    slug = time_key.replace(":", "")
    return f"{sensor}/{slug}" if KEY_SEP in str(key) else slug
