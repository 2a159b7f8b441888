"""A waterfall PNG of a partition with its detections drawn (PIL only, no matplotlib).

The first ``max_frames`` spectrogram frames are stitched left to right (time runs right,
frequency up, as in the frames), coloured with a small black-blue-yellow map, boxes drawn
per detection in a colour per label, and the whole downsampled to at most
``max_width_px`` x ``max_height_px``. Frames that do not abut in time (a gap, a retune) are
separated by a thin white line.
"""

import base64
import io
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from sdr_assets.ml.labelling import partition_frames
from sdr_assets.ml.labels import BoxGeometry, annotation_to_pixels

LABEL_COLOURS = {"cw": (0, 255, 255), "ook": (255, 64, 64), "fsk": (64, 255, 64), "chirp": (255, 0, 255),
                 "wideband": (255, 160, 0), "burst": (255, 255, 255)}
DEFAULT_COLOUR = (255, 128, 192)


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

    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")

    def markdown(self, title: str) -> str:
        rows = "".join(f"| {k} | {v} |\n" for k, v in self.counts.items()) or "| (none) | 0 |\n"
        return (f"**{title}**: first {self.n_frames_shown} of {self.n_frames} frames, "
                f"{self.n_boxes_drawn} boxes drawn\n\n![waterfall]({self.data_uri()})\n\n"
                f"| label | detections |\n| --- | --- |\n{rows}")


def colour_lut() -> np.ndarray:
    """256 x 3 uint8: black -> blue -> magenta -> yellow -> white, monotonic in brightness."""
    x = np.linspace(0.0, 1.0, 256)
    stops = np.array([[0, 0, 0], [20, 20, 120], [150, 30, 150], [250, 180, 40], [255, 255, 230]], float)
    pos = np.linspace(0.0, 1.0, len(stops))
    return np.stack([np.interp(x, pos, stops[:, c]) for c in range(3)], axis=1).astype(np.uint8)


def render_report(conn: sqlite3.Connection, partition_key: str, root: Path | str, out_path: Path | str, *,
                  max_frames: int = 8, max_width_px: int = 1600, max_height_px: int = 320) -> Report:
    """Stitch, colour, draw and save the partition's waterfall (see the module doc)."""
    root, out_path = Path(root), Path(out_path)
    frames = partition_frames(conn, partition_key)
    dets = conn.execute("SELECT t_start_ns, t_end_ns, freq_lower_hz, freq_upper_hz, label, confidence "
                        "FROM detections WHERE partition_key = ? ORDER BY t_start_ns", (partition_key,)).fetchall()
    counts = dict(sorted(Counter(d[4] for d in dets).items()))
    shown = frames[:max_frames]
    if not shown:
        canvas = Image.new("RGB", (max_width_px // 2, 64), (0, 0, 0))
        ImageDraw.Draw(canvas).text((8, 24), f"{partition_key}: no spectrogram frames", fill=(255, 255, 255))
        return _save(canvas, out_path, 0, len(frames), 0, counts)
    height = max(f["height_px"] for f in shown)
    width = sum(f["width_px"] for f in shown)
    grey = np.zeros((height, width), np.uint8)
    offsets, x, breaks = [], 0, []
    for i, f in enumerate(shown):
        img = np.asarray(Image.open(root / f["path"]).convert("L"))
        grey[: img.shape[0], x: x + img.shape[1]] = img
        if i and abs(f["t_start_ns"] - shown[i - 1]["t_end_ns"]) > BoxGeometry.of(f).col_ns:
            breaks.append(x)
        offsets.append(x)
        x += f["width_px"]
    rgb = colour_lut()[grey]
    for b in breaks:
        rgb[:, b] = 255
    sx, sy = min(1.0, max_width_px / width), min(1.0, max_height_px / height)
    canvas = Image.fromarray(rgb).resize((max(1, round(width * sx)), max(1, round(height * sy))),
                                         Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(canvas)
    n_drawn = 0
    t_lo, t_hi = shown[0]["t_start_ns"], shown[-1]["t_end_ns"]
    for t0, t1, f_lo, f_hi, label, conf in dets:
        if t1 <= t_lo or t0 >= t_hi:
            continue
        colour = LABEL_COLOURS.get(label, DEFAULT_COLOUR)
        for f, off in zip(shown, offsets):
            if t1 <= f["t_start_ns"] or t0 >= f["t_end_ns"]:
                continue
            px = annotation_to_pixels(BoxGeometry.of(f), t0, t1, f_lo, f_hi)
            if px is None:
                continue
            x0, y0, x1, y1 = (off + px[0]) * sx, px[1] * sy, (off + px[2]) * sx, px[3] * sy
            draw.rectangle([x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)], outline=colour, width=1)
            if f["t_start_ns"] <= t0:  # caption once, on the frame where the box starts
                draw.text((x0 + 2, max(0.0, y0 - 11)), f"{label} {conf:.2f}", fill=colour)
            n_drawn += 1
    return _save(canvas, out_path, len(shown), len(frames), n_drawn, counts)


def _save(canvas: Image.Image, out_path: Path, shown: int, total: int, drawn: int, counts: dict) -> Report:
    buf = io.BytesIO()
    canvas.save(buf, format="PNG", optimize=True)
    png = buf.getvalue()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_bytes(png)
    return Report(out_path, png, canvas.width, canvas.height, shown, total, drawn, counts)
