"""The nightly detector: dataset from labelled partitions -> train -> champion/challenger -> registry.

1. The last ``lookback_partitions`` partitions that have rows in the labels table (and start
   before ``before_ns``) give the frames; every frame of them is used (a frame without boxes
   is a background image).
2. ``ml.dataset.build_dataset`` writes the YOLO dataset under ``datasets/<version>`` (split by
   time: the latest frames are validation).
3. ``ml.train.train_detector`` trains under ``models/<version>``; per-epoch metrics go to
   ``on_epoch`` (the asset logs them to the telemetry table).
4. The challenger AND the current model (the champion) are evaluated on the SAME validation
   frames with ``ml.train.evaluate``; the challenger becomes current only if it beats the
   champion (``store.registry.champion_challenger``, on map50; a tie keeps the champion).
5. ONNX export (``ml.train.export_onnx``), registry row with partitions, params and metrics.
"""

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdr_assets.errors import ModelError
from sdr_assets.ml.dataset import FrameLabels, build_dataset, frame_labels_from_db
from sdr_assets.ml.labels import CLASSES
from sdr_assets.ml.train import EpochCallback, evaluate, export_onnx, train_detector
from sdr_assets.paths import DataPaths
from sdr_assets.store import registry
from sdr_assets.store.window import AnalysisDB

NO_LABELS_HINT = "materialise training_labels for some partitions first"


class NoLabelledFrames(ModelError):
    """Nothing to train on."""


@dataclass(frozen=True)
class TrainingConfig:
    model: str = "yolo11n.yaml"
    epochs: int = 30
    imgsz: int = 320
    batch: int = 16
    device: str = "auto"
    lookback_partitions: int = 24
    val_fraction: float = 0.2
    patience: int = 20
    seed: int = 0
    warm_start: bool = False  # start from the current model's weights (same classes), not from scratch
    fine_tune_lr0: float = 1e-4  # warm start: AdamW at this rate, no warm-up (the from-scratch
    # schedule, lr 1e-3 after a warm-up, wiped a trained model back to mAP50 0.0 in one epoch)


@dataclass
class TrainingOutcome:
    version: str
    promoted: bool
    partitions: list[str]
    n_train: int
    n_val: int
    n_boxes: int
    challenger_metrics: dict[str, float]
    champion_version: str | None
    champion_metrics: dict[str, float] | None
    weights_path: Path
    onnx_path: Path
    epochs_run: int
    train_s: float
    device: str
    params: dict[str, Any] = field(default_factory=dict)
    champion_note: str = ""


def new_version(db: AnalysisDB, model: str, now_s: float | None = None) -> str:
    """'20261123T020000-yolo11n' (UTC), with a -2, -3... suffix if that second is taken."""
    stem = Path(str(model)).name.split(".")[0]
    base = time.strftime("%Y%m%dT%H%M%S", time.gmtime(time.time() if now_s is None else now_s)) + f"-{stem}"
    taken = {m.version for m in registry.list_models(db)}
    version, n = base, 1
    while version in taken:
        n += 1
        version = f"{base}-{n}"
    return version


def _nan_to_none(metrics: dict[str, float]) -> dict[str, float | None]:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()}


def train_and_register(
    db: AnalysisDB,
    paths: DataPaths,
    cfg: TrainingConfig,
    *,
    before_ns: int | None = None,
    on_epoch: EpochCallback | None = None,
    log=lambda line: None,
) -> TrainingOutcome:
    """Steps 1-5 of the module doc on the open analysis DB ``db``."""
    parts = db.labelled_partitions(cfg.lookback_partitions, before_ns)
    if not parts:
        raise NoLabelledFrames(
            f"no labelled frames in {paths.analysis_db}: {NO_LABELS_HINT} (they need spectrograms of a window)."
        )
    frames = frame_labels_from_db(db, parts, root=paths.root)
    if len(frames) < 2:
        raise NoLabelledFrames(
            f"only {len(frames)} labelled frame(s) in {', '.join(parts)}: a dataset needs 2 "
            f"(one to train, one to validate); {NO_LABELS_HINT} over a longer window."
        )
    return train_frames_and_register(db, paths, cfg, frames, parts, on_epoch=on_epoch, log=log)


def warm_start_source(cfg: TrainingConfig, champion: Any, log=lambda line: None) -> tuple[str, str | None]:
    """(what to train from, the champion version it warm-starts from or None). Warm start takes
    the current model's weights when asked and usable (file present, same classes); else the
    yaml, from scratch, and the log says why."""
    if not cfg.warm_start:
        return cfg.model, None
    if champion is None:
        log("warm start asked, but no current model yet: training from scratch")
        return cfg.model, None
    if not Path(champion.path).is_file() or tuple(champion.classes) != tuple(CLASSES):
        log(
            f"warm start asked, but the current model {champion.version} cannot seed it (weights "
            f"{champion.path} missing or classes {champion.classes} differ): training from scratch"
        )
        return cfg.model, None
    log(f"warm start from the current model {champion.version} ({champion.path})")
    return str(champion.path), champion.version


def train_frames_and_register(
    db: AnalysisDB,
    paths: DataPaths,
    cfg: TrainingConfig,
    frames: list[FrameLabels],
    parts: list[str],
    *,
    on_epoch: EpochCallback | None = None,
    log=lambda line: None,
) -> TrainingOutcome:
    """Steps 2-5 on given labelled frames (absolute image paths; ``parts`` names where they came
    from, for the registry): e.g. frames labelled in other data roots (bench/rtl433_yolo.py)."""
    version = new_version(db, cfg.model)
    ds = build_dataset(frames, paths.datasets / version, val_fraction=cfg.val_fraction)
    n_boxes = sum(len(f.boxes) for f in frames)
    log(
        f"{version}: {len(frames)} frames ({ds.n_train} train, {ds.n_val} val, {n_boxes} boxes) "
        f"from {len(parts)} partitions"
    )
    champion = registry.current_model(db)
    source, warm_from = warm_start_source(cfg, champion, log)
    tune = dict(optimizer="AdamW", lr0=cfg.fine_tune_lr0, warmup_epochs=0) if warm_from else {}
    result = train_detector(
        ds.data_yaml,
        paths.models / version,
        model=source,
        epochs=cfg.epochs,
        imgsz=cfg.imgsz,
        batch=cfg.batch,
        device=cfg.device,
        seed=cfg.seed,
        patience=cfg.patience,
        on_epoch=on_epoch,
        **tune,
    )
    result.params["warm_start_from"] = warm_from
    challenger = evaluate(result.weights_path, ds.data_yaml, imgsz=cfg.imgsz, device=cfg.device)
    champion_metrics, note = None, ""
    if champion is not None:
        if Path(champion.path).is_file():
            imgsz = int(champion.params.get("imgsz", cfg.imgsz))
            champion_metrics = evaluate(champion.path, ds.data_yaml, imgsz=imgsz, device=cfg.device)
        else:
            note = f"champion {champion.version}'s weights {champion.path} are missing: it cannot defend"
            log(note)
    onnx = export_onnx(result.weights_path, imgsz=cfg.imgsz)
    params = {
        **result.params,
        "val_fraction": cfg.val_fraction,
        "lookback_partitions": cfg.lookback_partitions,
        "n_train": ds.n_train,
        "n_val": ds.n_val,
        "n_boxes": n_boxes,
        "epochs_run": result.epochs_run,
        "train_s": round(result.seconds, 1),
        "val_frame_ids": list(ds.val_frame_ids),
        "champion": champion.version if champion else None,
        "champion_metrics_same_val": _nan_to_none(champion_metrics) if champion_metrics else None,
    }
    registry.register_model(db, version, result.weights_path, onnx, parts, params, challenger, CLASSES)
    promoted = registry.champion_challenger(challenger, champion_metrics)
    if promoted:
        registry.promote(db, version)
    log(
        f"{version}: map50 {challenger.get('map50')} vs champion "
        f"{None if champion_metrics is None else champion_metrics.get('map50')} -> "
        f"{'promoted' if promoted else 'kept the champion'}"
    )
    return TrainingOutcome(
        version,
        promoted,
        parts,
        ds.n_train,
        ds.n_val,
        n_boxes,
        challenger,
        champion.version if champion else None,
        champion_metrics,
        result.weights_path,
        onnx,
        result.epochs_run,
        result.seconds,
        result.device,
        json.loads(json.dumps(params, default=str)),
        note,
    )
