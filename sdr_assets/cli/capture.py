"""`sdr-assets capture`, `status`, `stats` and `serve-rtl-tcp`: the capture service and the rtl_tcp
server (no dagster, torch or ultralytics is loaded)."""

import os

import click

from sdr_assets.cli.sensors import sensor_option
from sdr_assets.errors import ConfigError

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


@click.command()
@click.option(
    "--source",
    "source_uri",
    required=True,
    metavar="URI",
    help="synthetic://?seed=1 | file://PATH | rtl_tcp://HOST:PORT | rtlsdr://INDEX",
)
@click.option("--center-freq-hz", type=float, default=None, help="Tuning (default: the source's).")
@click.option("--sample-rate-hz", type=float, default=None, help="Sample rate (default: the source's).")
@click.option("--gain-db", type=float, default=None, help="Manual gain in dB (default: automatic).")
@click.option(
    "--realtime/--no-realtime", default=None, help="Pace a file by its sample clock (files default to unpaced)."
)
@click.option("--loop", is_flag=True, help="Replay a file forever (times keep increasing).")
@click.option(
    "--ring-mb",
    type=float,
    default=64.0,
    show_default=True,
    help="Ring buffer between the radio and the database, MiB.",
)
@click.option(
    "--cap-bytes",
    type=int,
    default=None,
    help="Hot DB size cap in bytes (default: two analysis windows plus 10 % at the rate, at least 2 GiB).",
)
@click.option("--cap-gb", type=float, default=None, help="Hot DB size cap in GiB (2**30 bytes).")
@click.option("--max-age-s", type=float, default=None, help="Also drop chunks older than this.")
@click.option(
    "--synchronous",
    type=click.Choice(["NORMAL", "FULL"], case_sensitive=False),
    default="NORMAL",
    show_default=True,
    help="NORMAL: nothing committed is lost on a crash; FULL: nor on a power cut.",
)
@click.option("--duration-s", type=float, default=None, help="Stop after this long (default: until Ctrl-C).")
@click.option(
    "--partition-minutes",
    type=float,
    default=None,
    help="Analysis window for the capacity check (default $SDR_ASSETS_PARTITION_MINUTES or 60).",
)
@click.option("--writer-delay-s", type=float, default=0.0, hidden=True)  # test hook: slow writer
@sensor_option
def capture(
    source_uri,
    center_freq_hz,
    sample_rate_hz,
    gain_db,
    realtime,
    loop,
    ring_mb,
    cap_bytes,
    cap_gb,
    max_age_s,
    synchronous,
    duration_s,
    partition_minutes,
    writer_delay_s,
    paths,
) -> None:
    """Run the capture service: SOURCE -> the sensor's hot DB ($SDR_ASSETS_HOME/hot.db for the
    default sensor) until EOF or Ctrl-C."""
    import logging

    from sdr_assets.capture.console import run_capture

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if partition_minutes is None:
        partition_minutes = partition_minutes_from_env()
    from sdr_assets.store.telemetry import TelemetryLimits

    limits = TelemetryLimits.from_env(os.environ)  # before the source opens: a bad value costs nothing
    run_capture(
        hot_db=paths.hot_db,
        source_uri=source_uri,
        center_freq_hz=center_freq_hz,
        sample_rate_hz=sample_rate_hz,
        gain_db=gain_db,
        realtime=realtime,
        loop=loop,
        ring_mb=ring_mb,
        cap_bytes=cap_bytes,
        cap_gb=cap_gb,
        max_age_s=max_age_s,
        synchronous=synchronous.upper(),
        duration_s=duration_s,
        partition_minutes=partition_minutes,
        writer_delay_s=writer_delay_s,
        echo=lambda line: click.echo(line, err=True),
        telemetry_limits=limits,
    )


@click.command()
@click.option("--watch", is_flag=True, help="Refresh until Ctrl-C.")
@click.option("--interval-s", type=float, default=1.0, show_default=True, help="Refresh period with --watch.")
@sensor_option
def status(watch: bool, interval_s: float, paths) -> None:
    """Live figures of the newest capture (read-only; safe beside a running capture)."""
    from sdr_assets.capture.console import status_command

    status_command(paths.hot_db, watch, interval_s)


@click.command()
@click.option("--by", type=click.Choice(["capture", "hour"]), default="capture", show_default=True)
@click.option("--metric", "metrics", multiple=True, help="Metric to show (repeatable; default: a summary set).")
@click.option("--all-metrics", is_flag=True, help="Show every metric.")
@click.option(
    "--database",
    is_flag=True,
    help="Instead: per table of the hot and analysis DBs, rows, oldest/newest record and MB.",
)
@sensor_option
def stats(by: str, metrics: tuple[str, ...], all_metrics: bool, database: bool, paths) -> None:
    """Telemetry history per capture or per hour (count, min/avg/max) and hot DB figures."""
    from sdr_assets.capture.console import database_command, stats_command

    if database:
        from sdr_assets.store.telemetry import TelemetryLimits

        database_command(paths.hot_db, paths.analysis_db, TelemetryLimits.from_env(os.environ))
        return
    stats_command(paths.hot_db, by, metrics, all_metrics)


@click.command("serve-rtl-tcp")
@click.option(
    "--source", "source_uri", required=True, help="What to serve: synthetic://?seed=1, file://PATH, rtlsdr://0, ..."
)
@click.option("--port", default=1234, show_default=True, type=int)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface).")
@click.option("--center-freq-hz", type=float, default=None)
@click.option("--sample-rate-hz", type=float, default=None)
@click.option("--gain-db", type=float, default=None, help="Omit for automatic gain.")
@click.option("--loop/--no-loop", default=False, help="Replay a file source forever.")
@click.option(
    "--send-timeout-s",
    type=float,
    default=10.0,
    show_default=True,
    help="Drop a client that takes no chunk within this long (it stopped reading).",
)
@click.option(
    "--idle-timeout-s",
    type=float,
    default=10.0,
    show_default=True,
    help="After a file source ended: close a client that has not hung up by then.",
)
def serve_rtl_tcp(
    source_uri: str,
    port: int,
    host: str,
    center_freq_hz,
    sample_rate_hz,
    gain_db,
    loop: bool,
    send_timeout_s: float,
    idle_timeout_s: float,
) -> None:
    """Serve a source over the standard rtl_tcp protocol until Ctrl-C.

    The source is opened for each client (a file is replayed from its start to each one).
    Client commands outside what an RTL-SDR accepts are logged and ignored."""
    import logging

    from sdr_assets.capture.rtltcp_server import RtlTcpServer
    from sdr_assets.capture.uri import open_source

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    realtime = True if source_uri.strip().lower().startswith("file://") else None
    source = open_source(
        source_uri,
        center_freq_hz=center_freq_hz,
        sample_rate_hz=sample_rate_hz,
        gain_db=gain_db,
        realtime=realtime,
        loop=loop,
    )
    server = RtlTcpServer(source, host=host, port=port, send_timeout_s=send_timeout_s, idle_timeout_s=idle_timeout_s)
    h, p = server.bind()
    info = server.info
    click.echo(
        f"rtl_tcp server listening on {h}:{p} ({info.uri}, "
        f"{info.center_freq_hz:.0f} Hz, {info.sample_rate_hz:.0f} S/s); Ctrl-C stops it",
        err=True,
    )
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
