"""Detections in absolute time and frequency, and the two clean-ups applied to them (pure).

- :func:`suppress_overlaps` drops a box that a stronger box already covers for more than
  ``frac`` of its duration, at overlapping frequencies (duplicates across classes too), or at
  any frequency with ``any_freq`` (one transmitter at a time: its spurs, images, splatter).
- :func:`join_frame_edges` joins two boxes ONLY where a frame edge cut one emission in two.
  Merging every overlap would fuse consecutive packets and hide packet starts, which are
  what a user looks for.
- :func:`refine_box` moves a model box's time edges to where the energy in its band starts
  and ends (the IQ under and around the box): a YOLO box on a 640-px frame is good to a few
  columns (~10 ms at 250 kS/s), the envelope to ~0.1 ms. The box's band and the gaps between
  pulses (rtl_433's end-of-package rule, as in ``dsp.detect``) say which packages the box
  holds; a box that held a sync pulse and the packet after it becomes two boxes.
"""

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from sdr_assets.dsp.packages import packages_from_pulses
from sdr_assets.dsp.stft import stft_power
from sdr_assets.ml.labels import BoxGeometry, pixels_to_annotation
from sdr_assets.records import NS_PER_S, TimeFreqBox


@dataclass(frozen=True)
class DetectionBox(TimeFreqBox):
    """One detection: a ``records.TimeFreqBox`` (absolute ns and Hz, its ``confidence``) and
    where it was seen and how its edges were set."""

    frame_ids: tuple[int, ...] = ()  # the frame(s) the box was seen on; more than one after a join
    refined: bool = False  # time edges taken from the energy envelope (refine_box)
    level_db: float | None = None  # refine_box: the band's power over its floor (dB, relative), to rank echoes


def to_time_freq(detections: Iterable[Any], geom: Any, frame_id: int | None = None) -> list[DetectionBox]:
    """Per-frame pixel detections (class_name, confidence, x0, y0, x1, y1) -> DetectionBox."""
    g = BoxGeometry.of(geom)
    out = []
    for name, conf, x0, y0, x1, y1 in detections:
        t0, t1, f_lo, f_hi = pixels_to_annotation(g, x0, y0, x1, y1)
        out.append(DetectionBox(t0, t1, f_lo, f_hi, str(name), float(conf), () if frame_id is None else (frame_id,)))
    return out


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def _union_overlap(box: DetectionBox, others: Sequence[DetectionBox]) -> int:
    """ns of ``box``'s time span covered by the union of ``others``' spans."""
    spans = sorted(
        (max(o.t_start_ns, box.t_start_ns), min(o.t_end_ns, box.t_end_ns))
        for o in others
        if o.t_start_ns < box.t_end_ns and o.t_end_ns > box.t_start_ns
    )
    covered, reach = 0, box.t_start_ns
    for u, v in spans:
        covered += max(0, v - max(u, reach))
        reach = max(reach, v)
    return covered


def suppress_overlaps(
    boxes: Sequence[DetectionBox], frac: float = 0.5, any_class: bool = True, any_freq: bool = False
) -> list[DetectionBox]:
    """Keep boxes strongest first; drop a box whose time span lies more than ``frac`` inside a
    kept, stronger box that also overlaps it in frequency.

    ``any_class=True`` (default): the stronger box wins whatever its class, since one place in
    the band holds one emission and the detector's duplicates usually disagree on the class.
    ``any_class=False`` only suppresses within a class. ``any_freq=True``: one transmitter at a
    time (as ``dsp.detect`` by default), a box is dropped when the stronger kept boxes TOGETHER
    cover more than ``frac`` of its span, whatever the frequencies and classes (boxes on images,
    spurs, harmonics and splatter go; wrong for a band with concurrent emissions). Two packets
    side by side (no time overlap) are never suppressed. The result is in time order.
    """
    kept: list[DetectionBox] = []
    for box in sorted(boxes, key=lambda b: (-b.confidence, b.t_start_ns)):
        dur = max(box.duration_ns, 1)
        if any_freq:  # covered by the stronger boxes together, as dsp.detect's suppression
            covered = _union_overlap(box, kept) / dur > frac
        else:
            covered = any(
                (any_class or k.label == box.label)
                and _overlap(k.freq_lower_hz, k.freq_upper_hz, box.freq_lower_hz, box.freq_upper_hz) > 0
                and _overlap(k.t_start_ns, k.t_end_ns, box.t_start_ns, box.t_end_ns) / dur > frac
                for k in kept
            )
        if not covered:
            kept.append(box)
    return sorted(kept, key=lambda b: (b.t_start_ns, b.freq_lower_hz))


def drop_pieces(boxes: Sequence[DetectionBox], frac: float = 0.5) -> list[DetectionBox]:
    """Longest refined box first, drop a refined box lying more than ``frac`` inside a longer kept
    refined box that overlaps it in frequency; the longer box takes the higher confidence.
    rtl_433 packages pulses on ONE envelope for the whole band, so where two boxes on one signal
    disagree (one sees a package, the other pieces of it, split where its narrower band shows a
    gap) the longer package is what rtl_433 reports. Unrefined boxes pass. Time order."""
    kept: list[DetectionBox] = []
    for box in sorted((b for b in boxes if b.refined), key=lambda b: (-b.duration_ns, -b.confidence)):
        host = next(
            (
                i
                for i, k in enumerate(kept)
                if _overlap(k.freq_lower_hz, k.freq_upper_hz, box.freq_lower_hz, box.freq_upper_hz) > 0
                and _overlap(k.t_start_ns, k.t_end_ns, box.t_start_ns, box.t_end_ns) > frac * max(box.duration_ns, 1)
            ),
            None,
        )
        if host is None:
            kept.append(box)
        elif box.confidence > kept[host].confidence:
            kept[host] = replace(kept[host], confidence=box.confidence, label=box.label)
    kept.extend(b for b in boxes if not b.refined)
    return sorted(kept, key=lambda b: (b.t_start_ns, b.freq_lower_hz))


ECHO_TOL_S = 0.002  # refined edges this close (or ECHO_TOL_FRAC of the duration) are "the same keying"
ECHO_TOL_FRAC = 0.05


def drop_echoes(
    boxes: Sequence[DetectionBox], tol_s: float = ECHO_TOL_S, tol_frac: float = ECHO_TOL_FRAC
) -> list[DetectionBox]:
    """Drop refined boxes that are another box's echo: the same keying at another frequency.

    Strongest band power first (``level_db``), a refined box whose start AND end both lie within
    ``max(tol_s, tol_frac x its duration)`` of a kept, stronger refined box's, with no frequency
    overlap, is that transmission seen elsewhere in the band (its IQ image, key-click splatter,
    a harmonic or a spur it drives), not a second transmitter: independent transmitters do not
    key on and off within a couple of milliseconds of each other. Safe in a busy band (only
    co-timed boxes go), unlike ``suppress_overlaps(any_freq=True)``. Unrefined boxes pass. Time order.
    """
    refined = sorted(
        (b for b in boxes if b.refined),
        key=lambda b: (-(b.level_db if b.level_db is not None else -math.inf), -b.confidence, b.t_start_ns),
    )
    kept: list[DetectionBox] = []
    for box in refined:
        tol_ns = max(tol_s * NS_PER_S, tol_frac * box.duration_ns)
        echo = any(
            abs(k.t_start_ns - box.t_start_ns) <= tol_ns
            and abs(k.t_end_ns - box.t_end_ns) <= tol_ns
            and _overlap(k.freq_lower_hz, k.freq_upper_hz, box.freq_lower_hz, box.freq_upper_hz) <= 0
            for k in kept
        )
        if not echo:
            kept.append(box)
    kept.extend(b for b in boxes if not b.refined)
    return sorted(kept, key=lambda b: (b.t_start_ns, b.freq_lower_hz))


def _edges(frame_edges_ns: Iterable[int | tuple[int, int]]) -> list[tuple[int, int]]:
    out = []
    for e in frame_edges_ns:
        out.append((int(e[0]), int(e[1])) if isinstance(e, tuple) else (int(e), int(e)))
    return out


def join_frame_edges(
    boxes: Sequence[DetectionBox], frame_edges_ns: Iterable[int | tuple[int, int]], tol_ns: int
) -> list[DetectionBox]:
    """Join box pairs that a frame edge cut: one ends within ``tol_ns`` of frame A's right edge,
    the other starts within ``tol_ns`` of frame B's left edge, and they overlap in frequency.

    ``frame_edges_ns``: each edge as one time (frames abut) or a pair (end of frame A, start of
    frame B). The joined box spans both pieces in time and frequency, takes the label of the
    more confident piece and the higher confidence; chains across several frames join fully.
    Every other pair, overlapping or not, is left alone.
    """
    edges = _edges(frame_edges_ns)
    out: list[DetectionBox] = []
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


@dataclass(frozen=True)
class RefineParams:
    """How :func:`refine_box` reads the envelope (defaults: rtl_433's packaging, as dsp.detect)."""

    context_s: float = 0.5  # IQ read on each side of the box: the floor, and packages that reach out of it
    fine_window_s: float = 1e-4  # STFT length of the envelope (hop a quarter of it)
    smooth_s: float = 5e-5  # envelope power averaged over this long (longer merges OOK pulses: see gap_ratio)
    floor_percentile: float = 20.0  # of the band's envelope over the context: the noise floor
    min_snr_db: float = 10.0  # the box's 90th-percentile level must clear the floor by this
    min_threshold_db: float = 10.0  # the pulse threshold is at least this far over the floor (noise peaks)
    min_pulse_s: float = 5e-5  # shorter excursions over the threshold are noise
    min_gap_s: float = 0.010  # a gap ends a package when over both this and gap_ratio x the
    gap_ratio: float = 10.0  # longest pulse so far, or over max_gap_s
    max_gap_s: float = 0.1
    min_inside: float = 0.5  # a package belongs to the box when this much of it, or of the box, is shared


REFINE = RefineParams()


def _band_envelope(x: np.ndarray, fs: float, f_lo: float, f_hi: float, p: RefineParams) -> tuple[np.ndarray, int, int]:
    """(power envelope of the baseband band [f_lo, f_hi] per STFT column, nf, hop)."""
    nf = max(8, 2 * round(p.fine_window_s * fs / 2))
    hop = max(1, nf // 4)
    pw = stft_power(x, nf, hop)
    centres = (np.arange(nf) - nf // 2) * fs / nf
    sel = (centres >= f_lo - fs / nf / 2) & (centres <= f_hi + fs / nf / 2)
    if not sel.any():
        sel[np.argmin(np.abs(centres - (f_lo + f_hi) / 2))] = True
    env = pw[:, sel].sum(axis=1)
    n_smooth = max(1, round(p.smooth_s * fs / hop))
    if n_smooth > 1 and env.size >= n_smooth:
        env = np.convolve(env, np.ones(n_smooth, np.float32) / n_smooth, mode="same")
    return env, nf, hop


def refine_box(
    box: DetectionBox,
    x: np.ndarray,
    t0_ns: int,
    sample_rate_hz: float,
    center_freq_hz: float,
    params: RefineParams = REFINE,
) -> list[DetectionBox]:
    """The packages of energy in ``box``'s band that the box holds, as boxes with refined edges.

    ``x``: complex baseband samples from ``t0_ns``, covering the box and some context on each
    side (its quiet part gives the noise floor). Pulses are where the band's envelope is over
    the midpoint between the floor and the box's high level (which must clear the floor by
    ``min_snr_db``; the threshold is at least ``min_threshold_db`` over the floor);
    pulses over all of ``x`` form packages by rtl_433's end-of-package rule; a package belongs
    to the box when ``min_inside`` of it lies inside, or of the box inside it (else the one
    package that overlaps the box most). So a box on part of a long package takes the whole
    package's edges, and boxes on one package become duplicates that ``suppress_overlaps``
    removes. Returns ``[box]`` unchanged (``refined`` False) where the band holds nothing
    clearly over the floor.
    """
    fs = float(sample_rate_hz)
    x = np.asarray(x, dtype=np.complex64).reshape(-1)
    b0 = (box.t_start_ns - t0_ns) * fs / NS_PER_S  # box edges in samples of x
    b1 = (box.t_end_ns - t0_ns) * fs / NS_PER_S
    if x.size < 64 or b1 <= 0 or b0 >= x.size:
        return [box]
    env, nf, hop = _band_envelope(
        x - x.mean(), fs, box.freq_lower_hz - center_freq_hz, box.freq_upper_hz - center_freq_hz, params
    )
    t = nf / 2 + np.arange(env.size) * hop  # centre sample of each column
    inside = (t >= b0) & (t < b1)
    if env.size < 4 or not inside.any():
        return [box]
    floor = float(np.percentile(env, params.floor_percentile))
    high = float(np.percentile(env[inside], 90))
    if high <= floor * 10 ** (params.min_snr_db / 10):
        return [box]
    thr = max((math.sqrt(high) + math.sqrt(floor)) ** 2 / 4, floor * 10 ** (params.min_threshold_db / 10))
    on = env > thr
    edges = np.diff(np.concatenate(([0], on.astype(np.int8), [0])))
    up, down = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)  # first on, first off column
    keep = (down - up) * hop >= params.min_pulse_s * fs
    starts, ends = t[up[keep]] - hop / 2, t[down[keep] - 1] + hop / 2
    if starts.size == 0:
        return [box]
    pkgs = packages_from_pulses(starts, ends, params.min_gap_s * fs, params.max_gap_s * fs, params.gap_ratio)
    overlap = [max(0.0, min(b, b1) - max(a, b0)) for a, b in pkgs]
    chosen = [pk for pk, ov in zip(pkgs, overlap) if ov >= params.min_inside * min(pk[1] - pk[0], b1 - b0)]
    if not chosen:
        if max(overlap) <= 0:
            return [box]
        chosen = [pkgs[int(np.argmax(overlap))]]
    ns = NS_PER_S / fs
    level_db = 10.0 * math.log10(max(high - floor, 1e-30))
    return [
        replace(
            box,
            t_start_ns=t0_ns + int(round(max(a, 0.0) * ns)),
            t_end_ns=t0_ns + int(round(min(b, x.size) * ns)),
            refined=True,
            level_db=level_db,
        )
        for a, b in chosen
    ]
