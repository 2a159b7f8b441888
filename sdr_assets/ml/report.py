"""A waterfall PNG of a partition with its detections drawn (PIL only, no matplotlib).

The first ``max_frames`` spectrogram frames are stitched left to right (time runs right,
frequency up, as in the frames), coloured with a small black-blue-yellow map (16 levels,
the noise floor black: the PNG stays tens of kB, fit for inline metadata), boxes drawn per
detection in a colour per label, the whole downsampled by whole factors to at most
``max_width_px`` x ``max_height_px`` (max over rows so a one-bin tone survives, mean over
columns so noise averages down). Frames that do not abut in time (a gap, a retune) are
separated by a thin white line. What rtl_433 decoded in the window (``decoded_messages``, when
the window was decoded) is drawn beside the detections: one box per decoded package, in its
own colour, captioned with the device (``model id N ch C``), and tabled per device.
"""

import base64
import io
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from sdr_assets.ml.labels import BoxGeometry, annotation_to_pixels
from sdr_assets.store import messages as decodes
from sdr_assets.store.files import write_output
from sdr_assets.store.window import AnalysisDB

LABEL_COLOURS = {
    "cw": (0, 255, 255),
    "ook": (255, 64, 64),
    "fsk": (64, 255, 64),
    "chirp": (255, 0, 255),
    "wideband": (255, 160, 0),
    "burst": (255, 255, 255),
}
DEFAULT_COLOUR = (255, 128, 192)
DECODE_COLOUR = (128, 255, 160)  # decoded packages (rtl_433)
NOISE_CUT = 40  # of 255: about 4.7 dB over the frame's 20th percentile (frames span 30 dB or more)
LEVELS = 16  # colours for the spectrogram; palette entries after them: white, then one per label
WHITE = LEVELS
LABEL_INDEX = {name: LEVELS + 1 + i for i, name in enumerate(LABEL_COLOURS)}
LABEL_INDEX[None] = LEVELS + 1 + len(LABEL_COLOURS)
DECODE_INDEX = LEVELS + 2 + len(LABEL_COLOURS)


@dataclass
class Report:
    path: Path
    png: bytes
    width_px: int
    height_px: int
    n_frames_shown: int
    n_frames: int
    n_boxes_drawn: int
    counts: dict[str, int] = field(default_factory=dict)  # detections per label in the whole partition
    devices: dict[str, int] = field(default_factory=dict)  # decoded messages per device, whole partition
    n_decodes_drawn: int = 0

    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")

    def markdown(self, title: str) -> str:
        rows = "".join(f"| {k} | {v} |\n" for k, v in self.counts.items()) or "| (none) | 0 |\n"
        text = (
            f"**{title}**: first {self.n_frames_shown} of {self.n_frames} frames, "
            f"{self.n_boxes_drawn} boxes drawn, {self.n_decodes_drawn} decoded packages (green, "
            f"named)\n\n![waterfall]({self.data_uri()})\n\n"
            f"| label | detections |\n| --- | --- |\n{rows}"
        )
        if self.devices:
            text += "\n| device (rtl_433) | messages |\n| --- | --- |\n" + "".join(
                f"| {k} | {v} |\n" for k, v in self.devices.items()
            )
        return text


def palette() -> list[int]:
    """LEVELS map colours, white, the label colours and the default label colour (flat RGB)."""
    lut = colour_lut()[(np.arange(LEVELS) * 255) // (LEVELS - 1)]
    extra = [(255, 255, 255), *LABEL_COLOURS.values(), DEFAULT_COLOUR, DECODE_COLOUR]
    return [int(v) for rgb in [*map(tuple, lut), *extra] for v in rgb]


def colour_lut() -> np.ndarray:
    """256 x 3 uint8: black -> blue -> magenta -> yellow -> white, monotonic in brightness."""
    x = np.linspace(0.0, 1.0, 256)
    stops = np.array([[0, 0, 0], [20, 20, 120], [150, 30, 150], [250, 180, 40], [255, 255, 230]], float)
    pos = np.linspace(0.0, 1.0, len(stops))
    return np.stack([np.interp(x, pos, stops[:, c]) for c in range(3)], axis=1).astype(np.uint8)


def render_report(
    db: AnalysisDB,
    partition_key: str,
    root: Path | str,
    out_path: Path | str,
    *,
    max_frames: int = 8,
    max_width_px: int = 1200,
    max_height_px: int = 240,
) -> Report:
    """Stitch, colour, draw and save the partition's waterfall (see the module doc)."""
    root, out_path = Path(root), Path(out_path)
    frames = db.frames(partition_key)
    dets = db.detections(partition_key)
    counts = dict(sorted(Counter(d.label for d in dets).items()))
    msgs = decodes.messages(db.conn, partition_key)
    devices = dict(sorted(Counter(m.name() for m in msgs).items()))
    shown = frames[:max_frames]
    if not shown:
        canvas = Image.new("P", (max_width_px // 2, 64), 0)
        canvas.putpalette(palette())
        ImageDraw.Draw(canvas).text((8, 24), f"{partition_key}: no spectrogram frames", fill=WHITE)
        return _save(canvas, out_path, 0, len(frames), 0, counts, devices)
    height = max(f.height_px for f in shown)
    width = sum(f.width_px for f in shown)
    grey = np.zeros((height, width), np.uint8)
    offsets, x, breaks = [], 0, []
    for i, f in enumerate(shown):
        img = np.asarray(Image.open(root / f.path).convert("L"))
        grey[: img.shape[0], x : x + img.shape[1]] = img
        if i and abs(f.t_start_ns - shown[i - 1].t_end_ns) > BoxGeometry.of(f).col_ns:
            breaks.append(x)
        offsets.append(x)
        x += f.width_px
    small = _pool(grey, -(-height // max_height_px), -(-width // max_width_px))
    size = (small.shape[1], small.shape[0])
    sx, sy = size[0] / width, size[1] / height
    # noise below NOISE_CUT goes black and LEVELS colours remain: the PNG stays small (the UI
    # shows it inline) and the emissions stand out
    levels = np.clip((small - NOISE_CUT) * LEVELS // (256 - NOISE_CUT), 0, LEVELS - 1).astype(np.uint8)
    for b in breaks:
        levels[:, min(size[0] - 1, round(b * sx))] = WHITE
    canvas = Image.frombytes("P", size, np.ascontiguousarray(levels).tobytes())
    canvas.putpalette(palette())
    draw = ImageDraw.Draw(canvas)
    boxes = [
        (
            d.t_start_ns,
            d.t_end_ns,
            d.freq_lower_hz,
            d.freq_upper_hz,
            LABEL_INDEX.get(d.label, LABEL_INDEX[None]),
            f"{d.label} {d.confidence:.2f}",
        )
        for d in dets
    ]
    packages = {}  # one box per decoded package (a package may carry several identical messages)
    for m in msgs:
        packages.setdefault((m.t_start_ns, m.t_end_ns), (m.freq_lower_hz, m.freq_upper_hz, m.name()))
    decoded = [(t0, t1, lo, hi, DECODE_INDEX, name) for (t0, t1), (lo, hi, name) in packages.items()]
    n_drawn = _draw(draw, shown, offsets, sx, sy, boxes, below=False)
    n_decoded = _draw(draw, shown, offsets, sx, sy, decoded, below=True)
    return _save(canvas, out_path, len(shown), len(frames), n_drawn, counts, devices, n_decoded)


def _draw(draw: ImageDraw.ImageDraw, shown: list, offsets: list, sx: float, sy: float, boxes: list, below: bool) -> int:
    """Draw (t0, t1, f_lo, f_hi, colour, caption) boxes on the stitched frames; the caption above
    the box (detections) or below it (decodes), once, on the frame where the box starts."""
    n_drawn = 0
    t_lo, t_hi = shown[0].t_start_ns, shown[-1].t_end_ns
    for t0, t1, f_lo, f_hi, colour, caption in boxes:
        if t1 <= t_lo or t0 >= t_hi:
            continue
        for f, off in zip(shown, offsets):
            if t1 <= f.t_start_ns or t0 >= f.t_end_ns:
                continue
            px = annotation_to_pixels(BoxGeometry.of(f), t0, t1, f_lo, f_hi)
            if px is None:
                continue
            x0, y0, x1, y1 = (off + px[0]) * sx, px[1] * sy, (off + px[2]) * sx, px[3] * sy
            draw.rectangle([x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)], outline=colour, width=1)
            if f.t_start_ns <= t0:  # caption once, on the frame where the box starts
                draw.text((x0 + 2, y1 + 1 if below else max(0.0, y0 - 11)), caption, fill=colour)
            n_drawn += 1
    return n_drawn


def _pool(grey: np.ndarray, fy: int, fx: int) -> np.ndarray:
    """Downsample by whole factors: max over fy rows (a one-bin tone survives), mean over fx
    columns (noise averages down). Edges are padded by repetition."""
    h, w = grey.shape
    g = np.pad(grey, ((0, -h % fy), (0, -w % fx)), mode="edge").astype(np.float32)
    g = g.reshape(g.shape[0] // fy, fy, g.shape[1]).max(axis=1)
    return g.reshape(g.shape[0], g.shape[1] // fx, fx).mean(axis=2).astype(np.int32)


def _save(
    canvas: Image.Image,
    out_path: Path,
    shown: int,
    total: int,
    drawn: int,
    counts: dict,
    devices: dict,
    n_decoded: int = 0,
) -> Report:
    buf = io.BytesIO()
    canvas.save(buf, format="PNG", optimize=True)
    png = buf.getvalue()
    write_output(out_path, png, "report path")
    return Report(out_path, png, canvas.width, canvas.height, shown, total, drawn, counts, devices, n_decoded)
