"""Dagster only: resources, assets, checks, jobs, schedules and sensors."""

import dagster as dg

from sdr_assets.defs.analysis import hot_snapshot, iq_window, spectrograms
from sdr_assets.defs.automation import analysis_job, analysis_schedule, hot_db_sensor
from sdr_assets.defs.resources import SdrStore, SpectrogramSettings


def build_definitions() -> dg.Definitions:
    """Assemble assets, checks, jobs, schedules, sensors and resources."""
    return dg.Definitions(
        assets=[hot_snapshot, iq_window, spectrograms],
        jobs=[analysis_job],
        schedules=[analysis_schedule],
        sensors=[hot_db_sensor],
        resources={"store": SdrStore(), "spectrogram": SpectrogramSettings()},
    )
