"""The held-back contest: the new model, the current one and the energy detector on the same frames.

Frames: the night's validation split (``ml.dataset.build_dataset``: the latest frames in time)
in windows whose labels are INDEPENDENT (source ``annotation`` or ``rtl_433``). A window with
only energy auto-labels is not scored: the energy detector would be graded against itself.
Per window, the time spans of its held-back frames (abutting frames merged).

References: those independent labels turned back into time and Hz through each frame's
geometry (``ml.labels``) and joined where a frame edge cut one emission
(``ml.postprocess.join_frame_edges``, as model boxes are), over all the window's frames; a
reference counts when its centre lies in a held-back frame.

Detections: ``ml.detections.detect_partition`` with ``write=False``, the path the ``detections``
asset takes: a model over the held-back frames only (boxes joined at frame edges, time edges
refined on the IQ, the single-transmitter filters when set), the energy detector over the
window's IQ; a detection counts when its centre lies in a held-back frame.

Score, as ``sdr-assets evaluate`` does (``ml.scoring``): one-to-one matches, class-agnostic,
boxes thinner than the labels' minimum box (16 frame columns x 16 rows) widened about their
centre first, a match being IoU >= 0.5 in time with the reference's centre frequency inside the
detection's band (``match_time_band``; evaluate's rtl_433 reference checks the frequency the
same way). Not IoU in time x frequency: band edges are a convention. The energy detector
measures an OOK burst's keyed spectrum (~58 kHz) where the generator's label gives its nominal
band (~15 kHz): same start, same end, IoU 0.26. On 24 minutes of the synthetic ISM band the
energy detector's F1 was 0.16 by time-frequency IoU, 0.47 by this rule, 0.56 in time alone: the
IoU rule would hand any model trained on the labels' band convention a win it did not earn.
Recall, precision and their F1, 2PR / (P + R), the contest's one score
(``store.registry.champion_challenger``); AP50 over all detections and mAP50 over the reference
classes (same-class matches) beside it.
"""

import bisect
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from sdr_assets.ml.detections import EDGE_TOL_COLS, ENERGY_VERSION, detect_partition, frame_edges
from sdr_assets.ml.labels import MIN_BOX_PX, BoxGeometry, pixels_to_annotation, yolo_to_pixels
from sdr_assets.ml.postprocess import DetectionBox, join_frame_edges
from sdr_assets.ml.scoring import Box, Tally, match_time_band
from sdr_assets.records import NS_PER_S
from sdr_assets.store.frames import FrameRow
from sdr_assets.store.window import AnalysisDB

INDEPENDENT_SOURCES = ("annotation", "rtl_433")
IOU_THRESHOLD = 0.5  # in time; sdr-assets evaluate's default (--iou)
ENERGY_NAME, CHALLENGER_NAME, CHAMPION_NAME = "energy detector", "challenger", "current model"


@dataclass(frozen=True)
class HeldBackWindow:
    """One window's held-back frames, their time spans (abutting frames merged, time order) and
    their references (seconds from the first span's start)."""

    partition_key: str
    frame_ids: tuple[int, ...]
    spans_ns: tuple[tuple[int, int], ...]
    references: tuple[Box, ...]
    min_duration_s: float
    min_bandwidth_hz: float

    @property
    def t_start_ns(self) -> int:
        return self.spans_ns[0][0]

    def inside(self, t_start_ns: int, t_end_ns: int) -> bool:
        """Does a box's centre lie in a held-back frame?"""
        mid = (t_start_ns + t_end_ns) // 2
        i = bisect.bisect_right(self.spans_ns, (mid, float("inf"))) - 1
        return i >= 0 and self.spans_ns[i][0] <= mid < self.spans_ns[i][1]

    def box(self, t_start_ns: int, t_end_ns: int, f_lo: float, f_hi: float, label: str, score: float) -> Box:
        t0 = self.t_start_ns
        return Box((t_start_ns - t0) / NS_PER_S, (t_end_ns - t0) / NS_PER_S, f_lo, f_hi, label, score)


@dataclass(frozen=True)
class HeldBack:
    """The frames every contestant is scored on."""

    windows: tuple[HeldBackWindow, ...]
    n_frames: int  # held-back frames scored
    n_left_out: int  # held-back frames in windows without independent labels (not scored)

    @property
    def n_references(self) -> int:
        return sum(len(w.references) for w in self.windows)


@dataclass
class ContestScore:
    """One contestant's figures on the held-back frames (NaN where there is no reference)."""

    name: str  # "challenger" | "current model" | "energy detector"
    version: str
    n_reference: int
    n_detections: int
    tp: int
    recall: float
    precision: float
    f1: float
    ap50: float  # class-agnostic AP at IoU 0.5
    map50: float  # mean over the reference classes, same-class matches
    seconds: float = 0.0
    per_window: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # key -> (tp, refs, dets)

    def metrics(self) -> dict[str, float]:
        """The figures the registry keeps and the contest compares (``f1``)."""
        return {
            "f1": self.f1,
            "recall": self.recall,
            "precision": self.precision,
            "ap50": self.ap50,
            "map50": self.map50,
            "tp": float(self.tp),
            "n_reference": float(self.n_reference),
            "n_detections": float(self.n_detections),
        }


def f1_score(precision: float, recall: float) -> float:
    """2PR / (P + R); 0 when both are 0."""
    return 0.0 if precision + recall <= 0 else 2 * precision * recall / (precision + recall)


def label_boxes(db: AnalysisDB, partition_key: str, frames: Sequence[FrameRow]) -> list[DetectionBox]:
    """The window's independent labels in absolute time and Hz, joined across frame edges."""
    by_id = {f.frame_id: f for f in frames}
    boxes = []
    for lab in db.labels(partition_key, include_auto=False):
        f = by_id.get(lab.frame_id)
        if f is None or lab.source not in INDEPENDENT_SOURCES:
            continue
        g = BoxGeometry.of(f)
        px = yolo_to_pixels(lab.x_center, lab.y_center, lab.width, lab.height, g.width_px, g.height_px)
        t0, t1, f_lo, f_hi = pixels_to_annotation(g, *px)
        boxes.append(DetectionBox(t0, t1, f_lo, f_hi, lab.class_name, 1.0, (f.frame_id,)))
    tol_ns = int(EDGE_TOL_COLS * max((BoxGeometry.of(f).col_ns for f in frames), default=0))
    return join_frame_edges(boxes, frame_edges(frames), tol_ns)


def frame_spans(frames: Sequence[FrameRow]) -> tuple[tuple[int, int], ...]:
    """The frames' time spans [t_start_ns, end of the last column), overlapping or abutting ones
    merged, in time order."""
    out: list[tuple[int, int]] = []
    for f in sorted(frames, key=lambda f: f.t_start_ns):
        t0, t1 = f.t_start_ns, int(BoxGeometry.of(f).image_t_end_ns)
        if out and t0 <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], t1))
        else:
            out.append((t0, t1))
    return tuple(out)


def held_back(db: AnalysisDB, partition_keys: Sequence[str], val_frame_ids: Collection[int]) -> HeldBack:
    """The held-back frames of ``partition_keys`` (``val_frame_ids``) and their references."""
    val = set(val_frame_ids)
    windows, n_frames, n_left_out = [], 0, 0
    for key in partition_keys:
        frames = db.frames(key)
        mine = [f for f in frames if f.frame_id in val]
        if not mine:
            continue
        if not any(s in INDEPENDENT_SOURCES for s in db.label_sources(key)):
            n_left_out += len(mine)
            continue
        g0 = BoxGeometry.of(mine[0])
        w = HeldBackWindow(
            key,
            tuple(f.frame_id for f in mine),
            frame_spans(mine),
            (),
            MIN_BOX_PX * g0.col_ns / NS_PER_S,
            MIN_BOX_PX * g0.row_hz,
        )
        refs = tuple(
            w.box(b.t_start_ns, b.t_end_ns, b.freq_lower_hz, b.freq_upper_hz, b.label, 1.0)
            for b in label_boxes(db, key, frames)
            if w.inside(b.t_start_ns, b.t_end_ns)
        )
        windows.append(replace(w, references=refs))
        n_frames += len(mine)
    return HeldBack(tuple(windows), n_frames, n_left_out)


def score_detector(
    db: AnalysisDB,
    root: Path | str,
    held: HeldBack,
    name: str,
    detector: Callable | None = None,
    version: str = ENERGY_VERSION,
    *,
    single_transmitter: bool = False,
) -> ContestScore:
    """Score ``detector`` (None: the energy detector) on the held-back frames (module doc).
    ``single_transmitter``: the ``detections`` asset's filters for model boxes."""
    t0 = time.perf_counter()
    tally = Tally()
    per_window = {}
    single = single_transmitter and detector is not None
    for w in held.windows:
        _, rows = detect_partition(
            db,
            w.partition_key,
            root,
            detector=detector,
            model_version=version,
            detector_name=name,
            write=False,
            require_energy=single,
            suppress_across_freq=single,
            frame_ids=w.frame_ids,
        )
        dets = [
            w.box(r.t_start_ns, r.t_end_ns, r.freq_lower_hz, r.freq_upper_hz, r.label, r.confidence)
            for r in rows
            if w.inside(r.t_start_ns, r.t_end_ns)
        ]
        refs = list(w.references)
        kw = {"min_duration_s": w.min_duration_s, "min_bandwidth_hz": w.min_bandwidth_hz}
        matches = match_time_band(dets, refs, IOU_THRESHOLD, **kw)
        tally.add(dets, refs, matches, match_time_band(dets, refs, IOU_THRESHOLD, same_label=True, **kw))
        per_window[w.partition_key] = (sum(j is not None for j in matches), len(refs), len(dets))
    nan = float("nan")
    has_refs = tally.n_reference > 0
    recall, precision = (tally.recall, tally.precision) if has_refs else (nan, nan)
    return ContestScore(
        name,
        version,
        tally.n_reference,
        tally.n_detections,
        tally.tp,
        recall,
        precision,
        f1_score(precision, recall) if has_refs else nan,
        tally.ap(),
        tally.map(),
        time.perf_counter() - t0,
        per_window,
    )
