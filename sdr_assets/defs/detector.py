"""Detector assets: training labels, the nightly YOLO model, detections with lineage, a report.

Wiring only: the work is in ml.labelling, ml.training, ml.detections and ml.report.
"""

import math
import time

import dagster as dg

from sdr_assets.defs.analysis import spectrograms
from sdr_assets.defs.partitions import DAILY_PARTITIONS, SENSOR_TIME
from sdr_assets.defs.resources import DecoderSettings, DetectorSettings, SdrStore
from sdr_assets.errors import DecodeError
from sdr_assets.records import NS_PER_S
from sdr_assets.store.retention import check_keep, prune_datasets, prune_models
from sdr_assets.store.sensors import key_slug

ANALYSIS_GROUP = "analysis"
DETECTOR_GROUP = "detector"
_METRICS = ("map50", "map50_95", "precision", "recall")


def _num(value):
    """A metadata-safe number (NaN, which ultralytics reports for an empty split, as a string)."""
    return "nan" if value is None or (isinstance(value, float) and math.isnan(value)) else round(value, 4)


@dg.asset(partitions_def=SENSOR_TIME, group_name=ANALYSIS_GROUP, kinds={"sqlite"}, deps=[spectrograms])
def training_labels(context: dg.AssetExecutionContext, store: SdrStore, decoder: DecoderSettings):
    """YOLO boxes on the window's frames: its annotations and rtl_433's packages, else energy auto-labels."""
    from sdr_assets.decode.window import packages_for_labels
    from sdr_assets.ml.labelling import label_partition

    key = str(context.partition_key)
    with store.open_analysis() as db:
        try:  # the decoder teaches where it can; without it the labels still come (energy fallback)
            packages, from_where = packages_for_labels(db, key, executable=decoder.rtl_433)
        except DecodeError as exc:
            packages, from_where = [], f"none: {exc}"
            context.log.warning(f"training labels without rtl_433's packages: {exc}")
        st = label_partition(db, key, packages=packages)
    meta = {
        "frames": st.n_frames,
        "frames_with_boxes": st.frames_with_boxes,
        "boxes": st.n_boxes,
        "source": st.source,
        "auto_boxes": st.n_auto,
        "ground_truth_boxes": st.n_ground_truth,
        "boxes_per_source": dg.MetadataValue.json(st.per_source),
        **{f"boxes_from_{k}": v for k, v in st.per_source.items()},
        "rtl_433_packages": st.n_packages,
        "packages_under_annotations": st.n_packages_under_annotations,
        "packages_from": from_where,
        "boxes_per_class": dg.MetadataValue.json(st.per_class),
        **{f"boxes_{k}": v for k, v in st.per_class.items()},
    }
    if st.source == "energy":
        meta["energy_bursts"] = st.n_sources
        meta["energy_bursts_from"] = st.energy_from  # "stored": spectrograms ran the detector (once a window)
        meta["note"] = "no annotation and no rtl_433 package: energy-detector auto-labels (a fallback, auto = 1)"
    if st.relabelled:
        meta["relabelled_as_burst"] = dg.MetadataValue.json(st.relabelled)
    if st.n_frames == 0:
        meta["note"] = "no frames: the window is empty or its spectrograms were not rendered"
    context.log.info(f"{st.n_boxes} boxes on {st.frames_with_boxes}/{st.n_frames} frames from {st.source}")
    return dg.MaterializeResult(metadata=meta)


def contest_table(out) -> str:
    """Markdown: the challenger, the current model and the energy detector side by side on the
    held-back frames (ml.contest), and ultralytics' mAP50 of the two models on the validation labels."""
    from sdr_assets.ml.contest import CHALLENGER_NAME, CHAMPION_NAME, ENERGY_NAME

    cols = [(CHALLENGER_NAME, f"challenger ({out.version})")]
    cols.append((CHAMPION_NAME, f"current model ({out.champion_version})" if out.champion_version else "current model"))
    cols.append((ENERGY_NAME, "energy detector"))
    champ_map = (out.champion_metrics or {}).get("map50")
    yolo_map = {CHALLENGER_NAME: out.challenger_metrics.get("map50"), CHAMPION_NAME: champ_map}

    def cell(name, fn):
        sc = out.scores.get(name)
        return "-" if sc is None else fn(sc)

    rows = [
        ("F1 (decides)", lambda sc: str(_num(sc.f1))),
        ("recall", lambda sc: str(_num(sc.recall))),
        ("precision", lambda sc: str(_num(sc.precision))),
        ("matched / references", lambda sc: f"{sc.tp} / {sc.n_reference}"),
        ("detections", lambda sc: str(sc.n_detections)),
        ("AP50 (same matching)", lambda sc: str(_num(sc.ap50))),
    ]
    head = "| held-back frames | " + " | ".join(title for _, title in cols) + " |\n"
    head += "| --- |" + " --- |" * len(cols) + "\n"
    body = "".join(f"| {label} | " + " | ".join(cell(n, fn) for n, _ in cols) + " |\n" for label, fn in rows)
    body += (
        "| mAP50, ultralytics val | "
        + " | ".join("-" if yolo_map.get(n) is None else str(_num(yolo_map[n])) for n, _ in cols)
        + " |\n"
    )
    return head + body


@dg.asset(partitions_def=DAILY_PARTITIONS, group_name=DETECTOR_GROUP, kinds={"pytorch", "onnx"}, pool="gpu")
def detector_model(context: dg.AssetExecutionContext, store: SdrStore, detector: DetectorSettings):
    """The nightly YOLO detector: fine-tuned on recent independently labelled windows, current only if it
    beats the current model and the energy detector on the same held-back frames."""
    from sdr_assets.capture.sysmetrics import Periodic, ResourceSampler
    from sdr_assets.ml.training import NoIndependentLabels, NoLabelledFrames, train_and_register
    from sdr_assets.store.telemetry import MetricsLogger

    check_keep("keep_models", store.keep_models)  # before hours of training, not after
    check_keep("keep_datasets", store.keep_datasets)
    paths = store.paths()
    started_ns = time.time_ns()
    before_ns = int(context.partition_time_window.end.timestamp() * NS_PER_S)
    with store.open_analysis() as db:
        metrics_log = MetricsLogger(paths.analysis_db, "training", limits=store.telemetry_limits())
        resources = ResourceSampler()  # CPU, RAM and GPUs beside the epoch metrics, once a second
        if resources.gpu_note:
            context.log.info(resources.gpu_note)

        def sample_resources() -> None:
            for name, value in resources.sample().items():
                metrics_log.log(name, value)

        def on_epoch(epoch: int, metrics: dict) -> None:
            metrics_log.log("epoch", epoch)
            for name, value in metrics.items():
                if not math.isnan(value):  # SQLite stores NaN as NULL: the column refuses it
                    metrics_log.log(name, value)
            context.log.info(f"epoch {epoch}: " + ", ".join(f"{k} {_num(metrics.get(k))}" for k in _METRICS))

        try:
            with Periodic(1.0, sample_resources):
                out = train_and_register(
                    db, paths, detector.training_config(), before_ns=before_ns, on_epoch=on_epoch, log=context.log.info
                )
        except NoLabelledFrames as exc:
            raise dg.Failure(str(exc)) from exc
        except NoIndependentLabels as exc:
            # a policy, not a fault: a real capture without annotations or rtl_433 packages would
            # otherwise fail every night. Materialised as skipped, with the reason.
            context.log.warning(str(exc))
            return dg.MaterializeResult(
                metadata={
                    "skipped": True,
                    "promoted": False,
                    "reason": str(exc),
                    "windows_with_only_energy_labels": exc.n_energy_only,
                    "train_on_energy_labels": detector.train_on_energy_labels,
                }
            )
        finally:
            resources.close()
            metrics_log.close()
        # retention: after the registry knows the new model (never the current one's folder)
        models_gone = prune_models(db.conn, paths.models, store.keep_models, idle_before_ns=started_ns)
        datasets_gone = prune_datasets(db.conn, paths.datasets, store.keep_datasets, idle_before_ns=started_ns)
    champ = out.champion_metrics or {}
    verdict = out.verdict
    meta = {
        "version": out.version,
        "promoted": out.promoted,
        "skipped": False,
        "winner": verdict.winner,
        "verdict": verdict.reason,
        "champion_version": out.champion_version or "none",
        "comparison": dg.MetadataValue.md(contest_table(out)),
        "contest_frames": out.n_contest_frames,
        "contest_frames_left_out": out.n_contest_left_out,
        **{
            f"{prefix}_{k}": _num(getattr(sc, k))
            for prefix, name in (
                ("heldback", "challenger"),
                ("champion_heldback", "current model"),
                ("energy", "energy detector"),
            )
            if (sc := out.scores.get(name)) is not None
            for k in ("f1", "recall", "precision")
        },
        **{k: _num(out.challenger_metrics.get(k)) for k in _METRICS},
        **{f"champion_{k}": _num(champ.get(k)) for k in _METRICS if champ},
        "partitions": dg.MetadataValue.json(out.partitions),
        "n_partitions": len(out.partitions),
        "windows_with_only_energy_labels": out.n_energy_only,
        "train_on_energy_labels": detector.train_on_energy_labels,
        "train_frames": out.n_train,
        "val_frames": out.n_val,
        "boxes": out.n_boxes,
        "epochs_run": out.epochs_run,
        "train_s": round(out.train_s, 1),
        "device": out.device,
        "model": detector.model,
        "imgsz": detector.imgsz,
        "warm_start_from": out.params.get("warm_start_from") or "none (from scratch)",
        "weights": dg.MetadataValue.path(str(out.weights_path)),
        "onnx": dg.MetadataValue.path(str(out.onnx_path)),
        "models_removed": ", ".join(models_gone.entries) or "none",
        "model_files_removed": models_gone.files,
        "model_bytes_freed": models_gone.bytes_freed,
        "datasets_removed": ", ".join(datasets_gone.entries) or "none",
        "dataset_files_removed": datasets_gone.files,
        "dataset_bytes_freed": datasets_gone.bytes_freed,
    }
    if out.champion_note:
        meta["champion_note"] = out.champion_note
    return dg.MaterializeResult(metadata=meta)


@dg.asset(partitions_def=SENSOR_TIME, group_name=ANALYSIS_GROUP, kinds={"sqlite"}, deps=[spectrograms])
def detections(context: dg.AssetExecutionContext, store: SdrStore, detector: DetectorSettings):
    """Detections in the window with lineage to raw chunks: the current YOLO model (the shipped one on a
    fresh data root), else the energy detector."""
    from sdr_assets.ml.detections import detect_partition
    from sdr_assets.ml.infer import OnnxDetector, load_detector
    from sdr_assets.ml.shipped_model import ensure_shipped_model
    from sdr_assets.store.registry import current_model

    paths = store.paths()
    with store.open_analysis() as db:
        shipped = ensure_shipped_model(db, paths)
        if shipped.note:
            context.log.info(shipped.note)
        row = current_model(db)
        model, version, name = None, "energy", "energy detector on the IQ (no model in the registry yet)"
        if row is not None:
            model = load_detector(row, prefer=detector.runtime, conf=detector.conf, threads=detector.threads or None)
            version = row.version
            name = (
                "yolo onnxruntime (CPU)"
                if isinstance(model, OnnxDetector)
                else f"yolo torch ({getattr(model, 'device', '?')})"
            )
        single = detector.single_transmitter and row is not None
        st, _ = detect_partition(
            db,
            str(context.partition_key),
            paths.root,
            detector=model,
            model_version=version,
            detector_name=name,
            require_energy=single,
            suppress_across_freq=single,
        )
    meta = {
        "count": st.n_detections,
        "model_version": st.model_version,
        "detector": st.detector,
        "per_label": dg.MetadataValue.json(st.per_label),
        **{f"count_{k}": v for k, v in st.per_label.items()},
        "frames": st.n_frames,
        "ms_per_frame": round(st.ms_per_frame, 2),
        "seconds": round(st.seconds, 2),
        "joined_at_frame_edges": st.n_joined,
        "suppressed_overlaps": st.n_suppressed,
        "dropped_without_samples": st.n_no_samples,
    }
    if row is not None:
        meta["edges_refined"] = st.n_refined  # time edges from the IQ envelope in each box's band
        meta["split_into_packages"] = st.n_split
        meta["single_transmitter"] = single
        meta["dropped_without_energy"] = st.n_unconfirmed
        meta["edge_refinement"] = (
            "model boxes' start/end from the IQ envelope inside their band "
            "(ml.postprocess.refine_box): good to ~0.1 ms, not a frame column"
        )
    if shipped.registered:
        meta["shipped_model"] = shipped.note
    if row is None:
        meta["energy_bursts_from"] = st.energy_from
        meta["note"] = (
            f"no model yet ({shipped.note or 'none registered'}): the energy detector ran on the window's IQ "
            "(materialise detector_model to train one)"
        )
    context.log.info(f"{st.n_detections} detections with {st.detector} ({st.model_version})")
    return dg.MaterializeResult(metadata=meta)


@dg.asset(partitions_def=SENSOR_TIME, group_name=ANALYSIS_GROUP, kinds={"png"}, deps=[detections])
def detection_report(context: dg.AssetExecutionContext, store: SdrStore):
    """The whole window's waterfall (UTC x MHz, one dB scale) with detections by class and decoded devices named."""
    from sdr_assets.ml.report import render_report

    paths = store.paths()
    out = paths.reports / f"{key_slug(context.partition_key)}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    with store.open_analysis() as db:
        rep = render_report(db, str(context.partition_key), paths.root, out)
    meta = {
        "waterfall": dg.MetadataValue.md(rep.markdown(f"{context.partition_key} detections")),
        "path": dg.MetadataValue.path(str(rep.path)),
        "detections": sum(rep.counts.values()),
        **{f"count_{k}": v for k, v in rep.counts.items()},
        "decoded_messages": sum(rep.devices.values()),
        "devices": len(rep.devices),
        "decoded_packages_drawn": rep.n_decodes_drawn,
        "window_s": round(rep.window_s, 3),
        "seconds_with_samples": round(rep.covered_s, 3),
        "frames": rep.n_frames,
        "boxes_drawn": rep.n_boxes_drawn,
        "db_scale": f"{rep.drawn.db_range[0]:.1f} .. {rep.drawn.db_range[1]:.1f} dBFS",
        "width_px": rep.width_px,
        "height_px": rep.height_px,
        "png_kb": round(len(rep.png) / 1024, 1),
        "render_s": round(rep.render_s, 3),
    }
    return dg.MaterializeResult(metadata=meta)
