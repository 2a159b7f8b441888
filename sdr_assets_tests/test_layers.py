"""The core (dsp, capture, store) must load without dagster, torch or ultralytics; imports go
one way (DESIGN.md), only store/ speaks SQL, and no module imports itself round a cycle."""

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import sdr_assets

CORE = ("dsp", "sigmf", "capture", "store", "decode", "replica")


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


# Which of the package's parts each part may import (DESIGN.md: dsp <- capture, store, decode, ml <- defs).
_ALLOWED = {
    "dsp": set(),
    # the SigMF format (read, write, one version; dsp for the cu8 conversion) and export.py, a
    # window of the analysis DB as SigMF (read through store/)
    "sigmf": {"dsp", "store"},
    "capture": {"dsp", "store", "sigmf"},
    "store": {"dsp"},
    "ml": {"dsp", "store"},
    "decode": {"dsp", "store"},
    # the HTTP API reads through store/ and writes SigMF through sigmf/export.py; never dagster
    "api": {"store", "decode", "sigmf"},
    "replica": {"store"},  # S3 copies of snapshots (boto3, lazily)
}
_SHARED = {"records", "errors", "paths"}


def _imports(path, with_names: bool = False) -> set[str]:
    """Every module ``path`` imports, at module level or inside a function; ``with_names`` adds
    ``module.name`` for each ``from module import name`` (a name may be a submodule)."""
    import ast

    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            if with_names:
                out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def _package_modules() -> dict:
    """{dotted module name: path} of every module of the sdr_assets package."""
    from pathlib import Path

    root = Path(sdr_assets.__path__[0])
    mods = {}
    for f in root.rglob("*.py"):
        parts = ("sdr_assets",) + f.relative_to(root).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return mods


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


def test_only_store_imports_sqlite3():
    """store/ is the one part that knows SQL and the schemas; every other module gets records."""
    bad = [
        name
        for name, f in _package_modules().items()
        if not name.startswith("sdr_assets.store.") and "sqlite3" in {m.split(".")[0] for m in _imports(f)}
    ]
    assert bad == []


def test_defs_never_import_the_wiring_or_the_cli():
    """defs/ sits below definitions.py and the CLI: it never imports them (not even lazily)."""
    above = ("sdr_assets.definitions", "sdr_assets.cli", "sdr_assets.cli.sensors")
    bad = [
        f"{name} imports {mod}"
        for name, f in _package_modules().items()
        if name.startswith("sdr_assets.defs")
        for mod in _imports(f)
        if mod in above or mod.startswith(tuple(a + "." for a in above))
    ]
    assert bad == []


def test_no_import_cycle():
    """No module of the package reaches itself through its imports (lazy imports included)."""
    mods = _package_modules()
    graph = {
        name: {m for m in _imports(f, with_names=True) if m in mods and m != name and not name.startswith(m + ".")}
        for name, f in mods.items()
    }  # a package's own __init__ is no cycle
    cycles, index, low, stack, on_stack = [], {}, {}, [], set()

    def visit(v):  # Tarjan: strongly connected components of more than one module are cycles
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert cycles == []


def test_the_package_root_holds_only_the_wiring_and_the_shared_vocabulary():
    """Every module lives in its part; at the root only what all parts share."""
    root = Path(sdr_assets.__path__[0])
    loose = sorted(p.name for p in root.glob("*.py"))
    assert loose == ["__init__.py", "definitions.py", "errors.py", "paths.py", "records.py"], loose
