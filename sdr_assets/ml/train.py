"""Train, evaluate and export the YOLO detector with ultralytics, fully offline.

ultralytics is imported inside each function, after :func:`ensure_offline`. Models are built
from a yaml (``yolo11n.yaml``) or from a local checkpoint that exists; a bare ``.pt`` name
would download and is refused. ``amp=False`` always (the CUDA AMP check downloads weights).
"""

import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdr_assets.errors import ModelError
from sdr_assets.ml.offline import ensure_offline

# ultralytics results keys -> ours
_METRIC_KEYS = {
    "metrics/mAP50(B)": "map50",
    "metrics/mAP50-95(B)": "map50_95",
    "metrics/precision(B)": "precision",
    "metrics/recall(B)": "recall",
}

EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass(frozen=True)
class TrainResult:
    weights_path: Path  # best.pt
    metrics: dict[str, float]  # map50, map50_95, precision, recall of best.pt on the val split
    epochs_run: int
    seconds: float
    device: str  # "cpu" | "cuda:0"
    params: dict[str, Any] = field(default_factory=dict)  # hyper-parameters, for the registry


def resolve_device(device: str = "auto") -> str:
    """ "auto" -> "cuda:0" when torch sees a GPU, else "cpu"; anything else is passed through."""
    if device != "auto":
        return device
    import torch

    return "cuda:0" if torch.cuda.is_available() else "cpu"


def _ul_device(device: str) -> str:
    return device.split(":", 1)[1] if device.startswith("cuda:") else ("0" if device == "cuda" else device)


def _check_model_source(model: str | Path) -> str:
    src = str(model)
    if src.endswith((".yaml", ".yml")):
        return src
    if Path(src).is_file():
        return src
    raise ModelError(
        f"model {src!r} is neither a yaml (e.g. 'yolo11n.yaml') nor an existing local checkpoint; "
        "a bare '.pt' name would be downloaded, which is not allowed."
    )


def _pick_metrics(raw: dict[str, Any] | None) -> dict[str, float]:
    """Our metric names from an ultralytics results dict (losses kept under their own names)."""
    out: dict[str, float] = {}
    for key, value in (raw or {}).items():
        try:
            out[_METRIC_KEYS.get(key, key)] = float(value)
        except (TypeError, ValueError):
            continue  # non-numeric entries (none expected) are not metrics
    return out


def train_detector(
    data_yaml: Path | str,
    out_dir: Path | str,
    *,
    model: str | Path = "yolo11n.yaml",
    epochs: int = 50,
    imgsz: int = 320,
    batch: int = 16,
    device: str = "auto",
    workers: int = 0,
    seed: int = 0,
    patience: int = 20,
    on_epoch: EpochCallback | None = None,
    **overrides: Any,
) -> TrainResult:
    """Train from scratch (or fine-tune a local checkpoint) on ``data_yaml``; results under ``out_dir/train``.

    ``on_epoch(epoch, metrics)`` is called after every epoch's validation with epoch 1-based
    and metrics {map50, map50_95, precision, recall, train/box_loss, ..., lr/pg0, ...}.
    ``overrides`` go to ultralytics unchanged (augmentation, lr0, ...).
    """
    data_yaml = Path(data_yaml).resolve()
    if not data_yaml.is_file():
        raise ModelError(f"{data_yaml} does not exist; build the dataset first (ml.dataset.build_dataset).")
    src = _check_model_source(model)
    dev = resolve_device(device)
    ensure_offline()
    from ultralytics import YOLO

    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    params = {
        "model": src,
        "epochs": epochs,
        "imgsz": imgsz,
        "batch": batch,
        "device": dev,
        "workers": workers,
        "seed": seed,
        "patience": patience,
        **overrides,
    }
    # deterministic is cheap on CPU; on CUDA it forces slower kernels, so it is opt-in there
    args = dict(
        data=str(data_yaml),
        epochs=epochs,
        imgsz=imgsz,
        batch=batch,
        device=_ul_device(dev),
        workers=workers,
        seed=seed,
        deterministic=dev == "cpu",
        patience=patience,
        project=str(out_dir),
        name="train",
        exist_ok=True,
        plots=False,
        amp=False,
        verbose=False,
        # a yaml builds fresh weights (never a download); a checkpoint is fine-tuned
        pretrained=not src.endswith((".yaml", ".yml")),
    )
    args.update(overrides)
    args["amp"] = False  # the AMP check downloads weights
    yolo = YOLO(src)
    state = {"final": False, "epochs": 0}

    def _wrap_final_eval(trainer: Any) -> None:
        # The trainer re-fires on_fit_epoch_end once more for best.pt's final validation; flag it.
        original = getattr(trainer, "final_eval", None)
        if original is None:  # an ultralytics without it: nothing is re-fired to filter
            return

        def final_eval() -> None:
            state["final"] = True
            original()

        trainer.final_eval = final_eval

    def _epoch_end(trainer: Any) -> None:
        if state["final"]:
            return
        state["epochs"] += 1
        if on_epoch is not None:
            metrics = _pick_metrics(trainer.metrics)
            metrics.update(_pick_metrics(trainer.label_loss_items(trainer.tloss, prefix="train")))
            metrics.update(_pick_metrics(trainer.lr))
            on_epoch(trainer.epoch + 1, metrics)

    yolo.add_callback("on_pretrain_routine_start", _wrap_final_eval)
    yolo.add_callback("on_fit_epoch_end", _epoch_end)
    t0 = time.perf_counter()
    try:
        yolo.train(**args)
    except (RuntimeError, ValueError, FileNotFoundError, AssertionError) as exc:
        raise ModelError(
            f"training on {data_yaml} failed: {exc}. Check the dataset (images, labels, data.yaml) "
            f"and the device {dev!r}."
        ) from exc
    seconds = time.perf_counter() - t0
    trainer = yolo.trainer
    weights = Path(trainer.best if Path(trainer.best).is_file() else trainer.last)
    if not weights.is_file():
        raise ModelError(f"training finished without a checkpoint under {trainer.save_dir}; see its logs.")
    metrics = _pick_metrics(trainer.metrics)
    summary = {k: metrics.get(k, math.nan) for k in _METRIC_KEYS.values()}
    return TrainResult(weights, summary, state["epochs"], seconds, dev, params)


def evaluate(
    weights: Path | str, data_yaml: Path | str, imgsz: int = 320, device: str = "auto", batch: int = 16
) -> dict[str, float]:
    """map50, map50_95, precision, recall of ``weights`` on the val split of ``data_yaml``.

    Champion/challenger: evaluate both models with the SAME data_yaml so they face the same frames.
    """
    weights = Path(weights)
    if not weights.is_file():
        raise ModelError(f"weights {weights} do not exist; check the registry row's path.")
    dev = resolve_device(device)
    ensure_offline()
    from ultralytics import YOLO

    with tempfile.TemporaryDirectory(prefix="sdr_eval_") as tmp:
        res = YOLO(str(weights)).val(
            data=str(Path(data_yaml).resolve()),
            imgsz=imgsz,
            batch=batch,
            device=_ul_device(dev),
            workers=0,
            split="val",
            plots=False,
            save_json=False,
            project=tmp,
            name="val",
            verbose=False,
            half=False,
        )
    metrics = _pick_metrics(res.results_dict)
    return {k: metrics.get(k, math.nan) for k in _METRIC_KEYS.values()}


def export_onnx(weights: Path | str, imgsz: int = 320, opset: int = 17, simplify: bool = True) -> Path:
    """Export ``weights`` to ``<weights>.onnx`` (input N x 3 x imgsz x imgsz with a dynamic batch
    axis, so ``OnnxDetector`` runs frames in batches; CPU, fp32).

    onnx and onnxslim are installed dependencies, so nothing is pip-installed. If onnxslim
    fails, the export is retried without simplification rather than failing the run.
    """
    weights = Path(weights)
    if not weights.is_file():
        raise ModelError(f"weights {weights} do not exist; train a model first.")
    ensure_offline()
    from ultralytics import YOLO

    kwargs = dict(format="onnx", imgsz=imgsz, opset=opset, dynamic=True, half=False, device="cpu", nms=False)
    try:
        out = YOLO(str(weights)).export(simplify=simplify, **kwargs)
    except (RuntimeError, ValueError, ImportError) as exc:
        if not simplify:
            raise ModelError(f"ONNX export of {weights} failed: {exc}.") from exc
        out = YOLO(str(weights)).export(simplify=False, **kwargs)
    path = Path(out)
    if not path.is_file():
        raise ModelError(f"ONNX export of {weights} produced no file at {path}.")
    return path


def save_untrained(
    out_path: Path | str, model: str = "yolo11n.yaml", classes: tuple[str, ...] | None = None, seed: int = 0
) -> Path:
    """Save a randomly initialised detector (from a yaml, ``len(classes)`` outputs) as a checkpoint
    that TorchDetector and export_onnx accept: for speed benchmarks and plumbing tests."""
    from sdr_assets.ml.labels import CLASSES

    classes = tuple(classes or CLASSES)
    if not str(model).endswith((".yaml", ".yml")):
        raise ModelError(f"model {model!r} must be a yaml (e.g. 'yolo11n.yaml') to build untrained weights.")
    ensure_offline()
    import torch
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(seed)
    yolo = YOLO(model)
    yolo.model = DetectionModel(str(model), nc=len(classes), verbose=False)
    yolo.model.names = dict(enumerate(classes))
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    yolo.save(out_path)
    return out_path
