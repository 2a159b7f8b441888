"""The `sdr-assets` command. Sub-commands import what they need lazily, so the capture
service never loads dagster, torch or ultralytics."""

import os
import sys
from pathlib import Path

import click

from sdr_assets.cli_decode import decode
from sdr_assets.cli_evaluate import evaluate
from sdr_assets.cli_replica import restore
from sdr_assets.cli_sensors import sensor_option, sensors
from sdr_assets.errors import ConfigError, SdrAssetsError

ENV_PARTITION_MINUTES = "SDR_ASSETS_PARTITION_MINUTES"
DEFAULT_PARTITION_MINUTES = 60.0


def partition_minutes_from_env() -> float:
    """The capture's analysis window for its capacity check: ``$SDR_ASSETS_PARTITION_MINUTES`` or 60."""
    raw = os.environ.get(ENV_PARTITION_MINUTES, "").strip()
    if not raw:
        return DEFAULT_PARTITION_MINUTES
    try:
        minutes = float(raw)
    except ValueError:
        minutes = -1.0
    if not minutes > 0:
        raise ConfigError(f"{ENV_PARTITION_MINUTES}={raw!r} must be a positive number of minutes, e.g. 60.")
    return minutes


class _Group(click.Group):
    """Turn our own errors into one clear line and exit code 2 instead of a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SdrAssetsError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=_Group)
def main() -> None:
    """Live SDR -> hot SQLite -> Dagster analysis (snapshots, spectrograms, YOLO)."""


main.add_command(sensors)
main.add_command(restore)


@main.command()
def home() -> None:
    """Print the data root ($SDR_ASSETS_HOME, default ./var) and its first partition."""
    from sdr_assets.defs.partitions import partition_start_and_source
    from sdr_assets.paths import data_root

    click.echo(str(data_root()))
    start, source = partition_start_and_source()
    click.echo(f"partitions start {start} UTC (from {source})", err=True)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=3000, show_default=True, type=int)
@click.option("--partition-minutes", default=5, show_default=True, type=int,
              help="Partition length for this session (SDR_ASSETS_PARTITION_MINUTES).")
@click.option("--capture-source", default="synthetic://?seed=1", show_default=True, metavar="URI",
              help="What the capture service beside Dagster records.")
@click.option("--capture-rate-hz", type=float, default=1_024_000, show_default=True,
              help="Its sample rate (0: the source's own).")
@click.option("--no-capture", is_flag=True, help="Start Dagster only.")
@click.option("--api-port", default=8080, show_default=True, type=int,
              help="Port of the read-only HTTP API (`sdr-assets serve-api`, on HOST).")
@click.option("--no-api", is_flag=True, help="Do not start the HTTP API.")
def run(host: str, port: int, partition_minutes: int, capture_source: str, capture_rate_hz: float,
        no_capture: bool, api_port: int, no_api: bool) -> None:
    """Start the Dagster UI on HOST:PORT, the capture service and the HTTP API (the `make run`
    main job); Ctrl-C stops it all."""
    from sdr_assets.paths import DataPaths
    from sdr_assets.supervisor import api_service, capture_service, dagster_service, run_services

    os.environ["SDR_ASSETS_PARTITION_MINUTES"] = str(partition_minutes)
    paths = DataPaths.from_env()
    repo_root = Path.cwd()
    services = [dagster_service(paths, repo_root, host, port)]
    if not no_capture:
        services.append(capture_service(paths, capture_source, capture_rate_hz or None))
    lines = [f"Data root: {paths.root}", f"Dagster UI: http://{host}:{port}"]
    if not no_api:
        from sdr_assets.api.server import bind

        bind(host, api_port).close()  # a port in use is one clear line now, not a dead child later
        services.append(api_service(paths, host, api_port))
        lines.append(f"HTTP API:   http://{host}:{api_port}/api  (docs: http://{host}:{api_port}/docs)")
    click.echo("\n".join(lines) + "\n(Ctrl-C stops everything)", err=True)
    sys.exit(run_services(services))


@main.command()
@click.option("--from", "first", required=True, metavar="KEY", help="First partition, e.g. 2026-11-23-00:00.")
@click.option("--to", "last", required=True, metavar="KEY", help="Last partition (inclusive).")
@click.option("--select", default="hot_snapshot,iq_window,spectrograms", show_default=True,
              help="Comma-separated assets to materialise for each partition.")
@sensor_option
def backfill(first: str, last: str, select: str, paths) -> None:
    """Materialise a range of partitions of one sensor through Dagster, one run each, with a progress bar."""
    import dagster as dg

    from sdr_assets.defs.backfill import partition_range, run_backfill
    from sdr_assets.definitions import defs

    keys = partition_range(first, last)
    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()
    report = run_backfill(defs, instance, paths, keys,
                          [s.strip() for s in select.split(",") if s.strip()],
                          echo=lambda m: click.echo(m, err=True))
    click.echo(f"backfill: {len(report.succeeded)} succeeded, {len(report.failed)} failed, "
               f"{len(report.not_held)} no longer held")
    sys.exit(1 if report.failed or report.not_held else 0)


@main.command("serve-rtl-tcp")
@click.option("--source", "source_uri", required=True,
              help="What to serve: synthetic://?seed=1, file://PATH, rtlsdr://0, ...")
@click.option("--port", default=1234, show_default=True, type=int)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface).")
@click.option("--center-freq-hz", type=float, default=None)
@click.option("--sample-rate-hz", type=float, default=None)
@click.option("--gain-db", type=float, default=None, help="Omit for automatic gain.")
@click.option("--loop/--no-loop", default=False, help="Replay a file source forever.")
@click.option("--send-timeout-s", type=float, default=10.0, show_default=True,
              help="Drop a client that takes no chunk within this long (it stopped reading).")
@click.option("--idle-timeout-s", type=float, default=10.0, show_default=True,
              help="After a file source ended: close a client that has not hung up by then.")
def serve_rtl_tcp(source_uri: str, port: int, host: str, center_freq_hz, sample_rate_hz,
                  gain_db, loop: bool, send_timeout_s: float, idle_timeout_s: float) -> None:
    """Serve a source over the standard rtl_tcp protocol until Ctrl-C.

    The source is opened for each client (a file is replayed from its start to each one).
    Client commands outside what an RTL-SDR accepts are logged and ignored."""
    import logging

    from sdr_assets.capture.rtltcp_server import RtlTcpServer
    from sdr_assets.capture.uri import open_source

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    realtime = True if source_uri.strip().lower().startswith("file://") else None
    source = open_source(source_uri, center_freq_hz=center_freq_hz,
                         sample_rate_hz=sample_rate_hz, gain_db=gain_db, realtime=realtime,
                         loop=loop)
    server = RtlTcpServer(source, host=host, port=port, send_timeout_s=send_timeout_s,
                          idle_timeout_s=idle_timeout_s)
    h, p = server.bind()
    info = server.info
    click.echo(f"rtl_tcp server listening on {h}:{p} ({info.uri}, "
               f"{info.center_freq_hz:.0f} Hz, {info.sample_rate_hz:.0f} S/s); Ctrl-C stops it",
               err=True)
    import signal

    def _request_stop(signum, frame) -> None:
        # a flag, not KeyboardInterrupt: an exception raised at an arbitrary point of the
        # serving loop (a join, a source's cleanup) could leave the process hanging
        click.echo("stopping", err=True)
        server.request_stop()

    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)
    try:
        server.serve_forever()
    finally:
        server.stop()


@main.command("serve-api")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (loopback by default; the API has no authentication).")
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--max-iq-mb", default=256.0, show_default=True, type=float,
              help="Largest SigMF archive /api/iq streams (MB of samples); larger spans get a 413.")
def serve_api(host: str, port: int, max_iq_mb: float) -> None:
    """Serve the read-only HTTP API over $SDR_ASSETS_HOME until Ctrl-C (docs at /docs)."""
    from sdr_assets.api.server import serve
    from sdr_assets.paths import DataPaths

    serve(DataPaths.from_env().root, host=host, port=port, max_iq_mb=max_iq_mb,
          echo=lambda line: click.echo(line, err=True))


# ---- capture, status, stats (the capture service; no dagster, torch or ultralytics) ----
@main.command()
@click.option("--source", "source_uri", required=True, metavar="URI",
              help="synthetic://?seed=1 | file://PATH | rtl_tcp://HOST:PORT | rtlsdr://INDEX")
@click.option("--center-freq-hz", type=float, default=None, help="Tuning (default: the source's).")
@click.option("--sample-rate-hz", type=float, default=None, help="Sample rate (default: the source's).")
@click.option("--gain-db", type=float, default=None, help="Manual gain in dB (default: automatic).")
@click.option("--realtime/--no-realtime", default=None,
              help="Pace a file by its sample clock (files default to unpaced).")
@click.option("--loop", is_flag=True, help="Replay a file forever (times keep increasing).")
@click.option("--ring-mb", type=float, default=64.0, show_default=True,
              help="Ring buffer between the radio and the database, MiB.")
@click.option("--cap-bytes", type=int, default=None, help="Hot DB size cap in bytes (default 2 GiB).")
@click.option("--cap-gb", type=float, default=None, help="Hot DB size cap in GiB (2**30 bytes).")
@click.option("--max-age-s", type=float, default=None, help="Also drop chunks older than this.")
@click.option("--synchronous", type=click.Choice(["NORMAL", "FULL"], case_sensitive=False),
              default="NORMAL", show_default=True,
              help="NORMAL: nothing committed is lost on a crash; FULL: nor on a power cut.")
@click.option("--duration-s", type=float, default=None, help="Stop after this long (default: until Ctrl-C).")
@click.option("--partition-minutes", type=float, default=None,
              help="Analysis window for the capacity check (default $SDR_ASSETS_PARTITION_MINUTES or 60).")
@click.option("--writer-delay-s", type=float, default=0.0, hidden=True)  # test hook: slow writer
@sensor_option
def capture(source_uri, center_freq_hz, sample_rate_hz, gain_db, realtime, loop, ring_mb, cap_bytes,
            cap_gb, max_age_s, synchronous, duration_s, partition_minutes, writer_delay_s, paths) -> None:
    """Run the capture service: SOURCE -> the sensor's hot DB ($SDR_ASSETS_HOME/hot.db for the
    default sensor) until EOF or Ctrl-C."""
    import logging

    from sdr_assets.capture.console import run_capture

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if partition_minutes is None:
        partition_minutes = partition_minutes_from_env()
    from sdr_assets.store.telemetry import TelemetryLimits

    limits = TelemetryLimits.from_env(os.environ)  # before the source opens: a bad value costs nothing
    run_capture(hot_db=paths.hot_db, source_uri=source_uri, center_freq_hz=center_freq_hz,
                sample_rate_hz=sample_rate_hz, gain_db=gain_db, realtime=realtime, loop=loop, ring_mb=ring_mb,
                cap_bytes=cap_bytes, cap_gb=cap_gb, max_age_s=max_age_s, synchronous=synchronous.upper(),
                duration_s=duration_s, partition_minutes=partition_minutes,
                writer_delay_s=writer_delay_s, echo=lambda line: click.echo(line, err=True),
                telemetry_limits=limits)


@main.command()
@click.option("--watch", is_flag=True, help="Refresh until Ctrl-C.")
@click.option("--interval-s", type=float, default=1.0, show_default=True, help="Refresh period with --watch.")
@sensor_option
def status(watch: bool, interval_s: float, paths) -> None:
    """Live figures of the newest capture (read-only; safe beside a running capture)."""
    from sdr_assets.capture.console import status_command

    status_command(paths.hot_db, watch, interval_s)


@main.command()
@click.option("--by", type=click.Choice(["capture", "hour"]), default="capture", show_default=True)
@click.option("--metric", "metrics", multiple=True, help="Metric to show (repeatable; default: a summary set).")
@click.option("--all-metrics", is_flag=True, help="Show every metric.")
@click.option("--database", is_flag=True,
              help="Instead: per table of the hot and analysis DBs, rows, oldest/newest record and MB.")
@sensor_option
def stats(by: str, metrics: tuple[str, ...], all_metrics: bool, database: bool, paths) -> None:
    """Telemetry history per capture or per hour (count, min/avg/max) and hot DB figures."""
    from sdr_assets.capture.console import database_command, stats_command

    if database:
        from sdr_assets.store.telemetry import TelemetryLimits

        database_command(paths.hot_db, paths.analysis_db, TelemetryLimits.from_env(os.environ))
        return
    stats_command(paths.hot_db, by, metrics, all_metrics)


# ---- evaluate and decode (cli_evaluate.py, cli_decode.py) ----
main.add_command(evaluate)
main.add_command(decode)


# ---- export and report (plain modules: sigmf_export, store.plots) ----
@main.command()
@click.option("--partition", "partition_key", required=True, metavar="KEY",
              help="A partition the analysis DB holds: a time key like 2026-11-23-00:00 (of "
                   "--sensor) or a full key like 'roof|2026-11-23-00:00'.")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Folder for KEY.sigmf-meta + KEY.sigmf-data (created if missing).")
@click.option("--with-annotations/--no-annotations", default=True, show_default=True,
              help="Ground truth and detections as SigMF annotations.")
@sensor_option
def export(partition_key: str, out_dir: Path, with_annotations: bool, paths) -> None:
    """Export a partition of the analysis DB as SigMF (cu8 exactly as stored, annotated)."""
    from sdr_assets.sigmf_export import export_partition
    from sdr_assets.store.sensors import KEY_SEP, analysis_key

    if KEY_SEP not in partition_key:
        partition_key = analysis_key(paths.sensor, partition_key)
    res = export_partition(paths.analysis_db, partition_key, out_dir,
                           with_annotations=with_annotations, progress=True)
    for rec in res.recordings:
        click.echo(f"{rec.meta_path}: {rec.n_samples} samples at {rec.sample_rate_hz:.0f} S/s in "
                   f"{len(rec.segments)} capture segment(s); {rec.n_annotations} annotations "
                   f"({rec.n_ground_truth} ground truth, {rec.n_detections} detections, "
                   f"{rec.n_clipped} clipped at the edges)")
    if res.n_outside:
        click.echo(f"{res.n_outside} annotation(s) fall in a gap (no samples held) and were left out")
    click.echo(f"{res.n_bytes / 1e6:.1f} MB in {res.seconds:.2f} s")


@main.command()
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write an 8-panel PNG: ingest MB/s, samples lost /s, commit ms, DB size, CPU, memory, GPU.")
@click.option("--since-minutes", type=float, default=60.0, show_default=True,
              help="How far back to read the hot DB's telemetry.")
@sensor_option
def report(plot_path: Path | None, since_minutes: float, paths) -> None:
    """The capture's telemetry (hot DB, read-only, short read): a text summary and a chart."""
    import math
    import time

    from sdr_assets.store.plots import plot_telemetry, read_telemetry, summarize

    if not (since_minutes > 0 and math.isfinite(since_minutes)):
        raise ConfigError(f"--since-minutes {since_minutes:g}: must be > 0 (a finite number of minutes, "
                          "e.g. 60).")
    now_ns = time.time_ns()
    since_ns = now_ns - int(min(since_minutes * 60e9, now_ns))  # further back than 1970: all
    series = read_telemetry(paths.hot_db, since_ns)
    if not series.n_rows:
        raise SdrAssetsError(f"no capture telemetry in {paths.hot_db} in the last {since_minutes:g} "
                             "minutes; is a capture running (`sdr-assets status`)? Widen --since-minutes.")
    summary = summarize(series)
    for line in summary.lines():
        click.echo(line)
    if plot_path is not None:
        chart = plot_telemetry(series, plot_path, config_root=paths.root,
                               title=f"capture telemetry, last {since_minutes:g} min ({paths.hot_db})")
        click.echo(f"plot: {chart.path} ({chart.width_px}x{chart.height_px} px, {chart.n_axes} panels)")


if __name__ == "__main__":
    main()
