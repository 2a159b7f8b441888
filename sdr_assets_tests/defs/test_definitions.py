import subprocess
import sys
from pathlib import Path

import dagster as dg

REPO = Path(__file__).resolve().parents[2]


def test_definitions_load():
    from sdr_assets.definitions import defs

    assert isinstance(defs, dg.Definitions)
    defs.get_repository_def().load_all_definitions()


def test_workspace_validates(data_root, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(data_root))
    dagster = Path(sys.executable).parent / "dagster"
    out = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
