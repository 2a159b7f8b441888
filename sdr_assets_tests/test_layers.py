"""The core (dsp, capture, store) must load without dagster, torch or ultralytics."""

import json
import pkgutil
import subprocess
import sys

import sdr_assets

CORE = ("dsp", "capture", "store", "replica")


def _core_modules() -> list[str]:
    names = ["sdr_assets", "sdr_assets.records", "sdr_assets.errors", "sdr_assets.paths", "sdr_assets.sysmetrics"]
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


# Which of the package's parts each part may import (DESIGN.md: dsp <- capture, store, ml <- defs).
_ALLOWED = {
    "dsp": set(),
    "capture": {"dsp", "store"},
    "store": {"dsp"},
    "ml": {"dsp", "store"},
    "replica": {"store"},  # S3 copies of snapshots (boto3, lazily)
}
_SHARED = {"records", "errors", "paths", "sysmetrics"}


def _imports(path) -> set[str]:
    import ast

    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def test_parts_import_only_downwards_and_never_dagster():
    from pathlib import Path

    root = Path(sdr_assets.__path__[0])
    bad = []
    for part, allowed in _ALLOWED.items():
        for f in (root / part).rglob("*.py"):
            for mod in _imports(f):
                top = mod.split(".")
                if top[0] == "dagster" or top[0].startswith("dagster_"):
                    bad.append(f"{f.relative_to(root)} imports {mod}")
                if top[0] == "sdr_assets" and len(top) > 1:
                    target = top[1]
                    if target not in _SHARED and target != part and target not in allowed:
                        bad.append(f"{f.relative_to(root)} imports {mod}")
    assert bad == []
