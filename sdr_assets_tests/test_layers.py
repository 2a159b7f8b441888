"""The core (dsp, capture, store) must load without dagster, torch or ultralytics."""

import json
import pkgutil
import subprocess
import sys

import sdr_assets

CORE = ("dsp", "capture", "store")


def _core_modules() -> list[str]:
    names = ["sdr_assets", "sdr_assets.records", "sdr_assets.errors", "sdr_assets.paths"]
    for pkg in CORE:
        names.append(f"sdr_assets.{pkg}")
        path = [str(p) for p in sdr_assets.__path__]
        for info in pkgutil.walk_packages([f"{path[0]}/{pkg}"], prefix=f"sdr_assets.{pkg}."):
            names.append(info.name)
    return names


def test_core_imports_without_heavy_frameworks():
    modules = _core_modules()
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted(k for k in ('dagster','torch','ultralytics') if k in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
    assert len(modules) >= 7
