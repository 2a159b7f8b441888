"""The one data root for everything the product writes.

``SDR_ASSETS_HOME`` (default ``./var`` in the working directory) holds::

    hot.db            the capture service's write-tuned database
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
DEFAULT_HOME = "var"


def data_root(create: bool = True) -> Path:
    """Return the data root from ``$SDR_ASSETS_HOME`` (default ``./var``), absolute."""
    raw = os.environ.get(ENV_HOME, "").strip() or DEFAULT_HOME
    root = Path(raw).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise ConfigError(
            f"{ENV_HOME}={raw!r} points at a file, not a folder; "
            f"set {ENV_HOME} to a folder (it is created if missing)."
        )
    if create:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the data root {root} ({exc.strerror}); "
                f"set {ENV_HOME} to a writable folder."
            ) from exc
    return root


@dataclass(frozen=True)
class DataPaths:
    """Where each kind of data lives under one root."""

    root: Path

    @classmethod
    def from_env(cls, create: bool = True) -> "DataPaths":
        return cls(data_root(create=create))

    @property
    def hot_db(self) -> Path:
        return self.root / "hot.db"

    @property
    def analysis_db(self) -> Path:
        return self.root / "analysis.db"

    @property
    def snapshots(self) -> Path:
        return self.root / "snapshots"

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
