"""The one data root for everything the product writes.

``SDR_ASSETS_HOME`` (default ``./var`` in the working directory) holds::

    hot.db            the capture service's write-tuned database (the "default" sensor)
    sensors/NAME/     every other registered radio sensor: sensor.json, its own hot.db and
                      snapshots/ (``sdr-assets sensors add NAME``)
    analysis.db       the analysis side (windows, frames, labels, models, detections)
    snapshots/        point-in-time copies of hot.db, one per partition (transient)
    spectrograms/     8-bit PNG frames, one folder per partition
    models/           trained detectors (registry rows point here)
    datasets/         YOLO datasets built for training
    dagster/          DAGSTER_HOME for `make run`
    config/           ultralytics and matplotlib config (offline guards)
"""

import os
from dataclasses import dataclass
from pathlib import Path

from sdr_assets.errors import ConfigError

ENV_HOME = "SDR_ASSETS_HOME"
ENV_SENSOR = "SDR_ASSETS_SENSOR"  # the sensor CLI commands act on (default: "default")
DEFAULT_HOME = "var"
DEFAULT_SENSOR = "default"


def data_root(create: bool = True) -> Path:
    """Return the data root from ``$SDR_ASSETS_HOME`` (default ``./var``), absolute."""
    raw = os.environ.get(ENV_HOME, "").strip() or DEFAULT_HOME
    root = Path(raw).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise ConfigError(
            f"{ENV_HOME}={raw!r} points at a file, not a folder; set {ENV_HOME} to a folder (it is created if missing)."
        )
    if create:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the data root {root} ({exc.strerror}); set {ENV_HOME} to a writable folder."
            ) from exc
    return root


@dataclass(frozen=True)
class DataPaths:
    """Where each kind of data lives under one root; ``sensor`` picks the hot DB and snapshots."""

    root: Path
    sensor: str = DEFAULT_SENSOR

    @classmethod
    def from_env(cls, create: bool = True) -> "DataPaths":
        """The data root of ``$SDR_ASSETS_HOME``, for the sensor ``$SDR_ASSETS_SENSOR`` names."""
        return cls(data_root(create=create), os.environ.get(ENV_SENSOR, "").strip() or DEFAULT_SENSOR)

    def for_sensor(self, sensor: str) -> "DataPaths":
        return DataPaths(self.root, sensor)

    @property
    def sensor_dir(self) -> Path:
        """Where a registered sensor's files live (the default sensor's: the root itself)."""
        return self.root if self.sensor == DEFAULT_SENSOR else self.root / "sensors" / self.sensor

    @property
    def hot_db(self) -> Path:
        return self.sensor_dir / "hot.db"

    @property
    def analysis_db(self) -> Path:
        return self.root / "analysis.db"

    @property
    def snapshots(self) -> Path:
        return self.sensor_dir / "snapshots"

    @property
    def spectrograms(self) -> Path:
        return self.root / "spectrograms"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def datasets(self) -> Path:
        return self.root / "datasets"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster"

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def reports(self) -> Path:
        return self.root / "reports"
