"""Dagster only: resources, assets, checks, jobs, schedules and sensors."""

import dagster as dg

from sdr_assets.defs.analysis import hot_snapshot, iq_window, spectrograms
from sdr_assets.defs.automation import analysis_job, analysis_schedule, hot_db_sensor
from sdr_assets.defs.decode import decoded_messages, device_inventory
from sdr_assets.defs.detector import detection_report, detections, detector_model, training_labels
from sdr_assets.defs.detector_jobs import detections_job, detector_job, detector_schedule, new_model_sensor
from sdr_assets.defs.executor import build_executor
from sdr_assets.defs.housekeeping import dagster_run_history, housekeeping_job, housekeeping_schedule
from sdr_assets.defs.plots import partition_plots
from sdr_assets.defs.replica import snapshot_replica
from sdr_assets.defs.resources import DecoderSettings, DetectorSettings, SdrStore, SpectrogramSettings


def build_definitions() -> dg.Definitions:
    """Assemble assets, checks, jobs, schedules, sensors and resources."""
    return dg.Definitions(
        assets=[
            hot_snapshot,
            iq_window,
            spectrograms,
            training_labels,
            detector_model,
            detections,
            detection_report,
            partition_plots,
            decoded_messages,
            device_inventory,
            dagster_run_history,
            snapshot_replica,
        ],
        jobs=[analysis_job, detector_job, detections_job, housekeeping_job],
        schedules=[analysis_schedule, detector_schedule, housekeeping_schedule],
        sensors=[hot_db_sensor, new_model_sensor],
        executor=build_executor(),  # SDR_ASSETS_EXECUTOR (README "Production")
        resources={
            "store": SdrStore(),
            "spectrogram": SpectrogramSettings(),
            "detector": DetectorSettings(),
            "decoder": DecoderSettings(),
        },
    )
