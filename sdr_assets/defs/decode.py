"""Decoder assets: what rtl_433 decodes in each window, and the sensor's device inventory.

Wiring only: the work is in decode.window and decode.inventory. ``decoded_messages`` depends on
``iq_window`` alone and nothing in the detection chain depends on it, so without rtl_433 it fails
with one line naming the package to install while snapshots, spectrograms, labels (the energy
fallback) and detections still run.
"""

import dagster as dg

from sdr_assets.defs.analysis import iq_window
from sdr_assets.defs.partitions import SENSOR_TIME, sensor_of, window_ns
from sdr_assets.defs.resources import DecoderSettings, SdrStore
from sdr_assets.errors import DecodeError
from sdr_assets.records import NS_PER_S, utc_iso

GROUP = "analysis"


def _cell(value) -> str:
    return "" if value is None else str(value).replace("|", "/")


def messages_table(messages, t0_ns: int, limit: int) -> str:
    """Markdown table of the first ``limit`` messages (UI metadata)."""
    head = (
        "| t (s into window) | model | id | channel | MHz | SNR dB | fields |\n"
        "| --- | --- | --- | --- | --- | --- | --- |\n"
    )
    skip = {"time", "model", "id", "channel", "mod", "freq", "freq1", "freq2", "rssi", "snr", "noise"}
    rows = []
    for m in messages[:limit]:
        fields = ", ".join(f"{k}={v}" for k, v in m.message.items() if k not in skip)
        mhz = "" if m.freq_hz is None else f"{m.freq_hz / 1e6:.3f}"
        snr = "" if m.snr_db is None else f"{m.snr_db:.1f}"
        rows.append(
            f"| {(m.t_start_ns - t0_ns) / NS_PER_S:.3f} | {_cell(m.model)} | {_cell(m.device_id)} | "
            f"{_cell(m.channel)} | {mhz} | {snr} | {_cell(fields)[:120]} |\n"
        )
    return head + ("".join(rows) or "| (no messages) | | | | | | |\n")


@dg.asset(partitions_def=SENSOR_TIME, group_name=GROUP, kinds={"sqlite"}, deps=[iq_window])
def decoded_messages(context: dg.AssetExecutionContext, store: SdrStore, decoder: DecoderSettings):
    """What rtl_433 decodes in the window: device messages in absolute time, with levels and lineage to raw chunks."""
    from sdr_assets.decode.window import decode_partition

    key = str(context.partition_key)
    t0_ns, _ = window_ns(context)
    try:
        with store.open_analysis() as db:
            out = decode_partition(db, key, executable=decoder.rtl_433)
    except DecodeError as exc:
        raise dg.Failure(str(exc)) from exc
    run = out.run
    devices = out.devices
    meta = {
        "messages": run.n_messages,
        "devices": len(devices),
        "packages": run.n_packages,
        "packages_decoded": sum(1 for p in out.packages if p.n_messages),
        "segments": run.n_segments,
        "samples": run.n_samples,
        "seconds": round(run.seconds, 3),
        "window_seconds_decoded": round(out.duration_s, 3),
        "realtime_fraction": round(out.realtime_fraction, 5),
        "rtl_433_version": run.decoder_version,
        "per_model": dg.MetadataValue.json(out.per_model),
        **{f"count_{model}": n for model, n in out.per_model.items()},
        "first_messages": dg.MetadataValue.md(messages_table(out.messages, t0_ns, decoder.messages_shown)),
    }
    if run.n_segments == 0:
        meta["note"] = "empty window: no samples to decode"
    context.log.info(
        f"rtl_433 {run.decoder_version}: {run.n_messages} messages from {len(devices)} devices, "
        f"{run.n_packages} packages in {run.n_segments} segments, {run.seconds:.2f} s "
        f"({100 * out.realtime_fraction:.2f} % of real time)"
    )
    return dg.MaterializeResult(metadata=meta)


@dg.asset(
    partitions_def=SENSOR_TIME,
    group_name=GROUP,
    kinds={"sqlite"},
    deps=[decoded_messages],
    check_specs=[
        dg.AssetCheckSpec(
            "no_new_devices",
            asset="device_inventory",
            description="no device heard for the first time in this window (WARN: new devices)",
        ),
        dg.AssetCheckSpec(
            "no_missing_devices",
            asset="device_inventory",
            description="no device went silent for longer than missing_after_intervals x its "
            "usual interval in this window (WARN: missing devices)",
        ),
    ],
)
def device_inventory(context: dg.AssetExecutionContext, store: SdrStore, decoder: DecoderSettings):
    """Every device the sensor has heard: first/last seen, messages, median SNR and frequency; new and missing ones warn."""
    from sdr_assets.decode.inventory import update_inventory

    sensor = sensor_of(context)
    w0_ns, w1_ns = window_ns(context)
    with store.open_analysis() as db:
        up = update_inventory(
            db.conn, sensor, str(context.partition_key), w0_ns, w1_ns, decoder.missing_after_intervals
        )
    new = [a for a in up.alerts if a.kind == "new"]
    missing = [a for a in up.alerts if a.kind == "missing"]
    for a in up.alerts:
        context.log.warning(a.line())
    table = (
        "| device | first seen | last seen | messages | median SNR dB | median MHz | usual interval s |\n"
        "| --- | --- | --- | --- | --- | --- | --- |\n"
    )
    for r in sorted(up.rows, key=lambda r: -r.last_seen_ns):
        seen = " | ".join(utc_iso(t, sep=" ", suffix="") for t in (r.first_seen_ns, r.last_seen_ns))
        table += (
            f"| {_cell(r.name())} | {seen} | {r.n_messages} | "
            f"{'' if r.median_snr_db is None else f'{r.median_snr_db:.1f}'} | "
            f"{'' if r.median_freq_hz is None else f'{r.median_freq_hz / 1e6:.3f}'} | "
            f"{'' if r.usual_interval_s is None else f'{r.usual_interval_s:.1f}'} |\n"
        )
    meta = {
        "devices": len(up.rows),
        "heard_in_window": up.n_sightings,
        "new": len(new),
        "missing": len(missing),
        "inventory": dg.MetadataValue.md(table if up.rows else "no device heard yet"),
        "stored": up.stored,
    }
    if not up.stored:
        meta["note"] = "a newer window's inventory is already stored; this one was computed, not stored"

    def check(name: str, found) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(
            check_name=name,
            passed=not found,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "count": len(found),
                "devices": dg.MetadataValue.json([a.name() for a in found]),
                "lines": dg.MetadataValue.md("\n".join(f"- {a.line()}" for a in found) or "none"),
            },
        )

    return dg.MaterializeResult(
        metadata=meta, check_results=[check("no_new_devices", new), check("no_missing_devices", missing)]
    )
