"""`sdr-assets backfill`, `export` and `report`: partitions through Dagster, a window as SigMF,
the capture's telemetry as a chart."""

import os
import sys
from pathlib import Path

import click

from sdr_assets.cli.sensors import sensor_option
from sdr_assets.errors import ConfigError, SdrAssetsError


@click.command()
@click.option("--from", "first", required=True, metavar="KEY", help="First partition, e.g. 2026-11-23-00:00.")
@click.option("--to", "last", required=True, metavar="KEY", help="Last partition (inclusive).")
@click.option(
    "--select",
    default="hot_snapshot,iq_window,spectrograms",
    show_default=True,
    help="Comma-separated assets to materialise for each partition.",
)
@sensor_option
def backfill(first: str, last: str, select: str, paths) -> None:
    """Materialise a range of partitions of one sensor through Dagster, one run each, with a progress bar."""
    import dagster as dg

    from sdr_assets.definitions import defs
    from sdr_assets.defs.backfill import partition_range, run_backfill

    keys = partition_range(first, last)
    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()
    report = run_backfill(
        defs,
        instance,
        paths,
        keys,
        [s.strip() for s in select.split(",") if s.strip()],
        echo=lambda m: click.echo(m, err=True),
    )
    click.echo(
        f"backfill: {len(report.succeeded)} succeeded, {len(report.failed)} failed, "
        f"{len(report.not_held)} no longer held"
    )
    sys.exit(1 if report.failed or report.not_held else 0)


@click.command()
@click.option(
    "--partition",
    "partition_key",
    required=True,
    metavar="KEY",
    help="A partition the analysis DB holds: a time key like 2026-11-23-00:00 (of "
    "--sensor) or a full key like 'roof|2026-11-23-00:00'.",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder for KEY.sigmf-meta + KEY.sigmf-data (created if missing).",
)
@click.option(
    "--with-annotations/--no-annotations",
    default=True,
    show_default=True,
    help="Ground truth and detections as SigMF annotations.",
)
@sensor_option
def export(partition_key: str, out_dir: Path, with_annotations: bool, paths) -> None:
    """Export a partition of the analysis DB as SigMF (cu8 exactly as stored, annotated)."""
    from sdr_assets.sigmf.export import export_partition
    from sdr_assets.store.sensors import KEY_SEP, analysis_key

    if KEY_SEP not in partition_key:
        partition_key = analysis_key(paths.sensor, partition_key)
    res = export_partition(paths.analysis_db, partition_key, out_dir, with_annotations=with_annotations, progress=True)
    for rec in res.recordings:
        click.echo(
            f"{rec.meta_path}: {rec.n_samples} samples at {rec.sample_rate_hz:.0f} S/s in "
            f"{len(rec.segments)} capture segment(s); {rec.n_annotations} annotations "
            f"({rec.n_ground_truth} ground truth, {rec.n_detections} detections, "
            f"{rec.n_clipped} clipped at the edges)"
        )
    if res.n_outside:
        click.echo(f"{res.n_outside} annotation(s) fall in a gap (no samples held) and were left out")
    click.echo(f"{res.n_bytes / 1e6:.1f} MB in {res.seconds:.2f} s")


@click.command()
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write an 8-panel PNG: ingest MB/s, samples lost /s, commit ms, DB size, CPU, memory, GPU.",
)
@click.option(
    "--since-minutes", type=float, default=60.0, show_default=True, help="How far back to read the hot DB's telemetry."
)
@sensor_option
def report(plot_path: Path | None, since_minutes: float, paths) -> None:
    """The capture's telemetry (hot DB, read-only, short read): a text summary and a chart."""
    import math
    import time

    from sdr_assets.store.plots import plot_telemetry, read_telemetry, summarize

    if not (since_minutes > 0 and math.isfinite(since_minutes)):
        raise ConfigError(f"--since-minutes {since_minutes:g}: must be > 0 (a finite number of minutes, e.g. 60).")
    now_ns = time.time_ns()
    since_ns = now_ns - int(min(since_minutes * 60e9, now_ns))  # further back than 1970: all
    series = read_telemetry(paths.hot_db, since_ns)
    if not series.n_rows:
        raise SdrAssetsError(
            f"no capture telemetry in {paths.hot_db} in the last {since_minutes:g} "
            "minutes; is a capture running (`sdr-assets status`)? Widen --since-minutes."
        )
    summary = summarize(series)
    for line in summary.lines():
        click.echo(line)
    if plot_path is not None:
        chart = plot_telemetry(
            series,
            plot_path,
            config_root=paths.root,
            title=f"capture telemetry, last {since_minutes:g} min ({paths.hot_db})",
        )
        click.echo(f"plot: {chart.path} ({chart.width_px}x{chart.height_px} px, {chart.n_axes} panels)")
