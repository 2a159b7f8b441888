"""BEGIN IMMEDIATE ... COMMIT for a single writer, with errors that say what to do."""

import errno
import shutil
import sqlite3
from pathlib import Path

from sdr_assets.errors import StoreError


class Txn:
    """BEGIN IMMEDIATE ... COMMIT, ROLLBACK on error; sqlite3 errors become StoreError."""

    def __init__(self, conn: sqlite3.Connection, what: str, path: Path):
        self.conn, self.what, self.path = conn, what, path

    def __enter__(self):
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise store_error(self.path, self.what, exc) from exc
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            try:
                self.conn.execute("COMMIT")
                return False
            except sqlite3.Error as err:
                exc = err
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise store_error(self.path, self.what, exc) from exc
        if isinstance(exc, OverflowError):  # an int bound to a statement beyond 64 bits
            raise StoreError(f"{self.path}: {self.what} failed: a time or count does not fit a "
                             f"64-bit SQLite integer ({exc}); nothing of it was stored. Times must "
                             "lie in 1970-01-01 .. 2262-04-11 UTC: check the source's times.") from exc
        return False


def store_error(path: Path, what: str, exc: sqlite3.Error) -> StoreError:
    msg = str(exc)
    if is_disk_full(exc):
        hint = (f"{disk_full_hint(path)}, or lower --cap-bytes so hot.db and its WAL (up to 64 MiB "
                "more) fit in the space there")
    elif "locked" in msg or "busy" in msg:
        hint = "another process holds the write lock on the hot DB: only the capture service may write it"
    else:
        hint = "check the disk and the file; the batch was rolled back"
    return StoreError(f"{path}: {what} failed ({msg}); {hint}.")


def is_disk_full(exc: BaseException) -> bool:
    """SQLite's SQLITE_FULL ("database or disk is full") or an OSError ENOSPC/EDQUOT."""
    if isinstance(exc, sqlite3.Error):
        return (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF == 13 or "disk is full" in str(exc)
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def disk_full_hint(path: Path | str) -> str:
    """'disk full: FOLDER has N MB free; free space there or ...' for the folder holding path."""
    folder = Path(path)
    if not folder.is_dir():
        folder = folder.parent
    return (f"disk full: {folder} has {free_space(folder)}; free space there or point "
            "SDR_ASSETS_HOME at a larger disk")


def free_space(folder: Path | str) -> str:
    """'12.3 MB free' on the filesystem holding ``folder``."""
    try:
        return f"{shutil.disk_usage(folder).free / 1e6:.1f} MB free"
    except OSError:
        return "no free space that can be read"
