"""Output files a user names (a plot, a SigMF export, evaluation results).

Each is written under a temporary name beside it (``NAME.tmp``) and renamed into place only by
:meth:`OutputFiles.commit`, all of them together: a failed run (a read-only folder, a full disk,
a bad input found halfway) leaves no half-written file and never empties or replaces an earlier
one. Every ``OSError`` becomes one :class:`StoreError` that names the path and what to do.
"""

import contextlib
import os
from pathlib import Path

from sdr_assets.errors import StoreError
from sdr_assets.store.txn import free_space, is_disk_full


def output_error(path: Path, flag: str, exc: OSError) -> StoreError:
    """What went wrong writing ``path`` (given with ``flag``), in one line."""
    path = Path(path)
    if is_disk_full(exc):
        return StoreError(
            f"cannot write {path}: the disk is full ({free_space(_existing_ancestor(path))} "
            f"there); free space or pass another {flag}."
        )
    ancestor = _existing_ancestor(path.parent)
    if not ancestor.is_dir():
        return StoreError(f"cannot write {path}: {ancestor} is a file, not a folder; pass another {flag}.")
    return StoreError(f"cannot write {path} ({exc.strerror or exc}); pass a {flag} in a writable folder.")


def _existing_ancestor(path: Path) -> Path:
    for p in (path, *path.parents):
        if p.exists():
            return p
    return Path("/")


class OutputFiles:
    """``with OutputFiles("--out") as out: fh = out.open(path); ...; out.commit()``: see the
    module doc. Leaving the block without :meth:`commit` (an error) removes the temporaries."""

    def __init__(self, flag: str) -> None:
        self.flag = flag
        self._pending: list[tuple[Path, Path]] = []  # (temporary, final)
        self._current: Path | None = None

    def __enter__(self) -> "OutputFiles":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            return False
        self.discard()
        if isinstance(exc, OSError) and self._current is not None:
            raise output_error(self._current, self.flag, exc) from None
        return False

    def open(self, path: Path | str, mode: str = "wb"):
        """A file handle on ``path``'s temporary (its folder created); close it before commit."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        self._current = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(tmp, mode)
        except OSError as exc:
            raise output_error(path, self.flag, exc) from None
        self._pending.append((tmp, path))
        return fh

    def write(self, path: Path | str, data: bytes | str) -> None:
        with self.open(path, "wb" if isinstance(data, bytes | bytearray) else "w") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    def commit(self) -> None:
        """Rename every temporary into place (each rename is atomic)."""
        for tmp, final in self._pending:
            self._current = final
            os.replace(tmp, final)
        self._pending = []

    def discard(self) -> None:
        for tmp, _ in self._pending:
            with contextlib.suppress(OSError):  # gone already, or the folder went read-only
                tmp.unlink()
        self._pending = []


def write_output(path: Path | str, data: bytes | str, flag: str) -> Path:
    """Write one output file atomically (see :class:`OutputFiles`); returns its path."""
    with OutputFiles(flag) as out:
        out.write(path, data)
        out.commit()
    return Path(path)
