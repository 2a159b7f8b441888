"""`sdr-assets run` (what `make run` starts) and `sdr-assets home`."""

import os
import sys
from pathlib import Path

import click


@click.command()
def home() -> None:
    """Print the data root ($SDR_ASSETS_HOME, default ./var) and its first partition."""
    from sdr_assets.defs.partitions import partition_start_and_source
    from sdr_assets.paths import data_root

    click.echo(str(data_root()))
    start, source = partition_start_and_source()
    click.echo(f"partitions start {start} UTC (from {source})", err=True)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=3000, show_default=True, type=int)
@click.option(
    "--partition-minutes",
    default=5,
    show_default=True,
    type=int,
    help="Partition length for this session (SDR_ASSETS_PARTITION_MINUTES).",
)
@click.option(
    "--capture-source",
    default="synthetic://?seed=1",
    show_default=True,
    metavar="URI",
    help="What the capture service beside Dagster records.",
)
@click.option(
    "--capture-rate-hz", type=float, default=1_024_000, show_default=True, help="Its sample rate (0: the source's own)."
)
@click.option("--no-capture", is_flag=True, help="Start Dagster only.")
@click.option(
    "--api-port",
    default=8080,
    show_default=True,
    type=int,
    help="Port of the read-only HTTP API (`sdr-assets serve-api`, on HOST).",
)
@click.option("--no-api", is_flag=True, help="Do not start the HTTP API.")
def run(
    host: str,
    port: int,
    partition_minutes: int,
    capture_source: str,
    capture_rate_hz: float,
    no_capture: bool,
    api_port: int,
    no_api: bool,
) -> None:
    """Start the Dagster UI on HOST:PORT, the capture service and the HTTP API (the `make run`
    main job); Ctrl-C stops it all."""
    from sdr_assets.cli.supervisor import api_service, capture_service, dagster_service, run_services
    from sdr_assets.paths import DataPaths

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
