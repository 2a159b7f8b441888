"""Scoring detections against reference boxes: matching, recall/precision per class, AP.

Times are seconds from a recording's first sample, frequencies absolute Hz. A reference
without frequency edges (an rtl_433 package, a SigMF annotation without
``core:freq_lower_edge``/``upper_edge``) is matched in time only.

Three matchings, all one to one:

- :func:`match_starts`: a detection's start within ``tol_s`` of a reference start, closest
  pairs first (``dsp.detect.pair_starts``, the rule the manifest figures always used); where
  the reference carries a frequency point (rtl_433's estimate) and ``freq_tol_hz`` is given,
  the point must also lie in the detection's band widened by ``freq_tol_hz`` each side.
- :func:`match_iou`: detections in descending score each take the unmatched reference of
  highest IoU in time x frequency, if that IoU reaches the threshold (COCO/VOC style). Boxes
  thinner than ``min_duration_s`` / ``min_bandwidth_hz`` are first widened about their centre
  to that size, as the YOLO labels are (``ml.labels.MIN_BOX_PX``), so a one-bin CW tone and a
  detection one FFT bin wider still compare as the trained model sees them.
- :func:`match_time_band`: the same, with IoU in time only, and the reference's centre
  frequency inside the detection's band (``ml.contest``: band edges are a convention, the
  emission's time and frequency are not).

:func:`average_precision` is the area under the all-point interpolated precision/recall curve
(precision made non-increasing from the right), the AP of VOC 2010+ and of ultralytics' mAP50.
"""

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from sdr_assets.dsp.detect import pair_starts


@dataclass(frozen=True)
class Box:
    """A time span, with a frequency band (both edges) or a point (lower == upper) or neither."""

    t_start_s: float
    t_end_s: float
    freq_lower_hz: float | None = None
    freq_upper_hz: float | None = None
    label: str = ""
    score: float = 1.0

    @property
    def has_band(self) -> bool:
        return (
            self.freq_lower_hz is not None
            and self.freq_upper_hz is not None
            and self.freq_upper_hz > self.freq_lower_hz
        )

    @property
    def has_freq(self) -> bool:
        return self.freq_lower_hz is not None and self.freq_upper_hz is not None


def _widen(lo: float, hi: float, size: float) -> tuple[float, float]:
    if hi - lo >= size:
        return lo, hi
    mid = (lo + hi) / 2
    return mid - size / 2, mid + size / 2


def widened(box: Box, min_duration_s: float = 0.0, min_bandwidth_hz: float = 0.0) -> Box:
    """``box`` grown about its centre to at least ``min_duration_s`` x ``min_bandwidth_hz``
    (a box without frequency keeps none)."""
    t0, t1 = _widen(box.t_start_s, box.t_end_s, min_duration_s)
    if not box.has_freq:
        return replace(box, t_start_s=t0, t_end_s=t1)
    f0, f1 = _widen(box.freq_lower_hz, box.freq_upper_hz, min_bandwidth_hz)
    return replace(box, t_start_s=t0, t_end_s=t1, freq_lower_hz=f0, freq_upper_hz=f1)


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def iou(a: Box, b: Box) -> float:
    """Intersection over union in time x frequency; in time alone when either box has no band."""
    dt = _overlap(a.t_start_s, a.t_end_s, b.t_start_s, b.t_end_s)
    if not (a.has_band and b.has_band):
        union = (a.t_end_s - a.t_start_s) + (b.t_end_s - b.t_start_s) - dt
        return dt / union if union > 0 else 0.0
    inter = dt * _overlap(a.freq_lower_hz, a.freq_upper_hz, b.freq_lower_hz, b.freq_upper_hz)
    area_a = (a.t_end_s - a.t_start_s) * (a.freq_upper_hz - a.freq_lower_hz)
    area_b = (b.t_end_s - b.t_start_s) * (b.freq_upper_hz - b.freq_lower_hz)
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


def _greedy(
    d: Sequence[Box], r: Sequence[Box], threshold: float, same_label: bool, similarity: Callable[[Box, Box], float]
) -> list[int | None]:
    """Detections in descending score each take the unmatched reference of highest similarity
    (None where no reference reaches ``threshold``)."""
    out: list[int | None] = [None] * len(d)
    used: set[int] = set()
    for i in sorted(range(len(d)), key=lambda k: -d[k].score):
        best, best_v = None, threshold
        for j, ref in enumerate(r):
            if j in used or (same_label and ref.label != d[i].label):
                continue
            v = similarity(d[i], ref)
            if v >= best_v and (best is None or v > best_v):
                best, best_v = j, v
        if best is not None:
            out[i] = best
            used.add(best)
    return out


def match_iou(
    dets: Sequence[Box],
    refs: Sequence[Box],
    threshold: float = 0.5,
    *,
    same_label: bool = False,
    min_duration_s: float = 0.0,
    min_bandwidth_hz: float = 0.0,
) -> list[int | None]:
    """For each detection (in the given order), the index of the reference it matches, or None.
    Detections are taken in descending score; ``same_label``: only references of its label."""
    d = [widened(b, min_duration_s, min_bandwidth_hz) for b in dets]
    r = [widened(b, min_duration_s, min_bandwidth_hz) for b in refs]
    return _greedy(d, r, threshold, same_label, iou)


def time_iou_in_band(det: Box, ref: Box) -> float:
    """IoU in time, when ``ref``'s centre frequency lies in ``det``'s band (else 0)."""
    if not freq_point_in_band(det, ref, 0.0):
        return 0.0
    return iou(Box(det.t_start_s, det.t_end_s), Box(ref.t_start_s, ref.t_end_s))


def match_time_band(
    dets: Sequence[Box],
    refs: Sequence[Box],
    threshold: float = 0.5,
    *,
    same_label: bool = False,
    min_duration_s: float = 0.0,
    min_bandwidth_hz: float = 0.0,
) -> list[int | None]:
    """As :func:`match_iou`, with :func:`time_iou_in_band` for the IoU: a detection matches a
    reference that it overlaps in time by IoU >= ``threshold`` and whose centre frequency lies in
    its band (both widened first). Band edges do not count: an energy detector measures an OOK
    burst's keyed spectrum several times wider than the nominal band a label gives it, and that
    is no worse a detection."""
    d = [widened(b, min_duration_s, min_bandwidth_hz) for b in dets]
    r = [widened(b, min_duration_s, min_bandwidth_hz) for b in refs]
    return _greedy(d, r, threshold, same_label, time_iou_in_band)


def freq_point_in_band(det: Box, ref: Box, freq_tol_hz: float) -> bool:
    """Whether ``ref``'s frequency (its band's centre) lies in ``det``'s band +- ``freq_tol_hz``;
    True when either has no frequency (nothing to check)."""
    if not (det.has_freq and ref.has_freq):
        return True
    f = (ref.freq_lower_hz + ref.freq_upper_hz) / 2
    return det.freq_lower_hz - freq_tol_hz <= f <= det.freq_upper_hz + freq_tol_hz


def match_starts(
    dets: Sequence[Box], refs: Sequence[Box], tol_s: float, freq_tol_hz: float | None = None
) -> list[int | None]:
    """For each detection, the reference whose start it matches within ``tol_s`` (closest pairs
    first), or None; with ``freq_tol_hz``, only pairs that pass :func:`freq_point_in_band`."""
    allowed = None
    if freq_tol_hz is not None:
        allowed = np.array([[freq_point_in_band(d, r, freq_tol_hz) for r in refs] for d in dets], dtype=bool).reshape(
            len(dets), len(refs)
        )
    out: list[int | None] = [None] * len(dets)
    for i, j in pair_starts([b.t_start_s for b in dets], [b.t_start_s for b in refs], tol_s, allowed):
        out[i] = j
    return out


def average_precision(scores: Sequence[float], is_tp: Sequence[bool], n_reference: int) -> float:
    """All-point interpolated AP of detections ranked by score; nan without references."""
    if n_reference <= 0:
        return float("nan")
    if not len(scores):
        return 0.0
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    tp = np.asarray(is_tp, dtype=float)[order]
    ctp, cfp = np.cumsum(tp), np.cumsum(1.0 - tp)
    recall = np.concatenate(([0.0], ctp / n_reference))
    precision = np.concatenate(([1.0], ctp / np.maximum(ctp + cfp, 1e-12)))
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    return float(np.sum(np.diff(recall) * precision[1:]))


@dataclass
class Tally:
    """Matches accumulated over recordings: totals, per class, and the ranking for AP.

    ``found_by_ref_label``: references found by any detection (class-agnostic matching);
    ``found_same_by_ref_label``: found by a detection of the same label (``class_matches``);
    ``tp_by_det_label``: detections that found a reference, per detection label. AP (any class)
    ranks all detections with class-agnostic matches; per-class AP uses matches that require
    the detection's label to equal the reference's (``add``'s ``class_matches``)."""

    n_ref_by_label: Counter = field(default_factory=Counter)
    found_by_ref_label: Counter = field(default_factory=Counter)
    n_det_by_label: Counter = field(default_factory=Counter)
    tp_by_det_label: Counter = field(default_factory=Counter)
    ranked: list[tuple[float, bool]] = field(default_factory=list)
    ranked_by_class: dict[str, list[tuple[float, bool]]] = field(default_factory=lambda: defaultdict(list))
    found_same_by_ref_label: Counter = field(default_factory=Counter)  # found by a detection of its label

    def add(
        self,
        dets: Sequence[Box],
        refs: Sequence[Box],
        matches: Sequence[int | None],
        class_matches: Sequence[int | None] | None = None,
    ) -> None:
        self.n_ref_by_label.update(r.label for r in refs)
        self.found_by_ref_label.update(refs[j].label for j in matches if j is not None)
        self.n_det_by_label.update(d.label for d in dets)
        self.tp_by_det_label.update(d.label for d, j in zip(dets, matches) if j is not None)
        self.ranked.extend((d.score, j is not None) for d, j in zip(dets, matches))
        if class_matches is not None:
            for d, j in zip(dets, class_matches):
                self.ranked_by_class[d.label].append((d.score, j is not None))
            self.found_same_by_ref_label.update(refs[j].label for j in class_matches if j is not None)

    @property
    def tp(self) -> int:
        return sum(self.tp_by_det_label.values())

    @property
    def n_reference(self) -> int:
        return sum(self.n_ref_by_label.values())

    @property
    def n_detections(self) -> int:
        return sum(self.n_det_by_label.values())

    @property
    def fp(self) -> int:
        return self.n_detections - self.tp

    @property
    def fn(self) -> int:
        return self.n_reference - self.tp

    @property
    def recall(self) -> float:
        return self.tp / max(self.n_reference, 1)

    @property
    def precision(self) -> float:
        return self.tp / max(self.n_detections, 1)

    def ap(self) -> float:
        """AP over all detections, a detection right when it matched any reference."""
        return average_precision([s for s, _ in self.ranked], [t for _, t in self.ranked], self.n_reference)

    def ap_by_class(self) -> dict[str, float]:
        """AP per reference class, matching only detections of that label (0 where none)."""
        out = {}
        for label, n in sorted(self.n_ref_by_label.items()):
            ranked = self.ranked_by_class.get(label, [])
            out[label] = average_precision([s for s, _ in ranked], [t for _, t in ranked], n)
        return out

    def map(self) -> float:
        """Mean of :meth:`ap_by_class` over the reference classes (nan without references)."""
        aps = list(self.ap_by_class().values())
        return float(np.mean(aps)) if aps else float("nan")
