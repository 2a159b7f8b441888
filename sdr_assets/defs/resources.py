"""Thin Dagster resources over the plain classes in store/, dsp/ and ml/."""

from pathlib import Path

import dagster as dg

from sdr_assets.paths import DataPaths


class SdrStore(dg.ConfigurableResource):
    """Where the hot DB, the analysis DB, snapshots and frames live, and how much is kept."""

    home: str = ""  # empty = $SDR_ASSETS_HOME (default ./var)
    keep_snapshots: int = 3  # snapshot files kept, newest first
    keep_partitions: int = 24  # partitions the analysis DB (circular buffer) keeps

    def paths(self) -> DataPaths:
        if self.home:
            root = Path(self.home).expanduser().resolve()
            root.mkdir(parents=True, exist_ok=True)
            return DataPaths(root)
        return DataPaths.from_env()


class SpectrogramSettings(dg.ConfigurableResource):
    """STFT geometry: nfft frequency rows x frame_cols time columns per 8-bit PNG frame."""

    nfft: int = 640
    hop: int = 640
    frame_cols: int = 640
    backend: str = "auto"  # auto | numpy | torch-cuda
