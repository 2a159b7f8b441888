"""Detections of one partition, with lineage, into the analysis DB's ``detections`` table.

Two detectors, one output:

- a trained model (``ml.infer.load_detector``) over the partition's spectrogram frames: pixel
  boxes -> absolute time/Hz (``to_time_freq``), boxes cut by a frame edge joined
  (``join_frame_edges``), time edges refined on the IQ envelope in each box's band
  (``refine_box``; one box may become its packages), weaker overlapping boxes suppressed
  (``suppress_overlaps``). Two filters for single-transmitter captures (rtl_433-type
  recordings), off by default: ``require_energy`` drops model boxes whose band shows nothing
  ``refine.min_snr_db`` over its floor (``refine_box`` could not confirm them), and
  ``suppress_across_freq`` suppresses overlaps in time at any frequency, after dropping refined
  boxes that are pieces of a longer refined box (``drop_pieces``: rtl_433 packages on one
  envelope for the whole band);
- until a model exists, the energy detector's bursts of the window (``ml.energy``: those
  ``spectrograms`` stored, else run now), label ``burst``, ``model_version = "energy"``,
  confidence from its SNR.

Each row's ``first_seq``/``last_seq`` are the hot-DB chunks whose samples overlap the box
(``store.lineage``); ``frame_id`` is the frame the box was seen on (for an energy burst, the
frame holding its start; -1 when the partition has no frames). A box that covers no stored
sample (a model's box in a partial frame's black padding) is dropped and counted.
"""

import time
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sdr_assets.ml.energy import window_bursts_from
from sdr_assets.ml.labels import BoxGeometry
from sdr_assets.ml.postprocess import (
    REFINE,
    DetectionBox,
    RefineParams,
    drop_echoes,
    drop_pieces,
    join_frame_edges,
    refine_box,
    suppress_overlaps,
    to_time_freq,
)
from sdr_assets.records import NS_PER_S, samples_to_ns
from sdr_assets.store.chunks import SpanReader
from sdr_assets.store.detections import DetectionRow
from sdr_assets.store.frames import FrameRow
from sdr_assets.store.lineage import ChunkIndex
from sdr_assets.store.window import AnalysisDB

ENERGY_VERSION = "energy"
EDGE_TOL_COLS = 2  # a box edge this many columns from a frame edge counts as cut by it


@dataclass
class DetectionStats:
    partition_key: str
    model_version: str
    detector: str  # "energy (IQ)" | "yolo onnxruntime" | "yolo torch"
    n_frames: int
    n_detections: int = 0
    per_label: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    n_joined: int = 0  # boxes removed by joining frame-edge pieces
    n_suppressed: int = 0
    n_no_samples: int = 0  # boxes dropped because no stored sample lies under them
    n_refined: int = 0  # model boxes whose time edges came from the IQ envelope (refine_box)
    n_split: int = 0  # boxes added because a model box held more than one package
    n_unconfirmed: int = 0  # model boxes dropped by require_energy (no energy over the floor in their band)
    n_echoes: int = 0  # refined model boxes dropped as another box's echo (drop_echoes)
    energy_from: str = ""  # energy detector: "stored" (by spectrograms) or "detected now"

    @property
    def ms_per_frame(self) -> float:
        return 1000.0 * self.seconds / max(self.n_frames, 1)


def frame_edges(frames: Sequence[FrameRow]) -> list[tuple[int, int]]:
    """(end of frame A, start of frame B) for consecutive frames that abut in time."""
    out = []
    for a, b in zip(frames, frames[1:]):
        ga, gb = BoxGeometry.of(a), BoxGeometry.of(b)
        end = int(round(ga.image_t_end_ns))
        if abs(gb.t_start_ns - end) <= ga.col_ns and a.center_freq_hz == b.center_freq_hz:
            out.append((end, gb.t_start_ns))
    return out


def _frame_for(frames: Sequence[FrameRow], t_ns: int) -> int:
    """frame_id of the frame holding time t_ns (else the nearest one; -1 without frames)."""
    best, best_d = -1, None
    for f in frames:
        d = 0 if f.t_start_ns <= t_ns < f.t_end_ns else min(abs(t_ns - f.t_start_ns), abs(t_ns - f.t_end_ns))
        if best_d is None or d < best_d:
            best, best_d = f.frame_id, d
            if d == 0:
                break
    return best


def energy_boxes(
    db: AnalysisDB, partition_key: str, frames: Sequence[FrameRow], **energy_kwargs
) -> tuple[list[DetectionBox], str]:
    """The energy detector's bursts as detection boxes, and where they came from."""
    bursts, origin = window_bursts_from(db, partition_key, **energy_kwargs)
    return [
        DetectionBox(
            b.t_start_ns,
            b.t_end_ns,
            b.freq_lower_hz,
            b.freq_upper_hz,
            b.label,
            b.confidence,
            (_frame_for(frames, b.t_start_ns),),
        )
        for b in bursts
    ], origin


def model_boxes(detector: Callable, frames: Sequence[FrameRow], root: Path, batch: int = 16) -> list[DetectionBox]:
    """Run ``detector`` (a list of images -> per image a list of Detection) over the frames."""
    boxes: list[DetectionBox] = []
    for i in range(0, len(frames), batch):
        part = frames[i : i + batch]
        results = detector([root / f.path for f in part])
        for f, dets in zip(part, results):
            boxes.extend(to_time_freq(dets, BoxGeometry.of(f), f.frame_id))
    return boxes


MAX_CONTEXT_GROWTH = 8  # refine_boxes reads up to 8 x params.context_s around a box


def _cut_by_context(
    refined: Sequence[DetectionBox], want_ns: tuple[int, int], got_ns: tuple[int, int], tol_ns: int
) -> bool:
    """Does a refined package come within ``tol_ns`` of an end of the samples read, where the read
    was cut by the context (not by the segment's end)? Then it may go on beyond them: rtl_433's
    rule joins pulses up to ``max_gap_s`` apart, so that is the tolerance to use."""
    left_open = got_ns[0] - want_ns[0] < tol_ns  # the read reached as far as asked: more may lie before
    right_open = want_ns[1] - got_ns[1] < tol_ns
    return any(
        r.refined
        and ((left_open and r.t_start_ns - got_ns[0] <= tol_ns) or (right_open and got_ns[1] - r.t_end_ns <= tol_ns))
        for r in refined
    )


def refine_boxes(
    db: AnalysisDB, partition_key: str, boxes: Sequence[DetectionBox], params: RefineParams = REFINE
) -> list[DetectionBox]:
    """Each box's time edges from the IQ envelope in its band (``refine_box``), time order.
    A package that comes within ``params.max_gap_s`` of an end of the samples read (a long
    package, e.g. repeats merged by rtl_433's rule, seen from a box on its last repeat) is read
    again with twice the context, up to ``MAX_CONTEXT_GROWTH`` x ``params.context_s``."""
    reader = SpanReader(db, partition_key)
    tol_ns = int(NS_PER_S * params.max_gap_s)
    out: list[DetectionBox] = []
    for b in sorted(boxes, key=lambda q: q.t_start_ns):
        ctx_ns = int(params.context_s * NS_PER_S)
        while True:
            want = (b.t_start_ns - ctx_ns, b.t_end_ns + ctx_ns)
            got = reader.span(*want, (b.t_start_ns + b.t_end_ns) // 2)
            if got is None:
                out.append(b)
                break
            x, t0_ns, fs, _ = got
            refined = refine_box(b, *got, params=params)
            grown = ctx_ns >= MAX_CONTEXT_GROWTH * params.context_s * NS_PER_S
            if grown or not _cut_by_context(refined, want, (t0_ns, t0_ns + samples_to_ns(x.size, fs)), tol_ns):
                out.extend(refined)
                break
            ctx_ns *= 2
    return out


def detect_partition(
    db: AnalysisDB,
    partition_key: str,
    root: Path | str,
    *,
    detector: Callable | None = None,
    model_version: str = ENERGY_VERSION,
    detector_name: str = "",
    write: bool = True,
    refine: RefineParams | None = REFINE,
    require_energy: bool = False,
    suppress_across_freq: bool = False,
    echoes: bool = True,
    frame_ids: Collection[int] | None = None,
    **energy_kwargs,
) -> tuple[DetectionStats, list[DetectionRow]]:
    """Detect in one partition (``detector=None``: the energy detector) and replace its rows.
    A model's boxes get their time edges refined on the IQ unless ``refine`` is None.
    ``require_energy`` (model boxes, needs ``refine``): drop a box whose band holds nothing
    ``refine.min_snr_db`` over its floor. ``suppress_across_freq``: one transmitter at a time:
    a refined box more than half inside a longer refined one is a piece of it (``drop_pieces``),
    and a box more than half inside a stronger one in time is dropped whatever their frequencies.
    Both suit single-transmitter captures (rtl_433 recordings), not busy multi-emission bands.
    ``echoes`` (default, model boxes with ``refine``): drop a refined box keyed on and off with a
    stronger one at another frequency (``drop_echoes``: its image, splatter or harmonic); safe in
    a busy band.
    ``frame_ids``: only these frames of the partition (the held-back frames of ``ml.contest``):
    the model sees them, the energy detector's bursts of the window (run once a window, stored)
    are kept where their centre lies in one of them."""
    if require_energy and refine is None:
        raise ValueError("require_energy needs refine (the envelope check is refine_box's)")
    t0 = time.perf_counter()
    n_refined = n_split = n_unconfirmed = n_echoes = 0
    energy_from = ""
    frames = db.frames(partition_key)
    if frame_ids is not None:
        wanted = set(frame_ids)
        frames = [f for f in frames if f.frame_id in wanted]
    if detector is None:
        model_version = ENERGY_VERSION
        if frame_ids is not None:
            energy_kwargs["spans_ns"] = [(f.t_start_ns, int(BoxGeometry.of(f).image_t_end_ns)) for f in frames]
        boxes, energy_from = energy_boxes(db, partition_key, frames, **energy_kwargs)
        joined = boxes
        name = "energy (IQ)"
    else:
        boxes = model_boxes(detector, frames, Path(root))
        tol_ns = int(EDGE_TOL_COLS * max((BoxGeometry.of(f).col_ns for f in frames), default=0))
        joined = join_frame_edges(boxes, frame_edges(frames), tol_ns)
        name = detector_name or f"yolo {type(detector).__name__}"
        if refine is not None:
            refined = refine_boxes(db, partition_key, joined, refine)
            n_refined, n_split = sum(b.refined for b in refined), len(refined) - len(joined)
            joined = refined
            if require_energy:
                joined = [b for b in refined if b.refined]
                n_unconfirmed = len(refined) - len(joined)
            if echoes:
                n_echoes = len(joined)
                joined = drop_echoes(joined)
                n_echoes -= len(joined)
    if suppress_across_freq:
        joined = drop_pieces(joined)
    kept = suppress_overlaps(joined, any_freq=suppress_across_freq)
    index = ChunkIndex.for_partition(db, partition_key)
    rows, no_samples = [], 0
    for b in kept:
        seqs = index.seqs(b.t_start_ns, b.t_end_ns)
        if seqs is None:
            no_samples += 1
            continue
        frame_id = b.frame_ids[0] if b.frame_ids else _frame_for(frames, b.t_start_ns)
        rows.append(
            DetectionRow(
                b.t_start_ns, b.t_end_ns, b.freq_lower_hz, b.freq_upper_hz, b.label, b.confidence, frame_id, *seqs
            )
        )
    if write:
        db.replace_detections(partition_key, model_version, rows)
    stats = DetectionStats(
        partition_key,
        model_version,
        name,
        len(frames),
        len(rows),
        dict(sorted(Counter(r.label for r in rows).items())),
        time.perf_counter() - t0,
        len(boxes) - len(joined) + n_split - n_unconfirmed - n_echoes,
        len(joined) - len(kept),
        no_samples,
        n_refined,
        n_split,
        n_unconfirmed,
        n_echoes,
        energy_from,
    )
    return stats, rows
