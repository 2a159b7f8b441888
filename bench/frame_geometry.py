"""Frame geometry (window, overlap, nfft) measured at the detector's input, on the synthetic band.

A proxy, not detection mAP: training a YOLO per geometry is not affordable here, so this measures
what the detector is given. For every labelled emission of ``BandScenario`` (ISM at 250 kS/s with
rtl_433-like packages; the five-class band at 1.024 and 2.4 MS/s), the frame that holds its
midpoint is rendered as the product renders it (cu8 -> complex64 -> ``stft_db`` with the window ->
``normalize_frame_u8``), then resized as ultralytics does at ``imgsz=320`` (long side to 320,
aspect kept, ``cv2.INTER_LINEAR``; a 640 x 640 frame becomes 320 x 320, an exact 2 x 2 mean), and:

- contrast: mean pixel level inside the emission's box minus the median of a ring around it
  (``MARGIN_PX`` wide, ``GUARD_PX`` away, other labelled boxes left out), in 8-bit levels;
  "visible" when the contrast reaches ``VISIBLE_LEVELS``. Also the box's 90th percentile minus
  the ring (p90C: sparse signals, a chirp's line or FSK's two tones, fill little of their box),
  and the spill: the ring's median above the image median (leakage and smear around a box). The
  same box moved to a random empty place of the same frame gives the null contrast: "null" is how
  often the background alone reaches the threshold (a geometry must not win by being noisier);
  "+/-" counts the labels visible here and not with the current geometry, and the reverse;
- size: the box's width (columns) and height (rows) at the detector input; under 2 px a
  stride-8 head cannot localise it (``labels.py`` widens such boxes to 8 px at 320, but the
  energy stays where it is);
- cost: CPU ms per frame of cu8 -> complex64 -> STFT -> normalise (the product's
  ``_render_one``, PNG encode not included), best of 40 interleaved rounds in the same run;
  "cost" is that per second of signal relative to the current geometry (hann, nfft 640, no
  overlap) and "frm" the frames per second of signal relative to it: PNG encode (~20 ms a frame)
  and inference (~16-22 ms a frame on CPU) scale with frames, not with the STFT.

Boxes are placed where the energy is: sample ``s`` is at continuous column
``(s - nfft / 2 + hop / 2) / hop`` (window centres; equal to ``labels.py``'s ``s / hop`` when
hop == nfft, 1.5 columns earlier at 75 % overlap).

    nice -n 10 .venv/bin/python bench/frame_geometry.py [--scale 1.0] [--seed 40]

About 2 CPU minutes (5 wall minutes on 2 cores shared with a YOLO training); ``--scale 0.2`` for
a quick look. Results and the choice: docs/dsp.md, "Frame geometry, measured".
"""

import os

if __name__ == "__main__":  # one thread, before numpy loads (not when a test imports this file)
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ[_var] = "1"

import argparse  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import scipy.signal  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdr_assets.dsp import stft  # noqa: E402
from sdr_assets.dsp.iq import cu8_to_complex64  # noqa: E402
from sdr_assets.dsp.synth import BandScenario  # noqa: E402

IMGSZ = 320  # the detector's input size (DetectorSettings.imgsz)
VISIBLE_LEVELS = 16.0  # contrast (8-bit levels) at which an emission counts as visible
MARGIN_PX = 8  # background ring width at the detector input (one stride-8 cell)
GUARD_PX = 1
SMALL_PX = 2.0
SNR_BINS_DB = (10.0, 20.0, 30.0)  # -> "<10", "10-20", "20-30", ">=30"
WINDOWS = ("hann", "hamming", "blackman", "rect")
CLASS_ORDER = ("cw", "ook", "fsk", "chirp", "wideband")


@dataclass(frozen=True)
class Geometry:
    window: str
    nfft: int
    hop: int
    frame_cols: int = stft.DEFAULT_FRAME_COLS

    @property
    def name(self) -> str:
        return f"{self.window:8s} {self.nfft:4d} ov{round(100 * (1 - self.hop / self.nfft)):2d}"

    @property
    def step(self) -> int:
        """Samples between the starts of successive frames."""
        return self.frame_cols * self.hop

    @property
    def frame_samples(self) -> int:
        return (self.frame_cols - 1) * self.hop + self.nfft

    def window_array(self) -> np.ndarray:
        if self.window == "rect":
            return np.ones(self.nfft, dtype=np.float32)
        return scipy.signal.get_window(self.window, self.nfft, fftbins=True).astype(np.float32)


CURRENT = Geometry("hann", 640, 640)
# 640 x 640 frames for window x overlap; nfft 256 / 1024 keep 640 columns and no overlap, so the
# frame is nfft x 640 and covers 640 * nfft samples (ultralytics then resizes its long side to 320).
GEOMETRIES = tuple(Geometry(w, 640, hop) for w in WINDOWS for hop in (640, 320, 160)) + (
    Geometry("hann", 256, 256),
    Geometry("hann", 1024, 1024),
    Geometry("hamming", 256, 256),
    Geometry("hamming", 1024, 1024),
)

# (name, BandScenario kwargs, seconds of signal)
SCENARIOS = (
    ("ism 250k", dict(sample_rate_hz=250e3, center_freq_hz=433.92e6, profile="ism"), 240.0),
    ("mixed 1.024M", dict(sample_rate_hz=1.024e6, center_freq_hz=100e6, profile="mixed"), 100.0),
    ("mixed 2.4M", dict(sample_rate_hz=2.4e6, center_freq_hz=100e6, profile="mixed"), 80.0),
)


def detector_input(img: np.ndarray, imgsz: int = IMGSZ) -> tuple[np.ndarray, float]:
    """(image, ratio): ultralytics' load_image at ``imgsz`` (long side to imgsz, aspect kept,
    INTER_LINEAR)."""
    h0, w0 = img.shape
    r = imgsz / max(h0, w0)
    if r == 1:
        return img, 1.0
    w, h = min(math.ceil(w0 * r), imgsz), min(math.ceil(h0 * r), imgsz)
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR), r


def _rect(box: tuple[float, float, float, float], shape: tuple[int, int], grow: int = 0) -> tuple[int, int, int, int]:
    """Whole pixels (r0, r1, c0, c1) touched by a continuous box (x0, y0, x1, y1), at least one,
    grown by ``grow`` on every side, clipped to the image."""
    x0, y0, x1, y1 = box
    c0 = int(math.floor(x0))
    r0 = int(math.floor(y0))
    c1 = max(c0 + 1, int(math.ceil(x1)))
    r1 = max(r0 + 1, int(math.ceil(y1)))
    h, w = shape
    return max(0, r0 - grow), min(h, r1 + grow), max(0, c0 - grow), min(w, c1 + grow)


def ring_median(
    img: np.ndarray,
    box: tuple[float, float, float, float],
    others: list[tuple[float, float, float, float]] = (),
    margin_px: int = MARGIN_PX,
    guard_px: int = GUARD_PX,
) -> float:
    """Median level of the background ring around ``box``: the pixels within ``guard_px +
    margin_px`` of it but farther than ``guard_px``, without those of ``others`` (the other
    labelled boxes, grown by ``guard_px``); NaN when nothing is left."""
    g = guard_px + margin_px
    R0, R1, C0, C1 = _rect(box, img.shape, g)
    if R0 >= R1 or C0 >= C1:
        return math.nan
    ring = np.ones((R1 - R0, C1 - C0), dtype=bool)
    for b in (box, *others):
        a0, a1, b0, b1 = _rect(b, img.shape, guard_px)
        ring[max(a0 - R0, 0) : max(a1 - R0, 0), max(b0 - C0, 0) : max(b1 - C0, 0)] = False
    values = img[R0:R1, C0:C1][ring]
    return math.nan if values.size == 0 else float(np.median(values))


def box_contrast(
    img: np.ndarray,
    box: tuple[float, float, float, float],
    others: list[tuple[float, float, float, float]] = (),
    margin_px: int = MARGIN_PX,
    guard_px: int = GUARD_PX,
    inside_percentile: float | None = None,
) -> float:
    """Mean level inside ``box`` minus :func:`ring_median` around it, in image levels (with
    ``inside_percentile``, that percentile of the inside instead of its mean).

    ``box`` is (x0, y0, x1, y1) in continuous pixel coordinates (pixel column i covers [i, i+1));
    every pixel it touches counts as inside. NaN when the box is outside the image or the ring
    is empty.
    """
    img = np.asarray(img, dtype=np.float32)
    r0, r1, c0, c1 = _rect(box, img.shape)
    if r0 >= r1 or c0 >= c1:
        return math.nan
    box_px = img[r0:r1, c0:c1]
    inside = float(box_px.mean() if inside_percentile is None else np.percentile(box_px, inside_percentile))
    return inside - ring_median(img, box, others, margin_px, guard_px)


def emission_box(e, k: int, geom: Geometry, fs: float, fc: float) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of emission ``e`` on frame ``k`` at full frame size (energy-centred time
    mapping, rows of FrameGeometry), clipped to the frame."""
    g = stft.FrameGeometry(0, fs, fc, geom.nfft, geom.hop, geom.frame_cols, geom.nfft)
    base = k * geom.step + geom.nfft / 2 - geom.hop / 2

    def col(s: float) -> float:
        return min(max((s - base) / geom.hop, 0.0), float(geom.frame_cols))

    def row(f: float) -> float:
        return min(max(g.freq_hz_to_y(f), 0.0), float(geom.nfft))

    return col(e.start_sample), row(e.freq_upper_hz), col(e.end_sample), row(e.freq_lower_hz)


def render_frame(cu8: np.ndarray, k: int, geom: Geometry, window: np.ndarray) -> np.ndarray:
    """Frame k as the product renders it (frames.py's _render_one, numpy backend)."""
    a = 2 * k * geom.step
    x = cu8_to_complex64(cu8[a : a + 2 * geom.frame_samples])
    return stft.normalize_frame_u8(stft.stft_db(x, geom.nfft, geom.hop, window))


def snr_bin(snr_db: float) -> str:
    edges = SNR_BINS_DB
    if snr_db < edges[0]:
        return f"<{edges[0]:g}"
    for lo, hi in zip(edges, edges[1:], strict=False):
        if snr_db < hi:
            return f"{lo:g}-{hi:g}"
    return f">={edges[-1]:g}"


def _bin_names() -> list[str]:
    return [snr_bin(v) for v in (-1e9, *SNR_BINS_DB)]


def measure(cu8: np.ndarray, emissions: list, fs: float, fc: float, geom: Geometry, rng: np.random.Generator) -> dict:
    """{emission index: figures at the detector input} on the frame that holds its midpoint:
    contrast (mean and 90th percentile), spill (ring median minus the image median: leakage and
    smear around the box), null contrast, width and height in px."""
    n_frames = (cu8.size // 2 - geom.frame_samples) // geom.step + 1
    by_frame: dict[int, list[int]] = {}
    for i, e in enumerate(emissions):
        k = int((e.start_sample + e.end_sample) / 2 // geom.step)
        if k < n_frames:
            by_frame.setdefault(k, []).append(i)
    window = geom.window_array()
    out = {}
    for k in sorted(by_frame):
        inp, r = detector_input(render_frame(cu8, k, geom, window))
        inp = inp.astype(np.float32)
        image_median = float(np.median(inp))
        ids = by_frame[k]
        boxes = [tuple(v * r for v in emission_box(emissions[i], k, geom, fs, fc)) for i in ids]
        for j, (i, b) in enumerate(zip(ids, boxes, strict=True)):
            others = boxes[:j] + boxes[j + 1 :]
            out[i] = {
                "c": box_contrast(inp, b, others),
                "p90": box_contrast(inp, b, others, inside_percentile=90),
                "spill": ring_median(inp, b, others) - image_median,
                "null": _null_contrast(inp, b, boxes, rng),
                "w": b[2] - b[0],
                "h": b[3] - b[1],
            }
    return out


def _null_contrast(img: np.ndarray, box, boxes: list, rng: np.random.Generator, tries: int = 20) -> float:
    """Contrast of the same-size box moved to a random place that overlaps no labelled box."""
    h, w = img.shape
    bw, bh = max(box[2] - box[0], 1.0), max(box[3] - box[1], 1.0)
    if bw >= w or bh >= h:
        return math.nan
    for _ in range(tries):
        x0, y0 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
        cand = (x0, y0, x0 + bw, y0 + bh)
        if all(cand[2] <= b[0] or cand[0] >= b[2] or cand[3] <= b[1] or cand[1] >= b[3] for b in boxes):
            return box_contrast(img, cand, boxes)
    return math.nan


def time_geometries(cu8: np.ndarray, n_frames: int = 2, repeats: int = 40) -> dict:
    """CPU ms per frame (cu8 -> complex64 -> STFT -> normalise) per geometry: best of ``repeats``
    rounds that interleave the geometries. CPU time (``process_time``), not wall time, so the
    YOLO training sharing the cores does not land on one geometry. Timed once per (nfft, hop):
    the window is one multiply per sample whatever its values, so every window costs the same."""
    shapes = {(g.nfft, g.hop): g for g in GEOMETRIES}
    best = dict.fromkeys(shapes, math.inf)
    for _ in range(repeats):
        for key, g in shapes.items():
            w = g.window_array()
            t = time.process_time()
            for k in range(n_frames):
                render_frame(cu8, k, g, w)
            best[key] = min(best[key], (time.process_time() - t) / n_frames)
    return {g: 1e3 * best[(g.nfft, g.hop)] for g in GEOMETRIES}


def summarise(m: dict, ref: dict, emissions: list, classes: tuple[str, ...]) -> dict:
    """Figures of one geometry's measurements ``m``; ``ref`` is CURRENT's, for the paired count
    of labels that became visible (gained) or invisible (lost) against it."""
    ids = [i for i in m if not math.isnan(m[i]["c"])]

    def arr(key: str) -> np.ndarray:
        return np.array([m[i][key] for i in ids], float)

    c, p90, spill, null, w, h = (arr(k) for k in ("c", "p90", "spill", "null", "w", "h"))
    label = np.array([emissions[i].label for i in ids])
    bins = np.array([snr_bin(emissions[i].snr_db) for i in ids])
    vis = c >= VISIBLE_LEVELS

    def frac(mask: np.ndarray) -> float:
        return float(vis[mask].mean()) if mask.any() else math.nan

    both = [i for i in ids if i in ref and not math.isnan(ref[i]["c"])]
    now = {i: m[i]["c"] >= VISIBLE_LEVELS for i in both}
    before = {i: ref[i]["c"] >= VISIBLE_LEVELS for i in both}
    null = null[~np.isnan(null)]
    return {
        "n": len(ids),
        "vis": frac(np.ones(len(ids), bool)),
        "vis_no_chirp": frac(label != "chirp"),
        "by_class": {k: frac(label == k) for k in classes},
        "by_snr": {b: frac(bins == b) for b in _bin_names()},
        "med_c": float(np.median(c)),
        "med_p90": float(np.median(p90)),
        "spill": float(np.nanmean(spill)),
        "null_vis": float((null >= VISIBLE_LEVELS).mean()) if null.size else math.nan,
        "gained": sum(now[i] and not before[i] for i in both),
        "lost": sum(before[i] and not now[i] for i in both),
        "small_w": int((w < SMALL_PX).sum()),
        "small_h": int((h < SMALL_PX).sum()),
        "small_any": float(((w < SMALL_PX) | (h < SMALL_PX)).mean()),
    }


def _pct(v: float) -> str:
    return "   -" if math.isnan(v) else f"{100 * v:4.0f}"


def cost_x(geom: Geometry, ms: dict) -> float:
    """Render cost per second of signal relative to CURRENT (frames a second x ms a frame)."""
    return (ms[geom] / geom.step) / (ms[CURRENT] / CURRENT.step)


def frames_x(geom: Geometry) -> float:
    """Frames per second of signal relative to CURRENT: PNG encodes and inferences scale with it."""
    return CURRENT.step / geom.step


def print_table(title: str, results: dict, classes: tuple[str, ...], ms: dict) -> None:
    head = (
        f"{'geometry':17s} {'n':>4s} {'vis%':>4s} {'+/-':>7s} | "
        + " ".join(f"{c[:4]:>4s}" for c in classes)
        + " | "
        + " ".join(f"{b:>5s}" for b in _bin_names())
        + f" | {'medC':>5s} {'/255':>5s} {'p90C':>5s} {'spill':>5s} {'null':>4s}"
        + f" | {'w<2':>4s} {'h<2':>4s} {'<2%':>4s} | {'ms/f':>5s} {'cost':>5s} {'frm':>4s}"
    )
    print(f"\n== {title}")
    print(head)
    print("-" * len(head))
    for geom, s in results.items():
        print(
            f"{geom.name:17s} {s['n']:4d} {_pct(s['vis'])} {'+' + str(s['gained']) + '/-' + str(s['lost']):>7s} | "
            + " ".join(_pct(s["by_class"][c]) for c in classes)
            + " | "
            + " ".join(f" {_pct(s['by_snr'][b])}" for b in _bin_names())
            + f" | {s['med_c']:5.1f} {s['med_c'] / 255:5.3f} {s['med_p90']:5.1f} {s['spill']:5.1f}"
            f" {_pct(s['null_vis'])} | {s['small_w']:4d} {s['small_h']:4d} {_pct(s['small_any'])} |"
            f" {ms[geom]:5.1f} {cost_x(geom, ms):5.2f} {frames_x(geom):4.2f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every scenario's seconds of signal")
    ap.add_argument("--seed", type=int, default=40, help="first scenario seed (the next ones add 1)")
    args = ap.parse_args()
    t_all = time.perf_counter()
    print(
        f"[frame_geometry] detector input {IMGSZ} px (ultralytics resize). vis = mean contrast >= "
        f"{VISIBLE_LEVELS:g} levels ({VISIBLE_LEVELS / 255:.3f} of 255), % of labels; +/- = labels visible"
        " here and not at hann 640 ov0 / the reverse (paired); class and SNR (dB) columns = vis %;"
        " medC = median mean-contrast (levels, /255); p90C = median contrast of the box's 90th percentile;"
        " spill = mean ring median above the image median (leakage, smear, levels); null = vis % of the"
        f" same boxes moved onto empty background; w<2/h<2 = labels under {SMALL_PX:g} px wide/tall at"
        f" {IMGSZ} px; ms/f = CPU ms to render a frame (STFT + normalise, best of 40); cost = that per"
        " second of signal vs hann 640 ov0; frm = frames per second of signal vs hann 640 ov0 (PNG"
        " encodes and inferences scale with it)",
        flush=True,
    )
    ms = None
    summary = {}
    for i, (name, kw, seconds) in enumerate(SCENARIOS):
        fs = kw["sample_rate_hz"]
        scen = BandScenario(args.seed + i, **kw)
        n = int(seconds * args.scale * fs)
        parts, emissions = [], []
        for a in range(0, n, 1 << 22):
            cu8, em = scen.render(min(1 << 22, n - a))
            parts.append(cu8)
            emissions += [e for e in em if e.end_sample <= n]
        cu8 = np.concatenate(parts)
        if ms is None:
            ms = time_geometries(cu8)
        classes = tuple(c for c in CLASS_ORDER if any(e.label == c for e in emissions))
        rng = np.random.default_rng([args.seed, i])
        measured = {g: measure(cu8, emissions, fs, kw["center_freq_hz"], g, rng) for g in GEOMETRIES}
        results = {g: summarise(measured[g], measured[CURRENT], emissions, classes) for g in GEOMETRIES}
        print_table(f"{name} (seed {args.seed + i}, {seconds * args.scale:g} s of signal)", results, classes, ms)
        summary[name] = results
    names = list(summary)
    print("\n== summary: per scenario vis % / median contrast (levels) / labels under 2 px %; mean over scenarios")
    print(
        f"{'geometry':17s} "
        + " ".join(f"{n:>14s}" for n in names)
        + f" {'vis':>4s} {'no-chirp':>8s} {'ms/f':>5s} {'cost':>5s} {'frm':>4s}"
    )
    for geom in GEOMETRIES:
        s = [summary[n][geom] for n in names]
        cells = [f"{_pct(x['vis'])} {x['med_c']:4.0f} {_pct(x['small_any'])}" for x in s]
        mean_vis = float(np.mean([x["vis"] for x in s]))
        mean_nc = float(np.mean([x["vis_no_chirp"] for x in s]))
        print(
            f"{geom.name:17s} "
            + " ".join(f"{c:>14s}" for c in cells)
            + f" {_pct(mean_vis)} {_pct(mean_nc):>8s} {ms[geom]:5.1f} {cost_x(geom, ms):5.2f} {frames_x(geom):4.2f}"
        )
    print(f"\n[frame_geometry] {time.perf_counter() - t_all:.0f} s")


if __name__ == "__main__":
    main()
