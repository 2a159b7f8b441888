"""Detections in absolute time and frequency, and the two clean-ups applied to them (pure).

- :func:`suppress_overlaps` drops a box that a stronger box already covers for more than
  ``frac`` of its duration, at overlapping frequencies (duplicates across classes too).
- :func:`join_frame_edges` joins two boxes ONLY where a frame edge cut one emission in two.
  Merging every overlap would fuse consecutive packets and hide packet starts, which are
  what a user looks for.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sdr_assets.ml.labels import BoxGeometry, pixels_to_annotation


@dataclass(frozen=True)
class TimeFreqBox:
    """One detection in absolute time (ns, Unix epoch) and frequency (Hz)."""

    t_start_ns: int
    t_end_ns: int
    freq_lower_hz: float
    freq_upper_hz: float
    label: str
    confidence: float
    frame_ids: tuple[int, ...] = ()  # the frame(s) the box was seen on; more than one after a join

    @property
    def duration_ns(self) -> int:
        return self.t_end_ns - self.t_start_ns


def to_time_freq(detections: Iterable[Any], geom: Any, frame_id: int | None = None) -> list[TimeFreqBox]:
    """Per-frame pixel detections (class_name, confidence, x0, y0, x1, y1) -> TimeFreqBox."""
    g = BoxGeometry.of(geom)
    out = []
    for name, conf, x0, y0, x1, y1 in detections:
        t0, t1, f_lo, f_hi = pixels_to_annotation(g, x0, y0, x1, y1)
        out.append(TimeFreqBox(t0, t1, f_lo, f_hi, str(name), float(conf), () if frame_id is None else (frame_id,)))
    return out


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def suppress_overlaps(boxes: Sequence[TimeFreqBox], frac: float = 0.5, any_class: bool = True) -> list[TimeFreqBox]:
    """Keep boxes strongest first; drop a box whose time span lies more than ``frac`` inside a
    kept, stronger box that also overlaps it in frequency.

    ``any_class=True`` (default): the stronger box wins whatever its class, since one place in
    the band holds one emission and the detector's duplicates usually disagree on the class.
    ``any_class=False`` only suppresses within a class. Two packets side by side (no time
    overlap) are never suppressed. The result is in time order.
    """
    kept: list[TimeFreqBox] = []
    for box in sorted(boxes, key=lambda b: (-b.confidence, b.t_start_ns)):
        dur = max(box.duration_ns, 1)
        covered = any(
            (any_class or k.label == box.label)
            and _overlap(k.freq_lower_hz, k.freq_upper_hz, box.freq_lower_hz, box.freq_upper_hz) > 0
            and _overlap(k.t_start_ns, k.t_end_ns, box.t_start_ns, box.t_end_ns) / dur > frac
            for k in kept
        )
        if not covered:
            kept.append(box)
    return sorted(kept, key=lambda b: (b.t_start_ns, b.freq_lower_hz))


def _edges(frame_edges_ns: Iterable[int | tuple[int, int]]) -> list[tuple[int, int]]:
    out = []
    for e in frame_edges_ns:
        out.append((int(e[0]), int(e[1])) if isinstance(e, tuple) else (int(e), int(e)))
    return out


def join_frame_edges(boxes: Sequence[TimeFreqBox], frame_edges_ns: Iterable[int | tuple[int, int]],
                     tol_ns: int) -> list[TimeFreqBox]:
    """Join box pairs that a frame edge cut: one ends within ``tol_ns`` of frame A's right edge,
    the other starts within ``tol_ns`` of frame B's left edge, and they overlap in frequency.

    ``frame_edges_ns``: each edge as one time (frames abut) or a pair (end of frame A, start of
    frame B). The joined box spans both pieces in time and frequency, takes the label of the
    more confident piece and the higher confidence; chains across several frames join fully.
    Every other pair, overlapping or not, is left alone.
    """
    edges = _edges(frame_edges_ns)
    out: list[TimeFreqBox] = []
    for box in sorted(boxes, key=lambda b: (b.t_start_ns, b.freq_lower_hz)):
        starts_at = [e for e in edges if abs(box.t_start_ns - e[1]) <= tol_ns]
        best, best_ov = None, 0.0
        for i, prev in enumerate(out):
            if not any(abs(prev.t_end_ns - e[0]) <= tol_ns for e in starts_at):
                continue
            ov = _overlap(prev.freq_lower_hz, prev.freq_upper_hz, box.freq_lower_hz, box.freq_upper_hz)
            if ov > best_ov:
                best, best_ov = i, ov
        if best is None:
            out.append(box)
            continue
        prev = out[best]
        strong = prev if prev.confidence >= box.confidence else box
        out[best] = replace(
            prev,
            t_start_ns=min(prev.t_start_ns, box.t_start_ns),
            t_end_ns=max(prev.t_end_ns, box.t_end_ns),
            freq_lower_hz=min(prev.freq_lower_hz, box.freq_lower_hz),
            freq_upper_hz=max(prev.freq_upper_hz, box.freq_upper_hz),
            label=strong.label,
            confidence=strong.confidence,
            frame_ids=prev.frame_ids + tuple(f for f in box.frame_ids if f not in prev.frame_ids),
        )
    return sorted(out, key=lambda b: (b.t_start_ns, b.freq_lower_hz))
