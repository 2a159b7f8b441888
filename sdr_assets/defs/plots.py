"""partition_plots: the window's waterfall and its capture-telemetry chart, inline in the UI.

Wiring only: the waterfall is ml.report's (the one detection_report draws, with any
detections the window has), the chart is store.plots'. Telemetry comes from the partition's
snapshot of the hot DB (snapshots/hot-<key>.db), never from the live hot DB.
"""

import dagster as dg

from sdr_assets.defs.analysis import snapshot_path, spectrograms
from sdr_assets.defs.partitions import SENSOR_TIME, window_ns
from sdr_assets.defs.resources import SdrStore
from sdr_assets.store.sensors import key_slug

GROUP = "analysis"


def _round(v, digits=3):
    return "-" if v is None else round(v, digits)


@dg.asset(partitions_def=SENSOR_TIME, group_name=GROUP, kinds={"png"}, deps=[spectrograms])
def partition_plots(context: dg.AssetExecutionContext, store: SdrStore):
    """Waterfall and capture telemetry (ingest, losses, commit ms, DB size, CPU, memory, GPU) of the window."""
    from sdr_assets.ml.report import render_report
    from sdr_assets.store.plots import TelemetrySeries, partition_telemetry, plot_telemetry, summarize

    key = str(context.partition_key)
    paths = store.paths()
    folder = paths.reports / key_slug(key)
    with store.open_analysis() as db:
        wf = render_report(db, key, paths.root, folder / "waterfall.png")
    t0_ns, t1_ns = window_ns(context)
    snap = snapshot_path(store, key)
    if snap.exists():
        series = partition_telemetry(snap, t0_ns, t1_ns)
    else:
        series = TelemetrySeries(
            str(snap),
            t0_ns,
            t1_ns,
            selection="no snapshot of this partition (pruned: re-materialise hot_snapshot for telemetry)",
        )
        context.log.warning(f"no snapshot at {snap}: the telemetry chart is empty")
    summary = summarize(series)
    chart = plot_telemetry(series, folder / "telemetry.png", title=f"capture telemetry, {key}", config_root=paths.root)
    telemetry_md = (
        f"**{key} capture telemetry** ({summary.selection})\n\n![telemetry]({chart.data_uri()})\n\n{summary.markdown()}"
    )
    meta = {
        "waterfall": dg.MetadataValue.md(wf.markdown(f"{key} waterfall")),
        "telemetry": dg.MetadataValue.md(telemetry_md),
        "waterfall_path": dg.MetadataValue.path(str(wf.path)),
        "telemetry_path": dg.MetadataValue.path(str(chart.path)),
        "window_s": round(wf.window_s, 3),
        "detections_drawn": wf.n_boxes_drawn,
        "telemetry_rows": summary.n_rows,
        "telemetry_selection": summary.selection,
        "ingest_mb_s_mean": _round(summary.ingest_mb_s_mean),
        "samples_lost": summary.samples_lost,
        "commit_ms_p99_max": _round(summary.commit_ms_p99_max),
        "db_size_mb": _round(summary.db_size_mb_last, 1),
        "sys_cpu_percent_mean": _round(summary.sys_cpu_percent_mean, 1),
        "capture_rss_mb_max": _round(summary.capture_rss_mb_max, 1),
        "gpus": summary.gpus,
        "png_kb": round((len(wf.png) + len(chart.png)) / 1024, 1),
    }
    context.log.info(f"{folder}: waterfall {wf.width_px}x{wf.height_px}, telemetry {summary.n_rows} rows")
    return dg.MaterializeResult(metadata=meta)
