"""The `sdr-assets` command. Sub-commands import what they need lazily, so the capture
service never loads dagster, torch or ultralytics."""

import sys
from pathlib import Path

import click

from sdr_assets.errors import SdrAssetsError


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


@main.command()
def home() -> None:
    """Print the data root ($SDR_ASSETS_HOME, default ./var)."""
    from sdr_assets.paths import data_root

    click.echo(str(data_root()))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=3000, show_default=True, type=int)
@click.option("--partition-minutes", default=5, show_default=True, type=int,
              help="Partition length for this session (SDR_ASSETS_PARTITION_MINUTES).")
def run(host: str, port: int, partition_minutes: int) -> None:
    """Start the Dagster UI on HOST:PORT (the `make run` main job); Ctrl-C stops it all."""
    import os

    from sdr_assets.paths import DataPaths
    from sdr_assets.supervisor import dagster_service, run_services

    os.environ["SDR_ASSETS_PARTITION_MINUTES"] = str(partition_minutes)
    paths = DataPaths.from_env()
    repo_root = Path.cwd()
    services = [dagster_service(paths, repo_root, host, port)]
    click.echo(f"Data root: {paths.root}\nDagster UI: http://{host}:{port}  (Ctrl-C stops everything)",
               err=True)
    sys.exit(run_services(services))


if __name__ == "__main__":
    main()
