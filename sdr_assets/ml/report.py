"""The report picture of a window: its waterfall with axes, its detections and its decodes.

What a person reads (matplotlib, object API on an Agg canvas, as ``store.plots``):

- the WHOLE window (the partition's bounds; gaps left grey and named in the legend),
  x = UTC time (HH:MM:SS), y = MHz, computed from the window's IQ (``ml.waterfall``) on ONE
  brightness scale for the whole window (dBFS per bin, a colorbar), not from the frame PNGs
  (each of those is normalised on its own);
- every detection as a box coloured by its class (:data:`CLASS_COLOURS`, fixed), a legend with
  each class present and its count;
- every package rtl_433 decoded (``decoded_messages``) as a dashed white box named with its
  device (``Acurite-Tower id 41 ch A``); a device's name is written once per
  :data:`NAME_EVERY` of the window, so a chatty device does not cover the picture;
- a title with the partition key, the sensor, the detector's model version(s) and the
  decoder's version.

The PNG is mapped onto a fixed 256-colour palette (~100-150 kB; the UI shows it inline as a
data URI). :class:`Drawn` records what was actually drawn, read back from the artists.
"""

import base64
import io
import math
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sdr_assets.ml import waterfall as wfall
from sdr_assets.records import NS_PER_S, utc_datetime, utc_iso
from sdr_assets.store import messages as decodes
from sdr_assets.store.files import write_output
from sdr_assets.store.sensors import split_key
from sdr_assets.store.window import AnalysisDB

CLASS_COLOURS = {  # the classes of ml.labels.CLASSES, one fixed colour each (the waterfall is grey)
    "cw": "#1fb4ff",
    "ook": "#ff3030",
    "fsk": "#2ee82e",
    "chirp": "#ff40ff",
    "wideband": "#ff9a00",
    "burst": "#ffe000",
}
OTHER_COLOUR = "#ff9ec8"  # a label outside the classes
DECODE_COLOUR = "#ffffff"  # rtl_433 packages: dashed
GAP_COLOUR = "#c8c8c8"  # no samples
CMAP = "gray"
NAME_EVERY = 0.05  # a device's name at most once per 5% of the window's width
NAME_LANES = 3  # rows of device names above the boxes
NAME_PX_PER_CHAR = 4.6  # DejaVu Sans at 7 pt, 100 dpi
MAX_PANELS = 4  # bands (tunings far apart) drawn, the most covered ones
XLABEL = "time (UTC, HH:MM:SS)"
YLABEL = "frequency (MHz)"
CBAR_LABEL = "power (dBFS per bin, one scale for the window)"


@dataclass
class Drawn:
    """What the figure shows, read back from its artists (tests check these)."""

    title: str = ""
    xlabel: str = ""
    ylabel: str = ""
    colorbar_label: str = ""
    legend: list[str] = field(default_factory=list)
    device_names: list[str] = field(default_factory=list)  # texts written next to decoded packages
    x_ticks: list[str] = field(default_factory=list)
    x_range_ns: tuple[int, int] = (0, 0)
    y_ranges_hz: list[tuple[float, float]] = field(default_factory=list)  # per panel, top first
    db_range: tuple[float, float] = (0.0, 0.0)


@dataclass
class Report:
    path: Path
    png: bytes
    width_px: int
    height_px: int
    n_frames: int  # spectrogram frames of the partition (the picture does not use them)
    n_boxes_drawn: int
    counts: dict[str, int] = field(default_factory=dict)  # detections per label in the whole partition
    devices: dict[str, int] = field(default_factory=dict)  # decoded messages per device, whole partition
    n_decodes_drawn: int = 0
    window_s: float = 0.0
    covered_s: float = 0.0  # seconds of the window holding samples
    render_s: float = 0.0
    drawn: Drawn = field(default_factory=Drawn)

    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")

    def markdown(self, title: str) -> str:
        rows = "".join(f"| {k} | {v} |\n" for k, v in self.counts.items()) or "| (none) | 0 |\n"
        text = (
            f"**{title}**: the whole window ({self.window_s:.1f} s, {self.covered_s:.1f} s of samples), "
            f"{self.n_boxes_drawn} boxes drawn, {self.n_decodes_drawn} decoded packages (dashed, named)"
            f"\n\n![waterfall]({self.data_uri()})\n\n"
            f"| label | detections |\n| --- | --- |\n{rows}"
        )
        if self.devices:
            text += "\n| device (rtl_433) | messages |\n| --- | --- |\n" + "".join(
                f"| {k} | {v} |\n" for k, v in self.devices.items()
            )
        return text


def class_colour(label: str | None) -> str:
    return CLASS_COLOURS.get(label or "", OTHER_COLOUR)


def _window(db: AnalysisDB, partition_key: str) -> tuple[int, int] | None:
    """The partition's bounds as loaded, else its chunks' span, else None (nothing held)."""
    for p in db.partitions():
        if p.partition_key == partition_key:
            return int(p.t_start_ns), int(p.t_end_ns)
    spans = db.chunk_spans(partition_key)
    return (spans[0].t_start_ns, max(s.t_end_ns for s in spans)) if spans else None


@dataclass
class Band:
    """One panel of the picture: a frequency range and the tiles (segments) inside it."""

    freq_lower_hz: float
    freq_upper_hz: float
    tiles: list = field(default_factory=list)
    covered_cols: int = 0

    def holds(self, lo_hz: float, hi_hz: float) -> bool:
        return lo_hz < self.freq_upper_hz and hi_hz > self.freq_lower_hz


def bands_of(tiles) -> list[Band]:
    """Tiles grouped into bands: tiles whose bands overlap or lie closer than the wider one's
    width share a panel (a small retune); far apart tunings (433 MHz, 868 MHz) get a panel each,
    so each keeps its own MHz scale. In frequency order, lowest first."""
    out: list[Band] = []
    for t in sorted(tiles, key=lambda t: t.freq_lower_hz):
        width = t.freq_upper_hz - t.freq_lower_hz
        if out and t.freq_lower_hz <= out[-1].freq_upper_hz + max(width, out[-1].freq_upper_hz - out[-1].freq_lower_hz):
            b = out[-1]
            b.freq_upper_hz = max(b.freq_upper_hz, t.freq_upper_hz)
        else:
            b = Band(t.freq_lower_hz, t.freq_upper_hz)
            out.append(b)
        b.tiles.append(t)
        b.covered_cols += t.col1 - t.col0
    return out


def render_report(
    db: AnalysisDB,
    partition_key: str,
    root: Path | str,
    out_path: Path | str,
    *,
    width_in: float = 12.0,
    panel_height_in: float = 4.4,
    dpi: int = 100,
    n_cols: int = 1000,
    n_rows: int = wfall.DEFAULT_ROWS,
) -> Report:
    """Draw and save the partition's report picture (see the module doc); ``root`` is the data
    root (matplotlib's config goes under it). One panel per band (:func:`bands_of`, at most
    :data:`MAX_PANELS`, the most covered ones), sharing the time axis and the dB scale."""
    t_begin = time.perf_counter()
    root, out_path = Path(root), Path(out_path)
    dets = db.detections(partition_key)
    counts = dict(sorted(Counter(d.label for d in dets).items()))
    msgs = decodes.messages(db.conn, partition_key)
    devices = dict(sorted(Counter(m.name() for m in msgs).items()))
    run = decodes.decode_run(db.conn, partition_key)
    rep = Report(out_path, b"", 0, 0, len(db.frames(partition_key)), 0, counts, devices)
    window = _window(db, partition_key)
    wf = None
    if window is not None:
        wf = wfall.window_waterfall(
            db.conn, partition_key, window[0], window[1], n_cols=n_cols, n_rows=n_rows, ffts_per_col=32
        )
    bands = bands_of(wf.tiles) if wf is not None else []
    if not bands:  # no samples: the band of the detections and decodes, if any
        boxes = [(b.freq_lower_hz, b.freq_upper_hz) for b in [*dets, *msgs]] or [(0.0, 1e6)]
        bands = [Band(min(b[0] for b in boxes), max(b[1] for b in boxes))]
    n_hidden = max(0, len(bands) - MAX_PANELS)
    if n_hidden:
        keep = sorted(bands, key=lambda b: -b.covered_cols)[:MAX_PANELS]
        bands = [b for b in bands if b in keep]

    mpl = _matplotlib(root)
    n = len(bands)
    top_in, bottom_in, gap_in = 0.95, 0.6, 0.25  # the title and the legend's row above
    height_in = top_in + bottom_in + n * panel_height_in / min(n, 2) + (n - 1) * gap_in
    panel_in = panel_height_in / min(n, 2)
    fig = mpl.Figure(figsize=(width_in, height_in), dpi=dpi)
    mpl.FigureCanvasAgg(fig)
    # fixed margins in inches (no constrained layout: it would draw the figure twice); the
    # highest band on top, every panel on the same time axis
    left_in, right_in, bar_in = 0.8, 1.05, 0.18
    axes = []
    for i in range(n):
        y0_in = bottom_in + (n - 1 - i) * (panel_in + gap_in)
        rect = (left_in / width_in, y0_in / height_in, 1 - (left_in + right_in) / width_in, panel_in / height_in)
        axes.append(fig.add_axes(rect, sharex=axes[0] if axes else None))
    bands = bands[::-1]

    sensor, _ = split_key(partition_key)
    versions = sorted({d.model_version for d in dets if d.model_version}) or ["no detections"]
    title = f"{partition_key}  |  sensor {sensor}  |  detector {', '.join(versions)}"
    if run is not None:
        title += f"  |  {run.decoder} {run.decoder_version}"
    if wf is None:
        axes[0].set_title(f"{title}\nno samples held for this partition", fontsize="medium")
        return _save(fig, rep, axes, None, t_begin)

    x = _x_of(mpl)
    vmin, vmax = wfall.db_scale(wf.values())
    cmap = mpl.colormaps[CMAP].with_extremes(bad=(0, 0, 0, 0))
    norm = mpl.Normalize(vmin=vmin, vmax=vmax)
    im = None
    for ax, band in zip(axes, bands):
        ax.set_facecolor(GAP_COLOUR)
        for tile in band.tiles:
            extent = (
                x(wf.t_start_ns + tile.col0 * wf.col_ns),
                x(wf.t_start_ns + tile.col1 * wf.col_ns),
                tile.freq_lower_hz / 1e6,
                tile.freq_upper_hz / 1e6,
            )
            im = ax.imshow(
                np.ma.masked_invalid(tile.db),
                origin="lower",
                aspect="auto",
                extent=extent,
                cmap=cmap,
                norm=norm,
                interpolation="nearest",
            )

    for ax, band in zip(axes, bands):
        ax.set_ylim(band.freq_lower_hz / 1e6, band.freq_upper_hz / 1e6)
        ax.ticklabel_format(axis="y", useOffset=False, style="plain")
        ax.set_ylabel(YLABEL, fontsize="medium" if n == 1 else "small")
        if ax is not axes[-1]:
            ax.tick_params(labelbottom=False)
    axes[0].set_xlim(x(wf.t_start_ns), x(wf.t_end_ns))

    handles = []
    by_label: dict[str, list] = {}
    for d in dets:
        if d.t_end_ns > wf.t_start_ns and d.t_start_ns < wf.t_end_ns:
            by_label.setdefault(d.label, []).append(d)
    order = {k: i for i, k in enumerate(CLASS_COLOURS)}  # the legend in class order, other labels after
    for label in sorted(by_label, key=lambda k: (order.get(k, len(order)), k)):
        colour = class_colour(label)
        for ax, band in zip(axes, bands):
            rects = [_rect(mpl, x, d) for d in by_label[label] if band.holds(d.freq_lower_hz, d.freq_upper_hz)]
            if rects:
                ax.add_collection(mpl.PatchCollection(rects, facecolor="none", edgecolor=colour, linewidth=1.3))
                rep.n_boxes_drawn += len(rects)
        handles.append(mpl.Patch(facecolor="none", edgecolor=colour, linewidth=1.5, label=f"{label} ({counts[label]})"))

    packages: dict = {}  # one box per decoded package (a package may carry several identical messages)
    for m in msgs:
        if wf.t_start_ns <= m.t_start_ns < wf.t_end_ns:
            packages.setdefault((m.t_start_ns, m.t_end_ns), m)
    if packages:
        ns_per_px = (wf.t_end_ns - wf.t_start_ns) / (axes[0].get_position().width * width_in * dpi)
        for ax, band in zip(axes, bands):
            mine = [m for m in packages.values() if band.holds(m.freq_lower_hz, m.freq_upper_hz)]
            if mine:
                ax.add_collection(
                    mpl.PatchCollection(
                        [_rect(mpl, x, m) for m in mine],
                        facecolor="none",
                        edgecolor=DECODE_COLOUR,
                        linewidth=1.0,
                        linestyle="--",
                    )
                )
                rep.n_decodes_drawn += len(mine)
                _name_devices(ax, x, mine, ns_per_px, NAME_EVERY * (wf.t_end_ns - wf.t_start_ns), panel_in)
        handles.append(
            mpl.Patch(
                facecolor="none",
                edgecolor="black",
                linestyle="--",
                label=f"rtl_433 decoded ({len(packages)} packages, {len(devices)} devices)",
            )
        )
    rep.window_s = (wf.t_end_ns - wf.t_start_ns) / NS_PER_S
    rep.covered_s = wf.covered_ns / NS_PER_S
    if wf.covered_ns < (wf.t_end_ns - wf.t_start_ns) - wf.col_ns:
        handles.append(mpl.Patch(facecolor=GAP_COLOUR, edgecolor="grey", label="no samples"))

    axes[-1].xaxis_date(tz=mpl.UTC)
    axes[-1].xaxis.set_major_formatter(mpl.DateFormatter("%H:%M:%S", tz=mpl.UTC))
    axes[-1].set_xlabel(XLABEL)
    span = f"{utc_iso(wf.t_start_ns, sep=' ', suffix='')} .. {utc_iso(wf.t_end_ns, sep=' ', suffix=' UTC')}"
    hidden = f"; {n_hidden} more bands not shown" if n_hidden else ""
    axes[0].set_title(
        f"{title}\n{span} ({rep.window_s:.1f} s, {rep.covered_s:.1f} s of samples{hidden})",
        fontsize="medium",
        pad=26 if handles else 6,
    )
    if im is not None:
        lo, hi = axes[-1].get_position(), axes[0].get_position()
        cax = fig.add_axes((hi.x1 + 0.1 / width_in, lo.y0, bar_in / width_in, hi.y1 - lo.y0))
        fig.colorbar(im, cax=cax, label=CBAR_LABEL)
    if handles:
        axes[0].legend(  # one row between the title and the top panel: it covers no signal
            handles=handles,
            loc="lower center",
            bbox_to_anchor=(0.5, 1.0),
            ncols=len(handles),
            fontsize="small",
            framealpha=1.0,
            facecolor="#404040",
            labelcolor="white",
            borderaxespad=0.3,
            columnspacing=1.2,
        )
    return _save(fig, rep, axes, (vmin, vmax), t_begin)


def _rect(mpl, x, box):
    """A matplotlib rectangle of a box with times (ns) and band edges (Hz), in (date, MHz)."""
    return mpl.Rectangle(
        (x(box.t_start_ns), box.freq_lower_hz / 1e6),
        x(box.t_end_ns) - x(box.t_start_ns),
        (box.freq_upper_hz - box.freq_lower_hz) / 1e6,
    )


def _name_devices(ax, x, msgs, ns_per_px: float, min_gap_ns: float, panel_in: float) -> None:
    """Write each package's device name above its box (below it where the panel's top is too
    near), in one of :data:`NAME_LANES` rows of text so names do not overlap; a name is skipped
    when its device was named less than ``min_gap_ns`` before, or when no lane is free (the
    devices table lists them all)."""
    lanes = [-math.inf] * NAME_LANES  # where each lane's last name ends (ns)
    last_named: dict[str, int] = {}
    lo_mhz, hi_mhz = ax.get_ylim()
    for m in sorted(msgs, key=lambda m: m.t_start_ns):
        name = m.name()
        if name in last_named and m.t_start_ns - last_named[name] < min_gap_ns:
            continue
        lane = next((i for i, end in enumerate(lanes) if end < m.t_start_ns), None)
        if lane is None:
            continue
        lanes[lane] = m.t_start_ns + (len(name) * NAME_PX_PER_CHAR + 8) * ns_per_px
        last_named[name] = m.t_start_ns
        rise_pt = 3 + 11 * lane
        above_pt = (hi_mhz - m.freq_upper_hz / 1e6) / (hi_mhz - lo_mhz) * panel_in * 72  # room above the box
        up = above_pt >= rise_pt + 11
        ax.annotate(
            name,
            (x(m.t_start_ns), (m.freq_upper_hz if up else m.freq_lower_hz) / 1e6),
            xytext=(0, rise_pt if up else -rise_pt),
            va="bottom" if up else "top",
            textcoords="offset points",
            fontsize=7,
            color="black",
            bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "alpha": 0.8, "linewidth": 0},
            annotation_clip=True,
            clip_on=True,
        )


def _save(fig, rep: Report, axes, db_range, t_begin: float) -> Report:
    from PIL import Image

    fig.canvas.draw()  # rendered once, into memory: no PNG encode of the RGB picture
    img = Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[:, :, :3])
    # onto a fixed palette (a grey ramp and the colours drawn, each pixel to the nearest): the
    # class colours stay exact and the PNG is a few times smaller than RGB
    img = img.quantize(palette=_palette_image(), dither=Image.Dither.NONE)
    out = io.BytesIO()
    img.save(out, format="PNG", compress_level=6)
    rep.png = out.getvalue()
    rep.width_px, rep.height_px = img.size
    rep.drawn = _drawn(fig, axes, db_range)
    write_output(rep.path, rep.png, "report path")
    rep.render_s = time.perf_counter() - t_begin
    return rep


def _palette_image():
    from matplotlib.colors import to_rgb
    from PIL import Image

    extra = [*CLASS_COLOURS.values(), OTHER_COLOUR, DECODE_COLOUR, GAP_COLOUR]
    rgb = [tuple(round(255 * c) for c in to_rgb(h)) for h in extra]
    greys = [(v, v, v) for v in np.linspace(0, 255, 256 - len(rgb)).round().astype(int)]
    pal = Image.new("P", (1, 1))
    pal.putpalette([int(v) for c in greys + rgb for v in c])
    return pal


def _drawn(fig, axes, db_range) -> Drawn:
    import matplotlib.dates as mdates

    top, bottom = axes[0], axes[-1]
    legend = top.get_legend()
    cbars = [a for a in fig.axes if a not in axes]
    lo, hi = bottom.get_xlim()
    d = Drawn(
        title=top.get_title(),
        xlabel=bottom.get_xlabel(),
        ylabel=top.get_ylabel(),
        colorbar_label=cbars[0].get_ylabel() if cbars else "",
        legend=[t.get_text() for t in legend.get_texts()] if legend else [],
        device_names=[t.get_text() for ax in axes for t in ax.texts],
        x_ticks=[t.get_text() for t in bottom.get_xticklabels()],
        y_ranges_hz=[tuple(v * 1e6 for v in ax.get_ylim()) for ax in axes],
        db_range=db_range or (0.0, 0.0),
    )
    if isinstance(bottom.xaxis.get_major_formatter(), mdates.DateFormatter):
        d.x_range_ns = tuple(_ns_of(mdates.num2date(v)) for v in (lo, hi))
    return d


def _ns_of(dt) -> int:
    return round(dt.timestamp() * 1e6) * 1000


def _x_of(mpl):
    """t_ns -> matplotlib's date number (days since its epoch, 1970-01-01), to the microsecond."""
    epoch_ns = round(mpl.date2num(utc_datetime(0)) * 86400 * NS_PER_S)

    def x(t_ns: float) -> float:
        return (float(t_ns) + epoch_ns) / (86400 * NS_PER_S)

    return x


class _Mpl:
    """The matplotlib names the report uses, imported once, lazily."""

    def __init__(self) -> None:
        from datetime import UTC

        from matplotlib import colormaps
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.collections import PatchCollection
        from matplotlib.colors import Normalize
        from matplotlib.dates import DateFormatter, date2num
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch, Rectangle

        self.UTC, self.colormaps, self.FigureCanvasAgg, self.PatchCollection = (
            UTC,
            colormaps,
            FigureCanvasAgg,
            PatchCollection,
        )
        self.Normalize, self.DateFormatter, self.date2num, self.Figure = Normalize, DateFormatter, date2num, Figure
        self.Patch, self.Rectangle = Patch, Rectangle


def _matplotlib(root: Path) -> _Mpl:
    os.environ.setdefault("MPLCONFIGDIR", str(Path(root) / "config" / "matplotlib"))
    Path(os.environ["MPLCONFIGDIR"]).mkdir(parents=True, exist_ok=True)
    return _Mpl()
