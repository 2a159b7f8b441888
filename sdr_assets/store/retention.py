"""Retention of the folders under the data root that grow with every partition or training.

- ``reports/``: only the reports of partitions the analysis DB still holds
  (its circular buffer, ``keep_partitions``) are kept; :func:`prune_reports`.
- ``models/<version>/``: the current model and the newest ``keep`` trainings;
  :func:`prune_models`. The registry rows stay (metrics, lineage): only the files go.
- ``datasets/<version>/``: the datasets of the newest ``keep`` trainings; :func:`prune_datasets`.

A folder under ``models/`` or ``datasets/`` that no registry row names (a training that
failed before it registered) is removed only when nothing in it is newer than ``idle_before_ns``
(the start of the training that prunes), so a training still writing is never touched.

Every function returns what it removed (files, and the bytes that left the disk: a hard link,
as the datasets' images are, frees its bytes only when it is the file's last link).
"""

import os
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from sdr_assets.errors import ConfigError, StoreError
from sdr_assets.store import registry
from sdr_assets.store.sensors import key_slug


@dataclass
class Removed:
    """What a prune deleted: files, the bytes freed on disk, and the top-level entries it removed."""

    files: int = 0
    bytes_freed: int = 0
    entries: list[str] = field(default_factory=list)

    def add(self, other: "Removed") -> "Removed":
        self.files += other.files
        self.bytes_freed += other.bytes_freed
        self.entries.extend(other.entries)
        return self


def remove_tree(path: Path) -> Removed:
    """Delete a file or a folder tree, counting its files and the bytes that leave the disk."""
    path = Path(path)
    out = Removed(entries=[path.name])
    if path.is_file() or path.is_symlink():
        out.files, out.bytes_freed = 1, _freed(path)
        path.unlink()
        return out
    if not path.is_dir():
        return Removed()
    for dirpath, _, names in os.walk(path):
        for name in names:
            f = Path(dirpath) / name
            out.files += 1
            out.bytes_freed += _freed(f)
    try:
        shutil.rmtree(path)
    except OSError as exc:
        raise StoreError(
            f"cannot delete {path} ({exc.strerror}); check its permissions, then materialise again."
        ) from exc
    return out


def _freed(f: Path) -> int:
    st = f.lstat()
    return st.st_size if st.st_nlink <= 1 else 0


def _newest_mtime_ns(path: Path) -> int:
    newest = path.lstat().st_mtime_ns
    for dirpath, dirs, names in os.walk(path):
        for name in dirs + names:
            newest = max(newest, (Path(dirpath) / name).lstat().st_mtime_ns)
    return newest


def _remove_empty_dirs(folder: Path, keep: set[str]) -> None:
    """Remove empty folders under ``folder``, deepest first, except those named in ``keep``
    (relative paths): an asset may have just made one to write into."""
    for dirpath, _, _ in sorted(os.walk(folder), key=lambda w: len(w[0]), reverse=True):
        d = Path(dirpath)
        if d != folder and d.relative_to(folder).as_posix() not in keep and not any(d.iterdir()):
            d.rmdir()


# ---- reports/ -------------------------------------------------------------------------------
def prune_reports(reports_dir: Path, held_keys) -> Removed:
    """Delete every file under ``reports_dir`` that belongs to no partition in ``held_keys``.

    A partition's reports are ``<slug>.png`` (detection_report) and ``<slug>/*`` (partition_plots),
    where ``<slug>`` is :func:`key_slug` of its key (``default/2026-11-23-0400``): a file is kept
    when its path less the suffix, or one of its folders, is a held partition's slug.
    """
    reports_dir = Path(reports_dir)
    if not reports_dir.is_dir():
        return Removed()
    held = {key_slug(k) for k in held_keys}
    out = Removed()
    for dirpath, _, names in os.walk(reports_dir):
        for name in names:
            f = Path(dirpath) / name
            rel = f.relative_to(reports_dir)
            owners = {rel.with_suffix("").as_posix()} | {p.as_posix() for p in rel.parents}
            if not owners & held:
                removed = remove_tree(f)
                removed.entries = [rel.as_posix()]
                out.add(removed)
    _remove_empty_dirs(reports_dir, held | {p.as_posix() for k in held for p in Path(k).parents})
    return out


# ---- models/ and datasets/ ------------------------------------------------------------------
def check_keep(name: str, keep: int) -> None:
    if keep < 0:
        raise ConfigError(f"{name}={keep}: must be >= 0 (how many recent trainings to keep).")


def prune_versions(folder: Path, newest_first: list[str], keep: int, protect: set[str], idle_before_ns: int) -> Removed:
    """Delete ``folder/<version>`` for registered versions beyond the newest ``keep`` (and not
    in ``protect``), and unregistered ones idle since before ``idle_before_ns``."""
    folder = Path(folder)
    if not folder.is_dir():
        return Removed()
    registered = set(newest_first)
    kept = set(newest_first[:keep]) | set(protect)
    out = Removed()
    for entry in sorted(folder.iterdir()):
        if entry.name in kept:
            continue
        if entry.name in registered or _newest_mtime_ns(entry) < idle_before_ns:
            out.add(remove_tree(entry))
    return out


def _versions_newest_first(conn: sqlite3.Connection | Path) -> list[registry.ModelRow]:
    return list(reversed(registry.list_models(conn)))


def prune_models(conn: sqlite3.Connection | Path, models_dir: Path, keep: int, idle_before_ns: int) -> Removed:
    """Keep the current model's folder and the newest ``keep`` trainings' under ``models_dir``."""
    check_keep("keep_models", keep)
    rows = _versions_newest_first(conn)
    protect = {r.version for r in rows if r.is_current}
    current = next((r for r in rows if r.is_current), None)
    models_dir = Path(models_dir)
    if current is not None:  # also whatever folder its weights lie in, whatever its name
        for p in (current.path, current.onnx_path):
            if p and Path(p).resolve().is_relative_to(models_dir.resolve()):
                protect.add(Path(p).resolve().relative_to(models_dir.resolve()).parts[0])
    return prune_versions(models_dir, [r.version for r in rows], keep, protect, idle_before_ns)


def prune_datasets(conn: sqlite3.Connection | Path, datasets_dir: Path, keep: int, idle_before_ns: int) -> Removed:
    """Keep the datasets of the newest ``keep`` trainings under ``datasets_dir``."""
    check_keep("keep_datasets", keep)
    rows = _versions_newest_first(conn)
    return prune_versions(datasets_dir, [r.version for r in rows], keep, set(), idle_before_ns)
