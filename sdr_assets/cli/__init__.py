"""The `sdr-assets` command, one module per command family:

- run.py: `run` (what `make run` starts, with supervisor.py) and `home`
- capture.py: `capture`, `status`, `stats`, `serve-rtl-tcp` (no dagster, torch or ultralytics)
- sensors.py: `sensors add|list|sync` and the `--sensor` option
- analysis.py: `backfill`, `export`, `report`
- evaluate.py (+ evaluation.py): `evaluate`; decode.py: `decode`; replica.py: `restore`;
  api.py: `serve-api`

Sub-commands import what they need lazily. Our own errors (SdrAssetsError) become one
``error: ...`` line and exit code 2.
"""

import sys

import click

from sdr_assets.cli.analysis import backfill, export, report
from sdr_assets.cli.api import serve_api
from sdr_assets.cli.capture import capture, partition_minutes_from_env, serve_rtl_tcp, stats, status
from sdr_assets.cli.decode import decode
from sdr_assets.cli.evaluate import evaluate
from sdr_assets.cli.replica import restore
from sdr_assets.cli.run import home, run
from sdr_assets.cli.sensors import sensors
from sdr_assets.errors import SdrAssetsError

__all__ = ["main", "partition_minutes_from_env"]


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


for _command in (
    run,
    home,
    capture,
    status,
    stats,
    serve_rtl_tcp,
    sensors,
    backfill,
    export,
    report,
    evaluate,
    decode,
    restore,
    serve_api,
):
    main.add_command(_command)
