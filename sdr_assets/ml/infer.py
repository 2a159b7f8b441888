"""Run a trained detector on spectrogram frames: onnxruntime on CPU, torch (ultralytics) on CUDA.

Both detectors take a list of images (PNG paths or uint8 arrays, grayscale or 3-channel) and
return, per image, a list of :class:`Detection` (class_name, confidence, x0, y0, x1, y1) in
pixels of the ORIGINAL image. Both letterbox to ``imgsz`` the way ultralytics does, so the
two agree up to numerics. Post-processing in absolute time lives in ``ml.postprocess`` and is
re-exported here.
"""

import ast
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from sdr_assets.errors import ModelError
from sdr_assets.ml.labels import CLASSES
from sdr_assets.ml.offline import ensure_offline
from sdr_assets.ml.postprocess import DetectionBox, join_frame_edges, suppress_overlaps, to_time_freq

# The default minimum confidence, chosen on the generator's held-out scenarios (never on
# ../shared): bench/detector_defaults.py, the shipped model, F1 best at 0.1 of 0.05/0.1/0.25 by
# both matching rules (docs/detector.md "Defaults, measured").
DEFAULT_CONF = 0.1

__all__ = [
    "Detection",
    "OnnxDetector",
    "TorchDetector",
    "decode_output",
    "load_detector",
    "load_image",
    "nms",
    "preprocess",
    "DetectionBox",
    "join_frame_edges",
    "suppress_overlaps",
    "to_time_freq",
]

Image = str | Path | np.ndarray
_MAX_WH = 7680.0  # box offset per class for one-pass class-aware NMS (ultralytics uses the same)


class Detection(NamedTuple):
    class_name: str
    confidence: float
    x0: float
    y0: float
    x1: float
    y1: float


def load_image(image: Image) -> np.ndarray:
    """HxWx3 uint8 (grey replicated) from a path or an array."""
    import cv2

    if isinstance(image, (str, Path)):
        arr = cv2.imread(str(image), cv2.IMREAD_GRAYSCALE)
        if arr is None:
            raise ModelError(f"cannot read image {image}; check the frame's path in the frames table.")
    else:
        arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ModelError(f"images must be uint8, got {arr.dtype}; scale the spectrogram to 0..255 first.")
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ModelError(f"image shape {arr.shape} is neither HxW nor HxWx3.")
    return arr


def letterbox(img: np.ndarray, imgsz: int) -> tuple[np.ndarray, float, tuple[float, float]]:
    """Resize keeping aspect and pad with 114 to imgsz x imgsz (as ultralytics' LetterBox); the
    channels, if any, are kept."""
    import cv2

    h, w = img.shape[:2]
    r = min(imgsz / h, imgsz / w)
    new_w, new_h = int(round(w * r)), int(round(h * r))
    if (new_w, new_h) != (w, h):
        img = cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    dw, dh = (imgsz - new_w) / 2, (imgsz - new_h) / 2
    top, left = int(round(dh - 0.1)), int(round(dw - 0.1))
    out = np.full((imgsz, imgsz) + img.shape[2:], 114, dtype=np.uint8)  # H x W (grey) or H x W x C
    out[top : top + new_h, left : left + new_w] = img
    return out, r, (left, top)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression (boxes Nx4 x0,y0,x1,y1), best first."""
    order = np.argsort(-scores, kind="stable")
    area = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        xx0 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy0 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx1 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy1 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(xx1 - xx0, 0, None) * np.clip(yy1 - yy0, 0, None)
        order = rest[inter / (area[i] + area[rest] - inter + 1e-9) <= iou]
    return np.asarray(keep, dtype=np.int64)


def decode_output(
    out: np.ndarray,
    classes: Sequence[str],
    *,
    r: float = 1.0,
    pad: tuple[float, float] = (0.0, 0.0),
    hw: tuple[int, int],
    conf: float = DEFAULT_CONF,
    iou: float = 0.7,
    max_det: int = 300,
    end2end: bool = False,
) -> list[Detection]:
    """Detections in original-image pixels from one YOLO output.

    ``out``: (1, 4 + nc, anchors) with cx, cy, w, h in letterboxed-input pixels and per-class
    scores (YOLOv8/11 export), or with ``end2end`` (1, max_det, 6) x0, y0, x1, y1, score,
    class (NMS-free heads). ``r``, ``pad``: the letterbox scale and (left, top) padding;
    ``hw``: the original image's (height, width). Class-aware NMS at ``iou``.
    """
    if end2end:  # (1, max_det, 6): x0, y0, x1, y1, score, class; NMS already done
        rows = out[0]
        boxes, scores, cls = rows[:, :4], rows[:, 4], rows[:, 5].astype(np.int64)
        keep = np.nonzero(scores >= conf)[0]
    else:  # (1, 4 + nc, anchors): cx, cy, w, h, per-class scores
        pred = out[0].T
        cls_scores = pred[:, 4:]
        cls = cls_scores.argmax(axis=1)
        scores = cls_scores[np.arange(len(cls)), cls]
        cand = np.nonzero(scores >= conf)[0]
        xywh = pred[cand, :4]
        boxes = np.empty_like(pred[:, :4])
        boxes[cand] = np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], axis=1)
        offset = cls[cand, None].astype(np.float32) * _MAX_WH  # class-aware NMS in one pass (as ultralytics)
        keep = cand[nms(boxes[cand] + offset, scores[cand], iou)]
    keep = keep[np.argsort(-scores[keep], kind="stable")][:max_det]
    h, w = hw
    dets = []
    for i in keep:
        x0, y0, x1, y1 = boxes[i]
        x0, x1 = np.clip([(x0 - pad[0]) / r, (x1 - pad[0]) / r], 0, w)
        y0, y1 = np.clip([(y0 - pad[1]) / r, (y1 - pad[1]) / r], 0, h)
        c = int(cls[i])
        name = classes[c] if c < len(classes) else str(c)
        dets.append(Detection(name, float(scores[i]), float(x0), float(y0), float(x1), float(y1)))
    return dets


def preprocess(image: Image, imgsz: int) -> tuple[np.ndarray, float, tuple[float, float], tuple[int, int]]:
    """One image -> (3 x imgsz x imgsz float32 RGB in 0..1, letterbox scale, (left, top) pad,
    original (height, width)), as ultralytics feeds its exports. A grey frame is resized once
    and replicated into the three channels at the end."""
    if isinstance(image, (str, Path)):
        import cv2

        arr = cv2.imread(str(image), cv2.IMREAD_GRAYSCALE)
        if arr is None:
            raise ModelError(f"cannot read image {image}; check the frame's path in the frames table.")
    else:
        arr = np.asarray(image)
        if arr.dtype != np.uint8:
            raise ModelError(f"images must be uint8, got {arr.dtype}; scale the spectrogram to 0..255 first.")
    if arr.ndim == 3 and arr.shape[2] == 3:
        boxed, r, pad = letterbox(arr, imgsz)
        chw = boxed[:, :, ::-1].transpose(2, 0, 1)
    elif arr.ndim == 2:
        boxed, r, pad = letterbox(arr, imgsz)  # one channel: grey, so RGB == BGR
        chw = np.broadcast_to(boxed[None], (3, imgsz, imgsz))
    else:
        raise ModelError(f"image shape {arr.shape} is neither HxW nor HxWx3.")
    x = np.empty((3, imgsz, imgsz), np.float32)
    np.multiply(chw, np.float32(1 / 255.0), out=x)
    return x, r, pad, arr.shape[:2]


class OnnxDetector:
    """A YOLO ONNX export run with onnxruntime, ``batch`` images a call where the export's batch
    axis is dynamic (``export_onnx`` since session 4); a fixed batch of 1 (older exports) runs
    them one at a time, a fixed batch of N in calls of N (the last one padded)."""

    def __init__(
        self,
        onnx_path: Path | str,
        imgsz: int | None = None,
        classes: Sequence[str] | None = None,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        conf: float = DEFAULT_CONF,
        iou: float = 0.7,
        max_det: int = 300,
        threads: int | None = None,
        batch: int = 16,
    ):
        import onnxruntime as ort

        path = Path(onnx_path)
        if not path.is_file():
            raise ModelError(f"ONNX model {path} does not exist; export it with ml.train.export_onnx.")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            # idle worker threads spin by default: CPU burnt where runs share the cores
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), opts, providers=list(providers))
        meta = self.session.get_modelmeta().custom_metadata_map
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        shape_sz = inp.shape[2] if isinstance(inp.shape[2], int) else None
        self.imgsz = int(imgsz or shape_sz or _meta_imgsz(meta) or 320)
        if shape_sz and self.imgsz != shape_sz:
            raise ModelError(f"{path} was exported for imgsz={shape_sz}, not {self.imgsz}; pass imgsz={shape_sz}.")
        fixed = inp.shape[0] if isinstance(inp.shape[0], int) else None
        self.fixed_batch = fixed
        self.batch = fixed or max(1, int(batch))
        names = ast.literal_eval(meta["names"]) if "names" in meta else None
        self.classes = (
            tuple(classes) if classes is not None else (tuple(names[i] for i in sorted(names)) if names else CLASSES)
        )
        self.end2end = meta.get("end2end", "False") == "True"
        self.conf, self.iou, self.max_det = conf, iou, max_det

    def _decode(self, out: np.ndarray, r: float, pad: tuple[float, float], hw: tuple[int, int]) -> list[Detection]:
        return decode_output(
            out,
            self.classes,
            r=r,
            pad=pad,
            hw=hw,
            conf=self.conf,
            iou=self.iou,
            max_det=self.max_det,
            end2end=self.end2end,
        )

    def __call__(self, images: Sequence[Image]) -> list[list[Detection]]:
        results: list[list[Detection]] = []
        for i in range(0, len(images), self.batch):
            prepped = [preprocess(image, self.imgsz) for image in images[i : i + self.batch]]
            x = np.stack([p[0] for p in prepped])
            if self.fixed_batch and x.shape[0] < self.fixed_batch:  # pad a fixed batch
                x = np.concatenate([x, np.zeros((self.fixed_batch - x.shape[0],) + x.shape[1:], np.float32)])
            out = self.session.run(None, {self.input_name: x})[0]
            results.extend(self._decode(out[k : k + 1], r, pad, hw) for k, (_, r, pad, hw) in enumerate(prepped))
        return results


def _meta_imgsz(meta: dict) -> int | None:
    """imgsz from an ultralytics export's metadata ("[320, 320]"), None if absent."""
    try:
        value = ast.literal_eval(meta.get("imgsz", "None"))
    except (ValueError, SyntaxError):
        return None
    return int(value[0]) if isinstance(value, (list, tuple)) and value else None


class TorchDetector:
    """The same model run by ultralytics (torch); use it on CUDA."""

    def __init__(
        self,
        weights: Path | str,
        device: str = "auto",
        imgsz: int = 320,
        conf: float = DEFAULT_CONF,
        iou: float = 0.7,
        max_det: int = 300,
    ):
        from sdr_assets.ml.train import _ul_device, resolve_device

        path = Path(weights)
        if not path.is_file():
            raise ModelError(f"weights {path} do not exist; check the registry row's path.")
        ensure_offline()
        from ultralytics import YOLO

        self.model = YOLO(str(path))
        self.device = resolve_device(device)
        self._ul_device = _ul_device(self.device)
        self.imgsz, self.conf, self.iou, self.max_det = imgsz, conf, iou, max_det
        names = self.model.names
        self.classes = tuple(names[i] for i in sorted(names))

    def __call__(self, images: Sequence[Image]) -> list[list[Detection]]:
        arrays = [load_image(i) for i in images]
        if not arrays:
            return []
        res = self.model.predict(
            arrays,
            imgsz=self.imgsz,
            conf=self.conf,
            iou=self.iou,
            max_det=self.max_det,
            device=self._ul_device,
            verbose=False,
            half=False,
        )
        out = []
        for r in res:
            xyxy = r.boxes.xyxy.cpu().numpy()
            confs = r.boxes.conf.cpu().numpy()
            cls = r.boxes.cls.cpu().numpy().astype(int)
            out.append([Detection(self.classes[c], float(s), *map(float, b)) for b, s, c in zip(xyxy, confs, cls)])
        return out


def cuda_present() -> bool:
    """Does torch see a CUDA device? Answered without importing torch (seconds of CPU) where no
    NVIDIA driver is loaded (``dsp.stft.nvidia_driver_loaded``): then there is none."""
    from sdr_assets.dsp.stft import nvidia_driver_loaded

    if not nvidia_driver_loaded():
        return False
    import torch

    return torch.cuda.is_available()


def load_detector(
    model_row: Any, prefer: str = "auto", conf: float = DEFAULT_CONF, iou: float = 0.7, threads: int | None = None
) -> OnnxDetector | TorchDetector:
    """A detector for a registry row (``path``, ``onnx_path``, ``params['imgsz']``, ``classes``).

    prefer="auto": torch on CUDA when torch sees a GPU, else onnxruntime on CPU when the row
    has an ONNX file, else torch on CPU. "onnx" / "torch" force one.
    """
    if prefer not in ("auto", "onnx", "torch"):
        raise ModelError(f"prefer={prefer!r}; use 'auto', 'onnx' or 'torch'.")
    imgsz = int((getattr(model_row, "params", None) or {}).get("imgsz", 320))
    classes = getattr(model_row, "classes", None) or None
    onnx_path = getattr(model_row, "onnx_path", None)
    if prefer == "auto":
        if cuda_present():
            prefer = "torch"
        else:
            prefer = "onnx" if onnx_path and Path(onnx_path).is_file() else "torch"
    if prefer == "onnx":
        if not onnx_path:
            raise ModelError(f"model {getattr(model_row, 'version', '?')} has no ONNX export; export it or use torch.")
        return OnnxDetector(onnx_path, imgsz, classes, conf=conf, iou=iou, threads=threads)
    return TorchDetector(model_row.path, "auto", imgsz, conf=conf, iou=iou)
