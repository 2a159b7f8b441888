"""Thin Dagster resources over the plain classes in store/, dsp/ and ml/."""

from pathlib import Path

import dagster as dg

from sdr_assets.paths import DEFAULT_SENSOR, DataPaths
from sdr_assets.store.window import AnalysisDB


class SdrStore(dg.ConfigurableResource):
    """Where the hot DB, the analysis DB, snapshots and frames live, and how much is kept."""

    home: str = ""  # empty = $SDR_ASSETS_HOME (default ./var)
    keep_snapshots: int = 3  # snapshot files kept, newest first
    keep_partitions: int = 24  # partitions the analysis DB (circular buffer) keeps; their
    # spectrograms/ and reports/ go with them
    keep_models: int = 5  # models/: the current model plus the newest N trainings' folders
    keep_datasets: int = 2  # datasets/: the YOLO datasets of the newest N trainings
    keep_run_days: int = 30  # Dagster run history (rows, event logs, compute logs), in days
    # Snapshot replica (docs/replica.md): s3://BUCKET/PREFIX; empty = $SDR_ASSETS_REPLICA_URL,
    # and neither = off. Endpoint and keys come from the standard AWS variables.
    replica_url: str = ""
    replica_keep: int = 48  # snapshots the replica keeps per sensor, newest partitions first
    replica_keep_days: float = 30.0  # and none uploaded longer ago than this
    replica_max_waiting: int = 12  # local snapshots held for a replica that is down
    replica_part_mb: int = 64  # multipart above this size, in parts of this size (>= 5)

    def telemetry_limits(self):
        """The telemetry bound (SDR_ASSETS_TELEMETRY_CAP_MB, SDR_ASSETS_TELEMETRY_MAX_AGE_DAYS)."""
        import os

        from sdr_assets.store.telemetry import TelemetryLimits

        return TelemetryLimits.from_env(os.environ)

    def replica(self):
        """The :class:`~sdr_assets.replica.s3.S3Replica` these settings name, or None (off)."""
        import os

        from sdr_assets.replica.s3 import ReplicaConfig, S3Replica

        config = ReplicaConfig.from_env(
            os.environ,
            self.replica_url,
            keep_count=self.replica_keep,
            keep_age_s=self.replica_keep_days * 86400.0,
            part_bytes=self.replica_part_mb * 2**20,
        )
        return None if config is None else S3Replica(config)

    def paths(self, sensor: str = DEFAULT_SENSOR) -> DataPaths:
        """The data root's paths, with the hot DB and snapshots of ``sensor``."""
        if self.home:
            root = Path(self.home).expanduser().resolve()
            root.mkdir(parents=True, exist_ok=True)
            return DataPaths(root, sensor)
        return DataPaths.from_env().for_sensor(sensor)

    def open_analysis(self) -> AnalysisDB:
        """The analysis DB, to use as ``with store.open_analysis() as db:`` (opened, created or
        migrated on entry, closed on exit): assets never open a connection themselves."""
        return AnalysisDB(self.paths().analysis_db)


class SpectrogramSettings(dg.ConfigurableResource):
    """STFT geometry: nfft frequency rows x frame_cols time columns per 8-bit PNG frame."""

    nfft: int = 640
    hop: int = 640
    frame_cols: int = 640
    backend: str = "auto"  # auto | numpy | torch-cuda


class DetectorSettings(dg.ConfigurableResource):
    """YOLO training and inference: modest CPU defaults; device auto picks CUDA when present."""

    model: str = "yolo11n.yaml"  # a yaml (yolo11n/s/m.yaml, yolov8n.yaml), never a .pt name
    epochs: int = 30  # training from scratch (no current model to start from)
    fine_tune_epochs: int = 15  # warm start: fine-tuning the current model
    imgsz: int = 320
    batch: int = 16
    device: str = "auto"  # auto | cpu | cuda
    lookback_partitions: int = 24  # the newest independently labelled time partitions a model learns from
    max_train_frames: int = 2000  # their frames, thinned evenly in time to at most this (0: all)
    val_fraction: float = 0.2  # the latest frames, held back for validation
    patience: int = 20
    seed: int = 0
    warm_start: bool = True  # fine-tune the current model (the shipped one on a fresh data root)
    train_on_energy_labels: bool = False  # also learn from windows with only energy auto-labels
    conf: float = 0.1  # inference: minimum confidence (= ml.infer.DEFAULT_CONF, chosen by bench/detector_defaults.py)
    single_transmitter: bool = False  # ISM-style captures, one transmitter at a time: model boxes
    # must show energy in their band, and overlaps in time are suppressed at any frequency
    runtime: str = "auto"  # inference: auto (torch on CUDA, else onnxruntime) | onnx | torch
    threads: int = 1  # inference: onnxruntime threads a run (0: one a core); one is the least CPU a
    # frame (bench/chain.py): windows and sensors run side by side, each run its own process

    def training_config(self):
        from sdr_assets.ml.training import TrainingConfig

        return TrainingConfig(
            model=self.model,
            epochs=self.epochs,
            fine_tune_epochs=self.fine_tune_epochs,
            imgsz=self.imgsz,
            batch=self.batch,
            device=self.device,
            lookback_partitions=self.lookback_partitions,
            max_train_frames=self.max_train_frames,
            val_fraction=self.val_fraction,
            patience=self.patience,
            seed=self.seed,
            warm_start=self.warm_start,
            train_on_energy_labels=self.train_on_energy_labels,
            conf=self.conf,
            runtime=self.runtime,
            single_transmitter=self.single_transmitter,
        )


class DecoderSettings(dg.ConfigurableResource):
    """rtl_433, the decoder and teacher: which binary, and when a quiet device counts as missing."""

    rtl_433: str = "rtl_433"  # a name on PATH or a path (Debian: sudo apt-get install rtl-433)
    missing_after_intervals: float = 3.0  # a device silent this many usual intervals is missing
    messages_shown: int = 20  # decoded_messages: the first messages tabled in the UI
