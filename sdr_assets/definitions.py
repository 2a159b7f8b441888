"""Wiring: builds the one Dagster ``Definitions`` object (loaded by workspace.yaml)."""

from sdr_assets.defs import build_definitions

defs = build_definitions()
