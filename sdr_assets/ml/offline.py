"""Ultralytics, fully offline. Call :func:`ensure_offline` before ultralytics is imported.

Nothing may be downloaded at run time: settings sync off, no auto-install, a local font in
place of the Arial download, and config folders under the data root.
"""

import os
import shutil
from pathlib import Path

from sdr_assets.paths import data_root

_DONE = False


def ensure_offline(root: Path | None = None) -> Path:
    """Set the offline environment and settings once per process; return YOLO_CONFIG_DIR."""
    global _DONE
    root = root or data_root()
    cfg = Path(os.environ.get("YOLO_CONFIG_DIR") or (root / "config" / "ultralytics"))
    os.environ["YOLO_CONFIG_DIR"] = str(cfg)
    os.environ.setdefault("MPLCONFIGDIR", str(root / "config" / "matplotlib"))
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "false"
    os.environ.setdefault("YOLO_VERBOSE", "false")
    font_dir = cfg / "Ultralytics"
    font_dir.mkdir(parents=True, exist_ok=True)
    Path(os.environ["MPLCONFIGDIR"]).mkdir(parents=True, exist_ok=True)
    font = font_dir / "Arial.ttf"
    if not font.exists():
        import matplotlib

        src = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        shutil.copyfile(src, font)
        # Some ultralytics code paths ask for the Unicode font too.
        shutil.copyfile(src, font_dir / "Arial.Unicode.ttf")
    if not _DONE:
        from ultralytics import settings  # first import happens here, after the guards

        settings.update({"sync": False})
        _DONE = True
    return cfg
