"""The nightly detector: dataset from labelled partitions -> train -> held-back contest -> registry.

1. The newest ``lookback_partitions`` partitions with INDEPENDENT labels (annotations, rtl_433
   packages) that start before ``before_ns`` give the frames; every frame of them is used (a
   frame without boxes is a background image), at most ``max_train_frames`` of them, spread
   evenly over time (a night on a CPU). Windows with only energy auto-labels are left
   out unless ``train_on_energy_labels``: a model taught by the energy detector can at best
   imitate it. Nothing independent left: :class:`NoIndependentLabels`, nothing is trained.
2. ``ml.dataset.build_dataset`` writes the YOLO dataset under ``datasets/<version>`` (split by
   time: the latest frames are held back for validation).
3. ``ml.train.train_detector`` trains under ``models/<version>``: by default it fine-tunes the
   current model (warm start, ``fine_tune_epochs``; the shipped model on a fresh data root,
   ``ml.shipped_model``), else from the yaml (``epochs``); per-epoch metrics go to
   ``on_epoch`` (the asset logs them to the telemetry table).
4. The held-back contest (``ml.contest``): the challenger, the current model and the energy
   detector run on the SAME held-back frames and are scored against their independent labels
   by time-frequency matching; the challenger becomes current only when its F1 beats both
   (``store.registry.champion_challenger``: a tie keeps the incumbent; no current model is no
   free win). ultralytics' mAP of both models on the validation labels
   (``ml.train.evaluate``) is kept beside it.
5. ONNX export (``ml.train.export_onnx``), registry row with partitions, params and metrics.
"""

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdr_assets.errors import ModelError
from sdr_assets.ml.contest import CHALLENGER_NAME, CHAMPION_NAME, ENERGY_NAME, ContestScore, held_back, score_detector
from sdr_assets.ml.dataset import FrameLabels, build_dataset, frame_labels_from_db
from sdr_assets.ml.infer import DEFAULT_CONF
from sdr_assets.ml.labels import CLASSES
from sdr_assets.ml.shipped_model import ensure_shipped_model
from sdr_assets.ml.train import EpochCallback, evaluate, export_onnx, train_detector
from sdr_assets.paths import DataPaths
from sdr_assets.store import registry
from sdr_assets.store.window import AnalysisDB

NO_LABELS_HINT = "materialise training_labels for some partitions first"


class NoLabelledFrames(ModelError):
    """Nothing to train on."""


class NoIndependentLabels(ModelError):
    """Only energy auto-labels to train on, and ``train_on_energy_labels`` is off."""

    def __init__(self, message: str, n_energy_only: int):
        super().__init__(message)
        self.n_energy_only = n_energy_only


@dataclass(frozen=True)
class TrainingConfig:
    model: str = "yolo11n.yaml"
    epochs: int = 30  # from scratch
    fine_tune_epochs: int = 15  # warm start
    imgsz: int = 320
    batch: int = 16
    device: str = "auto"
    lookback_partitions: int = 24
    max_train_frames: int = 2000  # the lookback's frames, thinned evenly in time to at most this (0: all)
    val_fraction: float = 0.2
    patience: int = 20
    seed: int = 0
    warm_start: bool = True  # start from the current model's weights (same classes), not from scratch
    fine_tune_lr0: float = 1e-4  # warm start: AdamW at this rate, no warm-up (the from-scratch
    # schedule, lr 1e-3 after a warm-up, wiped a trained model back to mAP50 0.0 in one epoch)
    train_on_energy_labels: bool = False  # also learn from windows with only energy auto-labels
    # the held-back contest runs each detector as the detections asset would:
    conf: float = DEFAULT_CONF
    runtime: str = "auto"
    single_transmitter: bool = False


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
    verdict: registry.Verdict | None = None
    scores: dict[str, ContestScore] = field(default_factory=dict)  # challenger, current model, energy detector
    n_contest_frames: int = 0  # held-back frames with independent labels
    n_contest_left_out: int = 0  # held-back frames without (not scored)
    n_energy_only: int = 0  # windows left out: only energy auto-labels


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
    parts, energy_only = training_partitions(db, cfg, before_ns)
    if not parts and not energy_only:
        raise NoLabelledFrames(
            f"no labelled frames in {paths.analysis_db}: {NO_LABELS_HINT} (they need spectrograms of a window)."
        )
    if not parts:
        raise NoIndependentLabels(
            f"skipped: no independent labels ({len(energy_only)} of the newest labelled windows had only energy "
            "auto-labels, no annotation and no rtl_433 package); a model taught by the energy detector can at best "
            "imitate it. Give windows annotations or rtl_433 packages (install rtl-433, re-materialise "
            "training_labels), or set train_on_energy_labels to opt in.",
            len(energy_only),
        )
    if energy_only:
        log(f"left out {len(energy_only)} windows with only energy auto-labels (train_on_energy_labels is off)")
    frames = frame_labels_from_db(db, parts, root=paths.root, include_auto=cfg.train_on_energy_labels)
    n_available = len(frames)
    frames = thin_frames(frames, cfg.max_train_frames)
    if len(frames) < n_available:
        log(
            f"{n_available} frames in {len(parts)} windows: every {n_available / len(frames):.1f}th kept ({len(frames)})"
        )
    if len(frames) < 2:
        raise NoLabelledFrames(
            f"only {len(frames)} labelled frame(s) in {', '.join(parts)}: a dataset needs 2 "
            f"(one to train, one to validate); {NO_LABELS_HINT} over a longer window."
        )
    out = train_frames_and_register(db, paths, cfg, frames, parts, on_epoch=on_epoch, log=log)
    out.n_energy_only = len(energy_only)
    return out


THIN_BLOCK_FRAMES = 10  # thinning keeps runs of this many consecutive frames: few cut emissions


def thin_frames(frames: list[FrameLabels], max_frames: int) -> list[FrameLabels]:
    """At most ``max_frames`` of ``frames`` (0: no limit), in time order: runs of
    ``THIN_BLOCK_FRAMES`` consecutive frames spread evenly over time (isolated frames would cut
    every emission at their edges, and the held-back contest scores the latest of them)."""
    ordered = sorted(frames, key=lambda f: (f.t_start_ns, f.frame_id))
    if max_frames <= 0 or len(ordered) <= max_frames:
        return ordered
    block = max(1, min(THIN_BLOCK_FRAMES, max_frames))
    blocks = [ordered[i : i + block] for i in range(0, len(ordered), block)]
    n_keep = max(1, max_frames // block)
    step = len(blocks) / n_keep
    return [f for k in range(n_keep) for f in blocks[int(k * step)]][:max_frames]


def training_partitions(db: AnalysisDB, cfg: TrainingConfig, before_ns: int | None) -> tuple[list[str], list[str]]:
    """(the windows to learn from, oldest first; the newest labelled windows left out because
    they hold only energy auto-labels)."""
    labelled = db.labelled_partitions(cfg.lookback_partitions, before_ns)
    if cfg.train_on_energy_labels:
        return labelled, []
    independent = db.labelled_partitions(cfg.lookback_partitions, before_ns, independent_only=True)
    return independent, [k for k in labelled if k not in set(independent)]


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


def _contestant(row: registry.ModelRow, cfg: TrainingConfig):
    from sdr_assets.ml.infer import load_detector

    return load_detector(row, prefer=cfg.runtime, conf=cfg.conf)


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
    from, for the registry): e.g. frames labelled in other data roots (bench/rtl433_yolo.py).
    The contest scores only held-back frames that are in ``db``'s frames table under ``parts``:
    frames from elsewhere cannot be scored, so their model is registered, never promoted."""
    shipped = ensure_shipped_model(db, paths)
    if shipped.note:
        log(shipped.note)
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
        epochs=cfg.fine_tune_epochs if warm_from else cfg.epochs,
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
    champion_usable = champion is not None and Path(champion.path).is_file()
    if champion is not None:
        if champion_usable:
            imgsz = int(champion.params.get("imgsz", cfg.imgsz))
            champion_metrics = evaluate(champion.path, ds.data_yaml, imgsz=imgsz, device=cfg.device)
        else:
            note = f"champion {champion.version}'s weights {champion.path} are missing: it cannot defend"
            log(note)
    onnx = export_onnx(result.weights_path, imgsz=cfg.imgsz)

    # the held-back contest (ml.contest): all three on the same frames, independent labels only
    held = held_back(db, parts, ds.val_frame_ids)
    row = registry.ModelRow(
        version, 0, str(result.weights_path), str(onnx), params={"imgsz": cfg.imgsz}, classes=CLASSES
    )
    single = cfg.single_transmitter
    scores = {
        CHALLENGER_NAME: score_detector(
            db, paths.root, held, CHALLENGER_NAME, _contestant(row, cfg), version, single_transmitter=single
        )
    }
    if champion_usable:
        try:
            scores[CHAMPION_NAME] = score_detector(
                db,
                paths.root,
                held,
                CHAMPION_NAME,
                _contestant(champion, cfg),
                champion.version,
                single_transmitter=single,
            )
        except ModelError as exc:
            note = f"champion {champion.version} cannot run ({exc}): it cannot defend"
            log(note)
    scores[ENERGY_NAME] = score_detector(db, paths.root, held, ENERGY_NAME)
    verdict = registry.champion_challenger(
        scores[CHALLENGER_NAME].metrics(),
        scores[CHAMPION_NAME].metrics() if CHAMPION_NAME in scores else None,
        scores[ENERGY_NAME].metrics(),
    )
    if held.n_left_out:
        log(f"{held.n_left_out} held-back frames have only energy auto-labels: not scored")
    params = {
        **result.params,
        "val_fraction": cfg.val_fraction,
        "lookback_partitions": cfg.lookback_partitions,
        "max_train_frames": cfg.max_train_frames,
        "train_on_energy_labels": cfg.train_on_energy_labels,
        "n_train": ds.n_train,
        "n_val": ds.n_val,
        "n_boxes": n_boxes,
        "epochs_run": result.epochs_run,
        "train_s": round(result.seconds, 1),
        "val_frame_ids": list(ds.val_frame_ids),
        "champion": champion.version if champion else None,
        "champion_metrics_same_val": _nan_to_none(champion_metrics) if champion_metrics else None,
        "contest": {
            "frames": held.n_frames,
            "frames_left_out": held.n_left_out,
            "references": held.n_references,
            "scores": {name: _nan_to_none(sc.metrics()) for name, sc in scores.items()},
            "winner": verdict.winner,
            "verdict": verdict.reason,
        },
    }
    metrics = {**challenger, **{f"heldback_{k}": v for k, v in scores[CHALLENGER_NAME].metrics().items()}}
    registry.register_model(db, version, result.weights_path, onnx, parts, params, metrics, CLASSES)
    if verdict.promoted:
        registry.promote(db, version)
    log(f"{version}: {verdict.reason}")
    return TrainingOutcome(
        version,
        verdict.promoted,
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
        verdict,
        scores,
        held.n_frames,
        held.n_left_out,
    )
