"""Time-frequency annotations <-> YOLO boxes on a spectrogram frame (pure functions).

Pixel convention (continuous coordinates, the same as YOLO's): the image spans x in
[0, width_px] and y in [0, height_px]; pixel column i covers [i, i+1), pixel row j covers
[j, j+1).

- Time: column x starts at ``t_start_ns + x * ns_per_col``. ``ns_per_col`` is
  ``hop * NS_PER_S / sample_rate_hz`` when the geometry carries ``hop`` and ``sample_rate_hz``
  (the frames table's contract: "column x covers [t_start_ns + x*hop/fs, ...)"), otherwise
  ``(t_end_ns - t_start_ns) / width_px``.
- Frequency: row 0 is the top (``freq_upper_hz``), row ``height_px - 1`` the bottom
  (``freq_lower_hz``); rows are ``(freq_upper_hz - freq_lower_hz) / height_px`` Hz tall, so
  y = (freq_upper_hz - f) / hz_per_row. With ``freq_upper_hz - freq_lower_hz`` equal to the
  sample rate and ``height_px`` equal to nfft, one row is exactly one FFT bin.
"""

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sdr_assets.errors import ModelError
from sdr_assets.records import NS_PER_S

# Class ids are positions in this tuple; "burst" is the energy detector's auto-label class.
CLASSES: tuple[str, ...] = ("cw", "ook", "fsk", "chirp", "wideband", "burst")
AUTO_CLASS = "burst"
MIN_BOX_PX = 16.0  # on a 640-px frame: 8 px after the default 320-px training resize (a 1-row
# CW tone was unlearnable at 2 px (AP50 0.00) and weak at 4 px (AP50 0.22 after 60 epochs))
EDGE_SLIVER_PX = MIN_BOX_PX / 2  # an emission cut by the frame's time edge with less than this
# inside is not labelled on this frame: the neighbouring frame holds the rest of it

YoloBox = tuple[int, float, float, float, float]  # (class_id, x_center, y_center, w, h) in [0,1]
PixelBox = tuple[float, float, float, float]  # (x0, y0, x1, y1), continuous pixel coordinates


@dataclass(frozen=True)
class BoxGeometry:
    """What the label maths needs from a frame (mirrors dsp.stft.FrameGeometry's fields)."""

    t_start_ns: int
    t_end_ns: int
    freq_lower_hz: float
    freq_upper_hz: float
    width_px: int
    height_px: int
    ns_per_col: float | None = None  # None: (t_end_ns - t_start_ns) / width_px

    def __post_init__(self) -> None:
        if self.width_px <= 0 or self.height_px <= 0:
            raise ModelError(f"frame size {self.width_px}x{self.height_px} px is empty; pass the frame's real size.")
        if self.freq_upper_hz <= self.freq_lower_hz:
            raise ModelError(
                f"freq_upper_hz {self.freq_upper_hz} <= freq_lower_hz {self.freq_lower_hz}; "
                "pass the frame's band edges in ascending order."
            )
        if self.col_ns <= 0:
            raise ModelError(f"frame time span {self.t_start_ns}..{self.t_end_ns} ns is empty; check the frame row.")

    @property
    def col_ns(self) -> float:
        """Duration of one pixel column, ns."""
        if self.ns_per_col is not None:
            return float(self.ns_per_col)
        return (self.t_end_ns - self.t_start_ns) / self.width_px

    @property
    def row_hz(self) -> float:
        """Height of one pixel row, Hz."""
        return (self.freq_upper_hz - self.freq_lower_hz) / self.height_px

    @property
    def image_t_end_ns(self) -> float:
        """End of the last column (may differ from t_end_ns by the last FFT window)."""
        return self.t_start_ns + self.width_px * self.col_ns

    @classmethod
    def of(cls, frame: Any) -> "BoxGeometry":
        """Geometry of any object or mapping with the frames-table fields (a store FrameRow, a
        FrameGeometry, a dict, a row indexed by column name). ``hop`` and ``sample_rate_hz``, when
        present, fix the column pitch."""
        if isinstance(frame, BoxGeometry):
            return frame

        def get(name: str) -> Any:
            if isinstance(frame, Mapping):
                return frame.get(name)
            if hasattr(frame, name):
                return getattr(frame, name)
            try:  # a row indexed by column name
                return frame[name]
            except (KeyError, IndexError, TypeError):
                return None

        missing = [
            n
            for n in ("t_start_ns", "t_end_ns", "freq_lower_hz", "freq_upper_hz", "width_px", "height_px")
            if get(n) is None
        ]
        if missing:
            raise ModelError(f"frame geometry lacks {missing}; pass a frames-table row or a FrameGeometry.")
        hop, fs = get("hop"), get("sample_rate_hz")
        ns_per_col = hop * NS_PER_S / fs if hop and fs else None
        return cls(
            int(get("t_start_ns")),
            int(get("t_end_ns")),
            float(get("freq_lower_hz")),
            float(get("freq_upper_hz")),
            int(get("width_px")),
            int(get("height_px")),
            ns_per_col,
        )


def class_id(label: str, classes: tuple[str, ...] = CLASSES) -> int:
    """Index of ``label`` in ``classes``; an unknown label is an error, not a silent skip."""
    try:
        return classes.index(label)
    except ValueError:
        raise ModelError(f"unknown label {label!r}; known classes are {list(classes)}.") from None


def _widen(lo: float, hi: float, size: float, min_px: float) -> tuple[float, float]:
    """Grow [lo, hi] symmetrically to at least min_px, kept inside [0, size]."""
    need = min(min_px, size)
    if hi - lo >= need:
        return lo, hi
    mid = (lo + hi) / 2
    lo, hi = mid - need / 2, mid + need / 2
    if lo < 0:
        lo, hi = 0.0, need
    if hi > size:
        lo, hi = size - need, size
    return lo, hi


def annotation_to_pixels(
    geom: Any, t_start_ns: int, t_end_ns: int, freq_lower_hz: float, freq_upper_hz: float, min_px: float = MIN_BOX_PX
) -> PixelBox | None:
    """Pixel box (x0, y0, x1, y1) of an annotation, clipped to the frame; None if outside it.

    A box thinner than ``min_px`` (a CW tone one bin wide, a 1-column click) is widened about
    its centre to ``min_px`` pixels so YOLO gets a learnable target.
    """
    g = BoxGeometry.of(geom)
    x0 = (t_start_ns - g.t_start_ns) / g.col_ns
    x1 = (t_end_ns - g.t_start_ns) / g.col_ns
    y0 = (g.freq_upper_hz - freq_upper_hz) / g.row_hz
    y1 = (g.freq_upper_hz - freq_lower_hz) / g.row_hz
    if x1 < x0 or y1 < y0:
        raise ModelError(
            f"annotation has t_end < t_start or freq_upper < freq_lower: "
            f"{t_start_ns}..{t_end_ns} ns, {freq_lower_hz}..{freq_upper_hz} Hz."
        )
    w, h = g.width_px, g.height_px
    if x1 <= 0 or x0 >= w or y1 <= 0 or y0 >= h:
        return None
    if (x0 < 0 or x1 > w) and min(x1, float(w)) - max(x0, 0.0) < min(EDGE_SLIVER_PX, min_px):
        return None  # a sliver at the frame's time edge: invisible here, labelled next door
    x0, x1 = _widen(max(x0, 0.0), min(x1, float(w)), w, min_px)
    y0, y1 = _widen(max(y0, 0.0), min(y1, float(h)), h, min_px)
    return (x0, y0, x1, y1)


def pixels_to_yolo(box: PixelBox, width_px: int, height_px: int) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) pixels -> normalised (x_center, y_center, w, h)."""
    x0, y0, x1, y1 = box
    return ((x0 + x1) / 2 / width_px, (y0 + y1) / 2 / height_px, (x1 - x0) / width_px, (y1 - y0) / height_px)


def yolo_to_pixels(x_center: float, y_center: float, w: float, h: float, width_px: int, height_px: int) -> PixelBox:
    """Normalised (x_center, y_center, w, h) -> (x0, y0, x1, y1) pixels."""
    return (
        (x_center - w / 2) * width_px,
        (y_center - h / 2) * height_px,
        (x_center + w / 2) * width_px,
        (y_center + h / 2) * height_px,
    )


def annotation_to_yolo(
    geom: Any, t_start_ns: int, t_end_ns: int, freq_lower_hz: float, freq_upper_hz: float, min_px: float = MIN_BOX_PX
) -> tuple[float, float, float, float] | None:
    """Normalised YOLO (x_center, y_center, w, h) of an annotation on a frame; None if outside."""
    g = BoxGeometry.of(geom)
    box = annotation_to_pixels(g, t_start_ns, t_end_ns, freq_lower_hz, freq_upper_hz, min_px)
    return None if box is None else pixels_to_yolo(box, g.width_px, g.height_px)


def pixel_span(box: PixelBox) -> tuple[int, int, int, int]:
    """Inclusive integer pixel indices (col_first, col_last, row_first, row_last) a box touches."""
    x0, y0, x1, y1 = box
    return (
        math.floor(x0),
        max(math.floor(x0), math.ceil(x1) - 1),
        math.floor(y0),
        max(math.floor(y0), math.ceil(y1) - 1),
    )


def pixels_to_annotation(geom: Any, x0: float, y0: float, x1: float, y1: float) -> tuple[int, int, float, float]:
    """Pixel box -> (t_start_ns, t_end_ns, freq_lower_hz, freq_upper_hz): the inverse mapping."""
    g = BoxGeometry.of(geom)
    # int + int: adding a float offset to epoch ns (~1.7e18) would lose ~256 ns of precision
    return (
        g.t_start_ns + int(round(x0 * g.col_ns)),
        g.t_start_ns + int(round(x1 * g.col_ns)),
        g.freq_upper_hz - y1 * g.row_hz,
        g.freq_upper_hz - y0 * g.row_hz,
    )


def label_frame(
    geom: Any, annotations: Iterable[Any], classes: tuple[str, ...] = CLASSES, min_px: float = MIN_BOX_PX
) -> list[YoloBox]:
    """YOLO boxes for every annotation (``t_start_ns``, ``t_end_ns``, ``freq_lower_hz``,
    ``freq_upper_hz``, ``label``: an Annotation, a synth emission turned absolute, a detection)
    that touches the frame; the rest are skipped."""
    g = BoxGeometry.of(geom)
    out: list[YoloBox] = []
    for a in annotations:
        box = annotation_to_yolo(g, a.t_start_ns, a.t_end_ns, a.freq_lower_hz, a.freq_upper_hz, min_px)
        if box is not None:
            out.append((class_id(a.label, classes), *box))
    return out
