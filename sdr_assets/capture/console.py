"""What `sdr-assets capture`, `status` and `stats` do (cli.py only parses the flags).

``status`` and ``stats`` read the hot database through short read-only connections, so they
can run beside a live capture without holding up its writer or its checkpoints.
"""

import math
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from sdr_assets.errors import ConfigError
from sdr_assets.records import NS_PER_S, utc_iso

STALE_AFTER_S = 5.0  # telemetry is written every second; older than this = stalled
STATS_DEFAULT_METRICS = (
    "samples_received_per_s",
    "samples_lost",
    "ingest_mb_s",
    "ring_high_water",
    "commit_ms_p99",
    "commit_ms_max",
    "rss_mb",
    "cpu_percent",
    "db_size_bytes",
)


def resolve_cap_bytes(cap_bytes: int | None, cap_gb: float | None) -> int | None:
    """The user's cap in bytes; None when neither flag is given (the service derives one)."""
    if cap_bytes is not None and cap_gb is not None:
        raise ConfigError("give --cap-bytes or --cap-gb, not both.")
    if cap_gb is not None and not math.isfinite(cap_gb * 2**30):
        raise ConfigError(f"--cap-gb {cap_gb:g} must be a finite number of GiB, e.g. --cap-gb 2.")
    cap = cap_bytes if cap_gb is None else int(cap_gb * 2**30)
    if cap is None:
        return None
    if cap <= 0:
        raise ConfigError(f"the hot DB cap must be > 0 bytes (got {cap}); e.g. --cap-gb 2.")
    return cap


def run_capture(
    *,
    hot_db: Path,
    source_uri: str,
    center_freq_hz,
    sample_rate_hz,
    gain_db,
    realtime,
    loop,
    ring_mb: float,
    cap_bytes,
    cap_gb,
    max_age_s,
    synchronous: str,
    duration_s,
    partition_minutes: float,
    writer_delay_s: float,
    echo: Callable[[str], None],
    telemetry_limits=None,
):
    """Build the source and the service from CLI values and run until the end; the summary.
    ``hot_db``: the sensor's hot DB; ``partition_minutes``: the analysis window (capacity check);
    ``telemetry_limits``: the telemetry bound (store.telemetry.TelemetryLimits, default when None)."""
    from sdr_assets.capture.service import CaptureService
    from sdr_assets.capture.uri import open_source

    minutes = partition_minutes
    if not minutes > 0:
        raise ConfigError(f"--partition-minutes {minutes} must be > 0.")
    if not (ring_mb > 0 and math.isfinite(ring_mb)):
        raise ConfigError(f"--ring-mb {ring_mb} must be > 0 (64 is the default).")
    import psutil

    total_mb = psutil.virtual_memory().total / 2**20
    if ring_mb > total_mb / 2:
        raise ConfigError(
            f"--ring-mb {ring_mb:g} is more than half of this machine's memory "
            f"({total_mb:.0f} MiB); 64 is the default, a few hundred is plenty."
        )
    if duration_s is not None and not duration_s > 0:
        raise ConfigError(f"--duration-s {duration_s} must be > 0 (omit it to run until Ctrl-C).")
    cap = resolve_cap_bytes(cap_bytes, cap_gb)
    source = open_source(
        source_uri,
        center_freq_hz=center_freq_hz,
        sample_rate_hz=sample_rate_hz,
        gain_db=gain_db,
        realtime=realtime,
        loop=loop,
    )
    service = CaptureService(
        source,
        hot_db,
        ring_bytes=int(ring_mb * 2**20),
        synchronous=synchronous,
        cap_bytes=cap,
        max_age_s=max_age_s,
        window_s_for_capacity_check=minutes * 60.0,
        duration_s=duration_s,
        writer_delay_s=writer_delay_s,
        telemetry_limits=telemetry_limits,
        log=echo,
    )
    return service.run()


# ---- status -----------------------------------------------------------------------------
def _iso(t_ns: int | None) -> str:
    return "-" if t_ns is None else utc_iso(t_ns, sep=" ", suffix=" UTC")


def read_status(hot_path: Path) -> dict | None:
    """The newest capture and its latest telemetry; None if no capture has run."""
    from sdr_assets.capture.lock import holder_pid
    from sdr_assets.store.telemetry import newest_capture

    status = newest_capture(hot_path)
    if status is None:
        return None
    out = asdict(status.capture)
    out["gaps"] = status.gaps
    metrics = status.metrics
    out["metrics"] = {m: v for m, (_, v) in metrics.items()}
    out["last_row_ns"] = max((t for t, _ in metrics.values()), default=None)
    now_ns = time.time_ns()
    age_s = None if out["last_row_ns"] is None else (now_ns - out["last_row_ns"]) / NS_PER_S
    out["last_row_age_s"] = age_s
    pid = holder_pid(hot_path)
    out["pid"] = pid
    if out["ended_ns"] is not None:
        out["state"] = f"stopped ({out['end_reason']})"
    elif pid is not None and age_s is not None and age_s <= STALE_AFTER_S:
        out["state"] = f"running (pid {pid})"
    elif pid is not None and age_s is None:
        out["state"] = f"starting (pid {pid})"
    elif pid is not None:
        out["state"] = f"running (pid {pid}) but stalled: no telemetry for {age_s:.0f} s"
    else:
        out["state"] = "not running (no end recorded: killed or crashed; the next start records the dead time)"
    return out


def _fmt(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _scaled(value, factor: float):
    return None if value is None else value * factor


def render_status(st: dict | None, hot_path: Path):
    from rich.table import Table

    if st is None:
        return (
            f"No capture has run yet: {hot_path} holds no capture. Start one with\n"
            f"  sdr-assets capture --source 'synthetic://?seed=1&rate=1024000' --partition-minutes 5"
        )
    m = st["metrics"]
    table = Table(title=f"capture {st['capture_id']}: {st['state']}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    gain = "auto" if st["gain_db"] is None else f"{st['gain_db']:g} dB"
    lost_by = ", ".join(f"{g.cause}: {int(g.n_samples_lost)} in {g.n_gaps} gap(s)" for g in st["gaps"]) or "none"
    rows = [
        ("hot DB", str(hot_path)),
        ("source", f"{st['source_uri']} ({st['source_kind']})"),
        ("tuning", f"{st['center_freq_hz'] / 1e6:.6g} MHz, {st['sample_rate_hz'] / 1e6:g} MS/s, gain {gain}"),
        ("started", _iso(st["started_ns"])),
        ("ended", _iso(st["ended_ns"])),
        ("last telemetry", "-" if st["last_row_age_s"] is None else f"{st['last_row_age_s']:.1f} s ago"),
        ("samples received", _fmt(m.get("samples_received"), ",.0f")),
        ("samples stored", _fmt(m.get("samples_stored"), ",.0f")),
        ("samples lost", _fmt(m.get("samples_lost"), ",.0f")),
        ("gaps recorded", lost_by),
        ("rate received", f"{_fmt(m.get('samples_received_per_s'), ',.0f')} samples/s"),
        ("ingest", f"{_fmt(m.get('ingest_mb_s'), '.2f')} MB/s"),
        ("ring fill / high water", f"{_fmt(m.get('ring_fill'), '.1%')} / {_fmt(m.get('ring_high_water'), '.1%')}"),
        ("commit ms p50/p99/max", " / ".join(_fmt(m.get(f"commit_ms_{k}"), ".1f") for k in ("p50", "p99", "max"))),
        ("batch bytes avg", _fmt(m.get("batch_bytes_avg"), ",.0f")),
        ("rss / cpu", f"{_fmt(m.get('rss_mb'), '.0f')} MB / {_fmt(m.get('cpu_percent'), '.0f')} %"),
        ("hot DB size", f"{_fmt(_scaled(m.get('db_size_bytes'), 1e-6), ',.1f')} MB"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def make_console():
    """A rich console; piped output gets wide lines (paths and URIs stay whole)."""
    import sys

    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 200)


def status_command(hot_path: Path, watch: bool, interval_s: float, console=None) -> None:
    console = console or make_console()
    if not watch:
        console.print(render_status(read_status(hot_path), hot_path), soft_wrap=True)
        return
    from rich.live import Live

    try:
        with Live(render_status(read_status(hot_path), hot_path), console=console, auto_refresh=False) as live:
            while True:
                time.sleep(interval_s)
                live.update(render_status(read_status(hot_path), hot_path), refresh=True)
    except KeyboardInterrupt:
        return


# ---- stats ------------------------------------------------------------------------------
def stats_command(hot_path: Path, by: str, metrics: tuple[str, ...], all_metrics: bool, console=None) -> None:
    from rich.table import Table

    console = console or make_console()
    from sdr_assets.store.telemetry import database_stats, telemetry_stats

    rows = telemetry_stats(hot_path, by=by)
    wanted = None if all_metrics else set(metrics or STATS_DEFAULT_METRICS)
    shown = [r for r in rows if wanted is None or r.metric in wanted]
    table = Table(title=f"telemetry per {by} ({hot_path})")
    for col in (by, "metric", "count", "min", "avg", "max"):
        table.add_column(col, justify="right" if col in ("count", "min", "avg", "max") else "left")
    for r in shown:
        table.add_row(str(r.key), r.metric, str(r.count), f"{r.min:.4g}", f"{r.avg:.4g}", f"{r.max:.4g}")
    if not rows:
        console.print(f"No telemetry in {hot_path} yet: start a capture (`sdr-assets capture ...`).")
    elif not shown:
        known = sorted({r.metric for r in rows})
        raise ConfigError(f"no telemetry for metric(s) {', '.join(sorted(wanted))}; known: {', '.join(known)}.")
    else:
        console.print(table)
    db = database_stats(hot_path)  # a damaged file: one StoreError line (store.db.reading)
    dbt = Table(title="hot database", show_header=False)
    dbt.add_column("what", style="bold")
    dbt.add_column("value")
    for key in ("path", "file_bytes", "wal_bytes", "page_size", "page_count", "freelist_count", "used_bytes"):
        dbt.add_row(key, f"{db[key]:,}" if isinstance(db[key], int) else str(db[key]))
    for table_name, n in db["rows"].items():
        dbt.add_row(f"rows in {table_name}", f"{n:,}")
    dbt.add_row("oldest chunk", _iso(db["oldest_chunk_t_start_ns"]))
    dbt.add_row("newest sample", _iso(db["newest_chunk_t_end_ns"]))
    console.print(dbt)


def database_command(hot_db: Path, analysis_db: Path, limits, console=None) -> None:
    """`stats --database`: per table of the hot and analysis DBs, rows, oldest/newest and size;
    ``limits``: the telemetry bound in force (store.telemetry.TelemetryLimits)."""
    from rich.table import Table

    from sdr_assets.store.db import reading
    from sdr_assets.store.dbstats import database_view

    console = console or make_console()
    shown = 0
    for label, path in (("hot database", hot_db), ("analysis database", analysis_db)):
        if not path.exists():
            console.print(f"{label}: {path} does not exist yet")
            continue
        with reading(path):
            view = database_view(path)
        table = Table(
            title=f"{label} {path}: file {view.file_bytes / 1e6:,.1f} MB, WAL "
            f"{view.wal_bytes / 1e6:,.1f} MB, free pages {view.free_bytes / 1e6:,.1f} MB"
        )
        for col in ("table", "rows", "oldest", "newest", "MB"):
            table.add_column(col, justify="right" if col in ("rows", "MB") else "left")
        for t in view.tables:
            table.add_row(t.name, f"{t.rows:,}", _iso(t.oldest_ns), _iso(t.newest_ns), f"{t.bytes / 1e6:,.2f}")
        console.print(table)
        shown += 1
    cap = "no cap" if limits.cap_bytes is None else f"cap {limits.cap_bytes / 1e6:,.0f} MB"
    age = "no age limit" if limits.max_age_s is None else f"max age {limits.max_age_s / 86400:g} days"
    console.print(
        f"telemetry bound, each DB: {cap}, {age}, pruned every {limits.prune_interval_s / 60:g} min "
        "by its writer (SDR_ASSETS_TELEMETRY_CAP_MB, SDR_ASSETS_TELEMETRY_MAX_AGE_DAYS)"
    )
    if not shown:
        raise ConfigError(f"no database at {hot_db} or {analysis_db} yet: start a capture (`sdr-assets capture ...`).")
