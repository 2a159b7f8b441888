"""Write a YOLO dataset from labelled frames, split by time.

Layout under ``out_dir``::

    images/train/<frame_id>.png   hard links to the spectrogram PNGs (copies across devices)
    images/val/...
    labels/train/<frame_id>.txt   one "class x_center y_center w h" line per box (may be empty)
    labels/val/...
    data.yaml                      absolute ``path``, ``train``, ``val``, ``nc``, ``names``

The split is by time: the last ``val_fraction`` of frames in time order form the validation
set, so no validation frame shares a moment with a training frame (spectrogram frames and
emissions straddle neighbouring frames; a random split would leak them).
"""

import json
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sdr_assets.errors import ModelError
from sdr_assets.ml.labels import CLASSES, YoloBox, class_id
from sdr_assets.store.window import AnalysisDB


@dataclass(frozen=True)
class FrameLabels:
    """One frame image and its YOLO boxes (class_id, x_center, y_center, w, h)."""

    frame_id: int
    path: Path | str
    t_start_ns: int
    boxes: list[YoloBox] = field(default_factory=list)


@dataclass(frozen=True)
class DatasetInfo:
    data_yaml: Path
    n_train: int
    n_val: int
    classes: tuple[str, ...]
    train_frame_ids: tuple[int, ...] = ()
    val_frame_ids: tuple[int, ...] = ()
    val_t_start_ns: int | None = None  # the first validation moment; all training frames start before it


def split_by_time(frames: Sequence[FrameLabels], val_fraction: float) -> tuple[list[FrameLabels], list[FrameLabels]]:
    """(train, val): the last ``val_fraction`` of frames in time order are validation."""
    if not 0.0 < val_fraction < 1.0:
        raise ModelError(f"val_fraction={val_fraction} must lie strictly between 0 and 1 (e.g. 0.2).")
    if len(frames) < 2:
        raise ModelError(
            f"a dataset needs at least 2 frames (one to train, one to validate), got {len(frames)}; "
            "render more spectrogram frames first."
        )
    ordered = sorted(frames, key=lambda f: (f.t_start_ns, f.frame_id))
    n_val = min(len(ordered) - 1, max(1, round(len(ordered) * val_fraction)))
    return ordered[:-n_val], ordered[-n_val:]


def _place_image(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed: copy instead
        shutil.copyfile(src, dst)


def _yaml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid YAML scalar, quotes and all


def build_dataset(
    frames: list[FrameLabels], out_dir: Path | str, val_fraction: float = 0.2, classes: tuple[str, ...] = CLASSES
) -> DatasetInfo:
    """Write the YOLO dataset for ``frames`` under ``out_dir`` (its images/ and labels/ are replaced)."""
    out_dir = Path(out_dir).resolve()
    train, val = split_by_time(frames, val_fraction)
    for sub in ("images", "labels"):
        shutil.rmtree(out_dir / sub, ignore_errors=True)
    for split, items in (("train", train), ("val", val)):
        img_dir, lab_dir = out_dir / "images" / split, out_dir / "labels" / split
        img_dir.mkdir(parents=True, exist_ok=True)
        lab_dir.mkdir(parents=True, exist_ok=True)
        for f in items:
            src = Path(f.path)
            if not src.is_file():
                raise ModelError(f"frame {f.frame_id}: image {src} is missing; re-render the partition's spectrograms.")
            stem = f"{int(f.frame_id):09d}"
            _place_image(src, img_dir / f"{stem}{src.suffix.lower()}")
            lines = []
            for cls, xc, yc, w, h in f.boxes:
                if not 0 <= cls < len(classes):
                    raise ModelError(f"frame {f.frame_id}: class id {cls} outside 0..{len(classes) - 1} ({classes}).")
                lines.append(f"{int(cls)} {xc:.6f} {yc:.6f} {w:.6f} {h:.6f}\n")
            (lab_dir / f"{stem}.txt").write_text("".join(lines))
    names = "".join(f"  {i}: {_yaml_str(n)}\n" for i, n in enumerate(classes))
    data_yaml = out_dir / "data.yaml"
    data_yaml.write_text(
        f"path: {_yaml_str(str(out_dir))}\ntrain: images/train\nval: images/val\nnc: {len(classes)}\nnames:\n{names}"
    )
    return DatasetInfo(
        data_yaml,
        len(train),
        len(val),
        tuple(classes),
        tuple(f.frame_id for f in train),
        tuple(f.frame_id for f in val),
        val[0].t_start_ns,
    )


def frame_labels_from_db(
    db: AnalysisDB,
    partition_keys: Iterable[str],
    root: Path | str,
    classes: tuple[str, ...] = CLASSES,
    include_auto: bool = True,
) -> list[FrameLabels]:
    """FrameLabels for every frame of the partitions, from the analysis DB's frames and labels
    tables. A relative frames.path is taken relative to ``root`` (the data root)."""
    base = Path(root)
    keys = list(partition_keys)
    boxes: dict[int, list[YoloBox]] = {}
    for lab in db.labels(*keys, include_auto=include_auto):
        boxes.setdefault(lab.frame_id, []).append(
            (class_id(lab.class_name, classes), lab.x_center, lab.y_center, lab.width, lab.height)
        )
    return [FrameLabels(f.frame_id, base / f.path, f.t_start_ns, boxes.get(f.frame_id, [])) for f in db.frames(*keys)]
