"""The nightly training job and schedule, and the sensor that re-runs detections after it.

detector_schedule (02:00 UTC) runs detector_job for the day that just ended. Whenever a
detector_model materialisation promotes a new model (from that job, a backfill or the UI),
new_model_sensor requests detections + detection_report for the newest
``SDR_ASSETS_REDETECT_PARTITIONS`` (default 6) (sensor x time) partitions that have
spectrograms, one run per partition, run_key = "<model version>:<partition>" so each is
requested once.
"""

import os

import dagster as dg

from sdr_assets.defs.detector import detection_report, detections, detector_model
from sdr_assets.defs.partitions import DAILY_PARTITIONS, SENSOR_TIME, TIME_PARTITIONS
from sdr_assets.defs.resources import SdrStore
from sdr_assets.errors import ConfigError
from sdr_assets.store.frames import partitions_with_frames
from sdr_assets.store.sensors import KEY_SEP, split_key

ENV_REDETECT = "SDR_ASSETS_REDETECT_PARTITIONS"

detector_job = dg.define_asset_job(
    "detector_job",
    selection=dg.AssetSelection.assets(detector_model),
    partitions_def=DAILY_PARTITIONS,
    description="Train the YOLO detector on recent labelled windows; promote it if it beats the current one.",
)

detector_schedule = dg.build_schedule_from_partitioned_job(
    detector_job,
    name="detector_schedule",
    hour_of_day=2,
    minute_of_hour=0,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Nightly at 02:00 UTC: train on the day that ended (new_model_sensor then re-detects).",
)

detections_job = dg.define_asset_job(
    "detections_job",
    selection=dg.AssetSelection.assets(detections, detection_report),
    partitions_def=SENSOR_TIME,
    description="Re-run detections and the report for one window (after a new model is promoted).",
)


def redetect_count() -> int:
    raw = os.environ.get(ENV_REDETECT, "6").strip()
    try:
        n = int(raw)
    except ValueError:
        n = -1
    if n < 0:
        raise ConfigError(f"{ENV_REDETECT}={raw!r} must be a whole number >= 0 (0 disables re-detection).")
    return n


def recent_partitions_with_frames(analysis_db, limit: int) -> list[str]:
    """The newest ``limit`` (sensor x time) keys that have spectrogram frames, newest first."""
    if limit <= 0:
        return []
    keys = []
    for key in partitions_with_frames(analysis_db):
        if KEY_SEP in key and TIME_PARTITIONS.has_partition_key(split_key(key)[1]):
            keys.append(key)
        if len(keys) == limit:
            break
    return keys


@dg.asset_sensor(
    asset_key=detector_model.key,
    job=detections_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def new_model_sensor(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry, store: SdrStore):
    """After detector_model promotes a model, re-run detections for the recent windows."""
    mat = asset_event.asset_materialization
    meta = mat.metadata if mat is not None else {}
    version = getattr(meta.get("version"), "value", None)
    promoted = getattr(meta.get("promoted"), "value", False)
    if not version or not promoted:
        yield dg.SkipReason(f"detector_model {version or '?'} was not promoted: detections stay as they are.")
        return
    keys = recent_partitions_with_frames(store.paths().analysis_db, redetect_count())
    if not keys:
        yield dg.SkipReason("no windows with spectrograms to re-detect.")
        return
    for key in keys:
        yield dg.RunRequest(run_key=f"{version}:{key}", partition_key=key, tags={"model_version": version})
