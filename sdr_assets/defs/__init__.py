"""Dagster only: resources, assets, checks, jobs, schedules and sensors."""

import dagster as dg


def build_definitions() -> dg.Definitions:
    """Assemble assets, checks, jobs, schedules, sensors and resources."""
    return dg.Definitions(assets=[], resources={})
