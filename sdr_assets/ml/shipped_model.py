"""The detector the project ships, made the current model of a data root that has none.

The files sit in the package, ``sdr_assets/ml/shipped/`` (``$SDR_ASSETS_SHIPPED_MODEL_DIR``
overrides it): ``detector.pt``, ``detector.onnx`` and ``model_card.json`` (at least
``version``, ``classes``, ``imgsz`` and ``metrics_val``), written by ``bench/ship_model.py``.

:func:`ensure_shipped_model` runs where the current model is looked up (the ``detections`` and
``detector_model`` assets, ``sdr-assets evaluate --detector yolo``). While the registry has no
current model and has never held the shipped version, it copies the three files to
``models/<version>/`` (each to a temporary name, then renamed: a reader never sees half a file)
and registers the version as current in one transaction
(``store.registry.register_current_if_none``), so two processes opening one fresh data root
register it once. The registry row points at the copy: the data root does not change when the
package is upgraded, and retention keeps the folder while the model is current.

``SDR_ASSETS_NO_SHIPPED_MODEL=1`` turns it off (``bench/ship_model.py`` trains from scratch; the
test suite sets it and tests the shipped model on its own). Without the files nothing is
registered and the energy detector runs, as before a model exists; the returned note says why.
"""

import json
import os
import secrets
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from sdr_assets.errors import ModelError
from sdr_assets.paths import DataPaths
from sdr_assets.store import registry
from sdr_assets.store.window import AnalysisDB

ENV_DIR = "SDR_ASSETS_SHIPPED_MODEL_DIR"
ENV_OFF = "SDR_ASSETS_NO_SHIPPED_MODEL"
WEIGHTS, ONNX, CARD = "detector.pt", "detector.onnx", "model_card.json"
CARD_KEYS = ("version", "classes", "imgsz", "metrics_val")


@dataclass(frozen=True)
class ShippedModel:
    """What :func:`ensure_shipped_model` found and did."""

    version: str | None  # the shipped version, None when off or missing
    registered: bool  # True when this call made it the current model
    note: str  # why nothing was registered, or what was: for logs and metadata


def shipped_dir() -> Path:
    """Where the shipped files are: ``$SDR_ASSETS_SHIPPED_MODEL_DIR``, else the package folder."""
    raw = os.environ.get(ENV_DIR, "").strip()
    return Path(raw).expanduser() if raw else Path(str(resources.files("sdr_assets.ml").joinpath("shipped")))


def shipped_off() -> bool:
    return os.environ.get(ENV_OFF, "").strip().lower() in ("1", "true", "yes")


def shipped_available() -> bool:
    """Whether :func:`ensure_shipped_model` could register something (not off, files present)."""
    folder = shipped_dir()
    return not shipped_off() and all((folder / n).is_file() for n in (WEIGHTS, ONNX, CARD))


def read_card(folder: Path) -> dict[str, Any]:
    """The model card in ``folder``, checked for the keys the registry needs."""
    path = folder / CARD
    try:
        card = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: cannot read the shipped model card ({exc}); run bench/ship_model.py again.") from exc
    missing = [k for k in CARD_KEYS if k not in card] if isinstance(card, dict) else list(CARD_KEYS)
    if missing:
        raise ModelError(f"{path} lacks {', '.join(missing)}; write the card with bench/ship_model.py --card-only.")
    return card


def card_metrics(card: dict[str, Any]) -> dict[str, float]:
    """The card's validation figures over all classes (``metrics_val["all"]``, else its numbers)."""
    raw = card.get("metrics_val") or {}
    raw = raw.get("all", raw) if isinstance(raw, dict) else {}
    return {k: float(v) for k, v in raw.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def _copy_once(src: Path, dst: Path) -> None:
    """``src`` to ``dst`` through a temporary name (a racing process renames an identical file
    over it, harmlessly); skipped when ``dst`` already has ``src``'s size."""
    if dst.is_file() and dst.stat().st_size == src.stat().st_size:
        return
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        shutil.copyfile(src, tmp)  # not copy2: a fresh mtime, so retention never takes it for idle
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def ensure_shipped_model(db: AnalysisDB, paths: DataPaths) -> ShippedModel:
    """Make the shipped model current in ``db`` when no model is current and the shipped version
    was never registered (module doc); cheap when a model is current (one query)."""
    if registry.current_model(db) is not None:
        return ShippedModel(None, False, "")
    if shipped_off():
        return ShippedModel(None, False, f"{ENV_OFF}=1: the shipped model is not used")
    folder = shipped_dir()
    absent = [n for n in (WEIGHTS, ONNX, CARD) if not (folder / n).is_file()]
    if absent:
        return ShippedModel(None, False, f"no shipped model: {', '.join(absent)} missing in {folder}")
    card = read_card(folder)
    version = str(card["version"])
    if any(m.version == version for m in registry.list_models(db)):
        return ShippedModel(version, False, f"the shipped model {version} was registered before and is not current")
    dest = paths.models / version
    dest.mkdir(parents=True, exist_ok=True)
    for name in (WEIGHTS, ONNX, CARD):
        _copy_once(folder / name, dest / name)
    params = {
        "shipped": True,
        "imgsz": int(card["imgsz"]),
        "model": card.get("architecture", ""),
        "shipped_from": str(folder),
        "model_card": card,
    }
    done = registry.register_current_if_none(
        db, version, dest / WEIGHTS, dest / ONNX, params, card_metrics(card), [str(c) for c in card["classes"]]
    )
    note = f"the shipped model {version} is now the current model" if done else ""
    return ShippedModel(version, done, note)
