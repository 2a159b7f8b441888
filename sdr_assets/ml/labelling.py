"""Training labels of one partition: annotations (or energy bursts) -> YOLO boxes -> labels table.

A window with annotations (synthetic ground truth, SigMF annotations) is labelled from them
(``auto = 0``); a label outside the detector's classes (a free-text SigMF label) becomes the
generic ``burst`` class, still ground truth. A window without annotations (a real capture)
is labelled by the energy detector run over its IQ (``ml.energy``), class ``burst``,
``auto = 1``. Boxes land on the spectrogram frames through each frame's geometry (time ->
x, frequency -> y; see ``ml.labels``). Re-labelling a partition replaces its rows.
"""

import bisect
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from sdr_assets.ml.energy import window_bursts
from sdr_assets.ml.labels import AUTO_CLASS, CLASSES, BoxGeometry, label_frame
from sdr_assets.store.frames import FrameRow
from sdr_assets.store.labels import LabelRow
from sdr_assets.store.window import AnalysisDB


class Box(NamedTuple):
    """Something to draw on a frame (what ml.labels.label_frame reads)."""

    t_start_ns: int
    t_end_ns: int
    freq_lower_hz: float
    freq_upper_hz: float
    label: str


@dataclass
class LabelStats:
    partition_key: str
    n_frames: int
    source: str  # "annotations" | "energy"
    n_sources: int  # annotations or energy bursts found in the window
    n_boxes: int = 0
    n_auto: int = 0
    n_ground_truth: int = 0
    per_class: dict[str, int] = field(default_factory=dict)
    relabelled: dict[str, int] = field(default_factory=dict)  # unknown label -> count (as burst)
    frames_with_boxes: int = 0


def overlapping(items: list, t_start_ns: int, t_end_ns: int, starts: list[int], max_len_ns: int) -> list:
    """Items (sorted by t_start_ns, ``starts`` their start times) overlapping [t_start_ns, t_end_ns)."""
    lo = bisect.bisect_left(starts, t_start_ns - max_len_ns)
    hi = bisect.bisect_left(starts, t_end_ns)
    return [b for b in items[lo:hi] if b.t_end_ns > t_start_ns]


def boxes_per_frame(frames: Sequence[FrameRow], items: list,
                    classes: tuple[str, ...] = CLASSES) -> dict[int, list]:
    """{frame_id: [YoloBox, ...]} for items with t_start_ns, t_end_ns, freq_*_hz and label."""
    items = sorted(items, key=lambda b: b.t_start_ns)
    starts = [b.t_start_ns for b in items]
    max_len = max((b.t_end_ns - b.t_start_ns for b in items), default=0)
    out: dict[int, list] = {}
    for f in frames:
        g = BoxGeometry.of(f)
        near = overlapping(items, g.t_start_ns, int(g.image_t_end_ns) + 1, starts, max_len)
        out[f.frame_id] = label_frame(g, near, classes) if near else []
    return out


def label_partition(db: AnalysisDB, partition_key: str, classes: tuple[str, ...] = CLASSES,
                    **energy_kwargs) -> LabelStats:
    """Label every frame of the partition and replace its rows in the labels table."""
    frames = db.frames(partition_key)
    anns = db.annotations(partition_key)
    relabelled: Counter = Counter()
    if anns:
        items = []
        for a in anns:
            name = str(a.label).strip().lower()
            if name not in classes:
                relabelled[str(a.label)] += 1
                name = AUTO_CLASS
            items.append(Box(int(a.t_start_ns), int(a.t_end_ns), float(a.freq_lower_hz), float(a.freq_upper_hz),
                             name))
        stats = LabelStats(partition_key, len(frames), "annotations", len(items))
        auto = False
    else:
        bursts = window_bursts(db, partition_key, **energy_kwargs) if frames else []
        items = [Box(b.t_start_ns, b.t_end_ns, b.freq_lower_hz, b.freq_upper_hz, AUTO_CLASS) for b in bursts]
        stats = LabelStats(partition_key, len(frames), "energy", len(items))
        auto = True
    per_frame = boxes_per_frame(frames, items, classes)
    rows = [LabelRow(fid, classes[c], xc, yc, w, h, auto)
            for fid, boxes in per_frame.items() for c, xc, yc, w, h in boxes]
    db.replace_labels(partition_key, rows)
    stats.n_boxes = len(rows)
    stats.n_auto = len(rows) if auto else 0
    stats.n_ground_truth = 0 if auto else len(rows)
    stats.per_class = dict(sorted(Counter(r.class_name for r in rows).items()))
    stats.relabelled = dict(relabelled)
    stats.frames_with_boxes = sum(1 for b in per_frame.values() if b)
    return stats
