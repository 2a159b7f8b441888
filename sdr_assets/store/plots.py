"""The capture service's telemetry as a text summary and an 8-panel chart (no dagster).

Reads the ``telemetry`` rows of process ``capture`` from the hot DB (read-only, one short
transaction, so the writer's checkpoints are never starved) or from a partition's snapshot,
and plots over time: ingest MB/s, samples lost per second, commit latency p50/p99 (ms), the
DB size (MB), CPU % and memory (system and capture process) and, where recorded, each GPU's
utilisation, memory, temperature and power, one line per capture (a restart does not draw a line across the dead time).
matplotlib is imported lazily, through its object API (Agg canvas, no pyplot state), with
``MPLCONFIGDIR`` under the data root.
"""

import base64
import io
import os
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from sdr_assets.errors import StoreError
from sdr_assets.records import NS_PER_S, utc_datetime, utc_iso
from sdr_assets.store.db import connect_ro
from sdr_assets.store.files import write_output

PROCESS = "capture"
METRICS = (
    "ingest_mb_s",
    "samples_lost_per_s",
    "samples_lost",
    "commit_ms_p50",
    "commit_ms_p99",
    "db_size_bytes",
    "sys_cpu_percent",
    "cpu_percent",
    "sys_mem_used_mb",
    "rss_mb",
)
GPU_GLOB = "gpu[0-9]*_*"  # per-GPU metrics (sdr_assets.capture.sysmetrics): gpu0_util_percent, ...
GPU_RE = re.compile(r"gpu([0-9]+)_(util_percent|mem_percent|temp_c|power_w|mem_used_mb)")
# (label, metrics, legend names); "gpu:<kinds>" stands for those figures of every GPU recorded
PANELS = (
    ("ingest (MB/s)", ("ingest_mb_s",), None),
    ("samples lost (/s)", ("samples_lost_per_s",), None),
    ("commit (ms)", ("commit_ms_p50", "commit_ms_p99"), ("p50", "p99")),
    ("DB size (MB)", ("db_size_bytes",), None),
    ("CPU (%)", ("sys_cpu_percent", "cpu_percent"), ("system", "capture")),
    ("memory (MB)", ("sys_mem_used_mb", "rss_mb"), ("system used", "capture RSS")),
    ("GPU util, mem (%)", ("gpu:util_percent", "gpu:mem_percent"), None),
    ("GPU temp (C), power (W)", ("gpu:temp_c", "gpu:power_w"), None),
)


@dataclass
class TelemetrySeries:
    """Rows per metric: [(t_ns, capture_id, value)] in time order."""

    source: str
    t_start_ns: int | None
    t_end_ns: int | None
    by_metric: dict[str, list[tuple[int, int | None, float]]] = field(default_factory=dict)
    selection: str = "time range"

    @property
    def n_rows(self) -> int:
        return sum(len(v) for v in self.by_metric.values())

    def values(self, metric: str) -> list[float]:
        return [v for _, _, v in self.by_metric.get(metric, [])]


@dataclass
class TelemetrySummary:
    n_rows: int
    n_captures: int
    first_t_ns: int | None
    last_t_ns: int | None
    ingest_mb_s_mean: float | None
    ingest_mb_s_max: float | None
    samples_lost: int  # sum over captures of their cumulative count (newest row in range)
    samples_lost_per_s_max: float | None
    commit_ms_p50_median: float | None
    commit_ms_p99_max: float | None
    db_size_mb_last: float | None
    selection: str = "time range"
    sys_cpu_percent_mean: float | None = None
    capture_cpu_percent_mean: float | None = None
    sys_mem_used_mb_max: float | None = None
    capture_rss_mb_max: float | None = None
    gpus: int = 0  # GPUs with rows in the range
    gpu_util_percent_max: float | None = None
    gpu_temp_c_max: float | None = None

    def lines(self) -> list[str]:
        def f(v, spec=".2f"):
            return "-" if v is None else format(v, spec)

        span = (
            "-"
            if self.first_t_ns is None
            else (
                f"{utc_iso(self.first_t_ns, sep=' ', suffix='')} .. {utc_iso(self.last_t_ns, sep=' ', suffix='')} "
                f"({(self.last_t_ns - self.first_t_ns) / NS_PER_S:.0f} s)"
            )
        )
        return [
            f"telemetry rows: {self.n_rows} from {self.n_captures} capture(s), {self.selection}",
            f"time: {span}",
            f"ingest: mean {f(self.ingest_mb_s_mean)} MB/s, max {f(self.ingest_mb_s_max)} MB/s",
            f"samples lost: {self.samples_lost} since each capture started (max {f(self.samples_lost_per_s_max, '.0f')} /s)",
            f"commit: p50 median {f(self.commit_ms_p50_median)} ms, p99 max {f(self.commit_ms_p99_max)} ms",
            f"DB size: {f(self.db_size_mb_last, '.1f')} MB (newest)",
            f"CPU: system mean {f(self.sys_cpu_percent_mean, '.1f')} %, capture mean "
            f"{f(self.capture_cpu_percent_mean, '.1f')} %",
            f"memory: system used max {f(self.sys_mem_used_mb_max, '.0f')} MB, capture RSS max "
            f"{f(self.capture_rss_mb_max, '.0f')} MB",
            (
                f"GPU: {self.gpus} device(s), util max {f(self.gpu_util_percent_max, '.0f')} %, temp max "
                f"{f(self.gpu_temp_c_max, '.0f')} C"
                if self.gpus
                else "GPU: none recorded"
            ),
        ]

    def markdown(self) -> str:
        rows = [line.split(": ", 1) for line in self.lines()]
        return "| figure | value |\n| --- | --- |\n" + "".join(f"| {a} | {b} |\n" for a, b in rows)


@dataclass
class Chart:
    path: Path
    png: bytes
    n_axes: int
    width_px: int
    height_px: int

    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


def read_telemetry(
    db_path: Path | str,
    t_start_ns: int | None = None,
    t_end_ns: int | None = None,
    *,
    capture_ids: list[int] | None = None,
) -> TelemetrySeries:
    """The capture's rows of :data:`METRICS` in ``[t_start_ns, t_end_ns)`` (or of ``capture_ids``,
    any time), read in one short read-only transaction."""
    sql = (
        f"SELECT t_ns, capture_id, metric, value FROM telemetry WHERE process = ? AND (metric IN "
        f"({', '.join('?' * len(METRICS))}) OR metric GLOB ?)"
    )
    args: list = [PROCESS, *METRICS, GPU_GLOB]
    if t_start_ns is not None:
        sql, args = sql + " AND t_ns >= ?", args + [int(t_start_ns)]
    if t_end_ns is not None:
        sql, args = sql + " AND t_ns < ?", args + [int(t_end_ns)]
    if capture_ids is not None:
        sql += f" AND capture_id IN ({', '.join('?' * len(capture_ids))})"
        args += [int(c) for c in capture_ids]
    conn = connect_ro(db_path)
    try:
        has = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='telemetry'").fetchone()
        if not has:
            raise StoreError(f"{db_path} has no telemetry table; point at the hot DB (or a snapshot of it).")
        conn.execute("BEGIN")
        rows = conn.execute(sql + " ORDER BY t_ns", args).fetchall()
        conn.execute("COMMIT")
    finally:
        conn.close()
    series = TelemetrySeries(str(db_path), t_start_ns, t_end_ns)
    for t_ns, cid, metric, value in rows:
        series.by_metric.setdefault(metric, []).append((t_ns, cid, value))
    return series


def partition_telemetry(snapshot: Path | str, t_start_ns: int, t_end_ns: int) -> TelemetrySeries:
    """The window's capture telemetry from a partition's snapshot of the hot DB.

    Rows are stamped with the wall clock at ingest. A real-time capture's rows fall in the
    window itself; a replay into a past window (``--no-realtime``) was ingested at another
    time, so when the window holds none, the rows of the captures that wrote its chunks are
    taken instead (``selection`` says which)."""
    series = read_telemetry(snapshot, t_start_ns, t_end_ns)
    if series.n_rows:
        return series
    conn = connect_ro(snapshot)
    try:
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT capture_id FROM chunks WHERE t_start_ns >= ? AND t_start_ns < ?",
                (int(t_start_ns), int(t_end_ns)),
            )
        ]
    finally:
        conn.close()
    if not ids:
        series.selection = "time range (no capture wrote this window)"
        return series
    series = read_telemetry(snapshot, capture_ids=ids)
    series.t_start_ns, series.t_end_ns = t_start_ns, t_end_ns
    series.selection = f"capture(s) {', '.join(map(str, ids))}: replayed, telemetry at ingest time (outside the window)"
    return series


def _panel_lines(series: TelemetrySeries, metrics, names) -> list[tuple[str, str | None]]:
    """(metric, legend name) of the lines a panel draws: its metrics that have rows, and for
    ``gpu:<kind>`` every recorded GPU's metric of that kind."""
    out = []
    for k, metric in enumerate(metrics):
        if metric.startswith("gpu:"):
            kind = metric[4:]
            for m in sorted(series.by_metric, key=lambda m: (len(m), m)):
                hit = GPU_RE.fullmatch(m)
                if hit and hit.group(2) == kind:
                    out.append((m, f"gpu{hit.group(1)} {kind.split('_')[0]}"))
        elif series.by_metric.get(metric):
            out.append((metric, names[k] if names else None))
    return out


def summarize(series: TelemetrySeries) -> TelemetrySummary:
    ts = [t for rows in series.by_metric.values() for t, _, _ in rows]
    captures = {c for rows in series.by_metric.values() for _, c, _ in rows}
    lost: dict = {}
    for _, cid, v in series.by_metric.get("samples_lost", []):
        lost[cid] = max(lost.get(cid, 0), int(v))  # cumulative per capture
    ingest, per_s = series.values("ingest_mb_s"), series.values("samples_lost_per_s")
    p50, p99 = series.values("commit_ms_p50"), series.values("commit_ms_p99")
    size = series.by_metric.get("db_size_bytes", [])
    return TelemetrySummary(
        n_rows=series.n_rows,
        n_captures=len(captures),
        first_t_ns=min(ts) if ts else None,
        last_t_ns=max(ts) if ts else None,
        ingest_mb_s_mean=statistics.fmean(ingest) if ingest else None,
        ingest_mb_s_max=max(ingest) if ingest else None,
        samples_lost=sum(lost.values()),
        samples_lost_per_s_max=max(per_s) if per_s else None,
        commit_ms_p50_median=statistics.median(p50) if p50 else None,
        commit_ms_p99_max=max(p99) if p99 else None,
        db_size_mb_last=size[-1][2] / 1e6 if size else None,
        selection=series.selection,
        sys_cpu_percent_mean=_mean(series.values("sys_cpu_percent")),
        capture_cpu_percent_mean=_mean(series.values("cpu_percent")),
        sys_mem_used_mb_max=_max(series.values("sys_mem_used_mb")),
        capture_rss_mb_max=_max(series.values("rss_mb")),
        gpus=len({GPU_RE.fullmatch(m).group(1) for m in series.by_metric if GPU_RE.fullmatch(m)}),
        gpu_util_percent_max=_max(
            [
                v
                for m in series.by_metric
                if m.endswith("_util_percent") and m.startswith("gpu")
                for v in series.values(m)
            ]
        ),
        gpu_temp_c_max=_max(
            [v for m in series.by_metric if m.endswith("_temp_c") and m.startswith("gpu") for v in series.values(m)]
        ),
    )


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _max(values: list[float]) -> float | None:
    return max(values) if values else None


def plot_telemetry(
    series: TelemetrySeries,
    out_path: Path | str,
    *,
    title: str = "capture telemetry",
    config_root: Path | None = None,
    width_in: float = 9.0,
    height_in: float = 12.0,
    dpi: int = 80,
) -> Chart:
    """The :data:`PANELS` over time (UTC), saved as PNG at ``out_path``; empty panels say so."""
    if config_root is not None:
        os.environ.setdefault("MPLCONFIGDIR", str(Path(config_root) / "config" / "matplotlib"))
    if "MPLCONFIGDIR" in os.environ:
        Path(os.environ["MPLCONFIGDIR"]).mkdir(parents=True, exist_ok=True)

    from datetime import UTC

    import matplotlib.dates as mdates
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(PANELS), 1, sharex=True)
    for ax, (label, metrics, names) in zip(axes, PANELS):
        lines = _panel_lines(series, metrics, names)
        for colour, (metric, name) in enumerate(lines):
            rows = series.by_metric[metric]
            scale = 1e-6 if metric == "db_size_bytes" else 1.0
            for i, cid in enumerate(sorted({c for _, c, _ in rows}, key=lambda c: (c is None, c))):
                pts = [(t, v) for t, c, v in rows if c == cid]
                x = [utc_datetime(t) for t, _ in pts]
                y = [v * scale for _, v in pts]
                ax.plot(
                    x,
                    y,
                    marker="." if len(pts) < 30 else None,
                    linewidth=1.2,
                    color=f"C{colour}",
                    label=name if i == 0 else None,
                )
        ax.set_ylabel(label, fontsize="small")
        ax.grid(True, alpha=0.3)
        if not lines:
            empty = (
                "no GPU recorded (no NVIDIA GPU, or NVML did not load)" if metrics[0].startswith("gpu:") else "no rows"
            )
            ax.text(0.5, 0.5, empty, transform=ax.transAxes, ha="center", va="center", color="grey")
        elif any(name for _, name in lines):
            ax.legend(loc="best", fontsize="x-small")
    ts = [t for rows in series.by_metric.values() for t, _, _ in rows]
    if ts and max(ts) - min(ts) < 10 * NS_PER_S:  # a few rows: +-5 s, not matplotlib's +-days
        axes[-1].set_xlim(utc_datetime(min(ts) - 5 * NS_PER_S), utc_datetime(max(ts) + 5 * NS_PER_S))
    axes[-1].xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S", tz=UTC))
    axes[-1].set_xlabel("time (UTC)")
    fig.suptitle(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    png = buf.getvalue()
    out_path = write_output(out_path, png, "--plot")
    w, h = fig.canvas.get_width_height()
    return Chart(out_path, png, len(axes), w, h)
