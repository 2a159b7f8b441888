"""Training labels of one partition: annotations, decoder packages (or energy bursts) -> YOLO boxes.

Sources, each box recorded with its own (``labels.source``, see ``store.labels``):

- ``annotation``: the window's annotations (synthetic ground truth, SigMF annotations); a label
  outside the detector's classes (a free-text SigMF label) becomes the generic ``burst``
  class, still ground truth;
- ``rtl_433``: every package rtl_433's pulse detector found in the window, decoded or not
  (``packages``: ``store.messages.PackageRecord``), class from its modulation (OOK -> ``ook``,
  FSK -> ``fsk``), its time span from rtl_433 and its band measured on the samples; a package
  that overlaps an annotation in time and frequency is left to the annotation;
- ``energy`` (``auto = 1``): only when neither gave a box, the energy detector's bursts of the
  window (``ml.energy``: those ``spectrograms`` stored, else run now), class ``burst``: a
  fallback, marked as such.

Boxes land on the spectrogram frames through each frame's geometry (time -> x, frequency -> y;
see ``ml.labels``). Re-labelling a partition replaces its rows.
"""

import bisect
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sdr_assets.ml.energy import window_bursts_from
from sdr_assets.ml.labels import AUTO_CLASS, CLASSES, BoxGeometry, label_frame
from sdr_assets.records import TimeFreqBox
from sdr_assets.store.frames import FrameRow
from sdr_assets.store.labels import LabelRow
from sdr_assets.store.window import AnalysisDB


@dataclass
class LabelStats:
    partition_key: str
    n_frames: int
    source: str  # the sources used, "+"-joined: "annotations", "rtl_433", "annotations+rtl_433", "energy"
    n_sources: int  # annotations, packages or energy bursts found in the window
    n_boxes: int = 0
    n_auto: int = 0
    n_ground_truth: int = 0
    per_class: dict[str, int] = field(default_factory=dict)
    relabelled: dict[str, int] = field(default_factory=dict)  # unknown label -> count (as burst)
    frames_with_boxes: int = 0
    per_source: dict[str, int] = field(default_factory=dict)  # boxes per store.labels source
    n_packages: int = 0  # decoder packages offered
    n_packages_under_annotations: int = 0  # left to an annotation that covers them
    energy_from: str = ""  # energy fallback: "stored" (by spectrograms) or "detected now"


def overlapping(items: list, t_start_ns: int, t_end_ns: int, starts: list[int], max_len_ns: int) -> list:
    """Items (sorted by t_start_ns, ``starts`` their start times) overlapping [t_start_ns, t_end_ns)."""
    lo = bisect.bisect_left(starts, t_start_ns - max_len_ns)
    hi = bisect.bisect_left(starts, t_end_ns)
    return [b for b in items[lo:hi] if b.t_end_ns > t_start_ns]


def boxes_per_frame(frames: Sequence[FrameRow], items: list, classes: tuple[str, ...] = CLASSES) -> dict[int, list]:
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


def package_boxes(packages: Sequence[Any], classes: tuple[str, ...] = CLASSES) -> list[TimeFreqBox]:
    """Boxes of decoder packages (t_start_ns, t_end_ns, freq_lower_hz, freq_upper_hz,
    modulation "OOK"/"FSK"): class ``ook``/``fsk`` (``burst`` if the classes lack it); their
    labels' source is "rtl_433"."""
    out = []
    for p in packages:
        name = str(p.modulation).lower()
        out.append(
            TimeFreqBox(
                int(p.t_start_ns),
                int(p.t_end_ns),
                float(p.freq_lower_hz),
                float(p.freq_upper_hz),
                name if name in classes else AUTO_CLASS,
            )
        )
    return out


def label_partition(
    db: AnalysisDB,
    partition_key: str,
    classes: tuple[str, ...] = CLASSES,
    packages: Sequence[Any] | None = None,
    **energy_kwargs,
) -> LabelStats:
    """Label every frame of the partition and replace its rows in the labels table
    (sources: see the module doc; ``packages`` None or empty: annotations, else energy)."""
    frames = db.frames(partition_key)
    anns = db.annotations(partition_key)
    relabelled: Counter = Counter()
    items: list[TimeFreqBox] = []
    for a in anns:
        name = str(a.label).strip().lower()
        if name not in classes:
            relabelled[str(a.label)] += 1
            name = AUTO_CLASS
        items.append(replace(a.box, label=name))
    offered = package_boxes(packages or (), classes)
    decoded = [b for b in offered if not any(b.overlaps(a) for a in items)]
    used = (["annotations"] if items else []) + (["rtl_433"] if decoded else [])
    # the boxes to draw, by the source their labels record (store.labels.SOURCES)
    by_source = {source: boxes for source, boxes in (("annotation", items), ("rtl_433", decoded)) if boxes}
    if by_source:
        stats = LabelStats(partition_key, len(frames), "+".join(used), len(anns) + len(decoded))
    else:
        bursts, energy_from = window_bursts_from(db, partition_key, **energy_kwargs) if frames else ([], "")
        by_source = {"energy": [replace(b, label=AUTO_CLASS) for b in bursts]} if bursts else {}
        stats = LabelStats(partition_key, len(frames), "energy", len(bursts), energy_from=energy_from)
    stats.n_packages, stats.n_packages_under_annotations = len(offered), len(offered) - len(decoded)
    rows = []
    for source, boxes in by_source.items():
        for fid, yolo in boxes_per_frame(frames, boxes, classes).items():
            rows.extend(LabelRow(fid, classes[c], xc, yc, w, h, source) for c, xc, yc, w, h in yolo)
    rows.sort(key=lambda r: (r.frame_id, r.x_center))
    db.replace_labels(partition_key, rows)
    stats.n_boxes = len(rows)
    stats.n_auto = sum(r.auto for r in rows)
    stats.n_ground_truth = len(rows) - stats.n_auto
    stats.per_class = dict(sorted(Counter(r.class_name for r in rows).items()))
    stats.per_source = dict(sorted(Counter(r.source for r in rows).items()))
    stats.relabelled = dict(relabelled)
    stats.frames_with_boxes = len({r.frame_id for r in rows})
    return stats
