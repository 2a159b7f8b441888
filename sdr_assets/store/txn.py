"""The one transaction helper of every writer: BEGIN IMMEDIATE ... COMMIT, with errors that say what to do."""

import errno
import shutil
import sqlite3
from pathlib import Path

from sdr_assets.errors import StoreError


class Txn:
    """``with Txn(conn, what, path):`` BEGIN IMMEDIATE ... COMMIT, ROLLBACK on error.

    Inside a transaction the caller already holds, a SAVEPOINT instead (rolled back on its own
    on error, the outer transaction goes on). sqlite3 errors become StoreError naming ``what``
    and ``path``; ``wrap_errors=False`` lets them through unchanged for a caller that tells a
    corrupt file or a full disk apart itself.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        what: str,
        path: Path | str,
        *,
        wrap_errors: bool = True,
        disk_full_fix: str = "",
    ):
        self.conn, self.what, self.path, self.wrap_errors = conn, what, path, wrap_errors
        self.disk_full_fix = disk_full_fix
        self.nested = False

    def __enter__(self) -> "Txn":
        self.nested = self.conn.in_transaction
        try:
            self.conn.execute("SAVEPOINT txn" if self.nested else "BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            if not self.wrap_errors:
                raise
            raise store_error(self.path, self.what, exc, self.disk_full_fix) from exc
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            try:
                self.conn.execute("RELEASE txn" if self.nested else "COMMIT")
                return False
            except sqlite3.Error as err:
                exc = err
        if self.nested:
            self.conn.execute("ROLLBACK TO txn")
            self.conn.execute("RELEASE txn")
        elif self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error) and self.wrap_errors:
            raise store_error(self.path, self.what, exc, self.disk_full_fix) from exc
        if isinstance(exc, OverflowError):  # an int bound to a statement beyond 64 bits
            raise StoreError(
                f"{self.path}: {self.what} failed: a time or count does not fit a "
                f"64-bit SQLite integer ({exc}); nothing of it was stored. Times must "
                "lie in 1970-01-01 .. 2262-04-11 UTC: check the source's times."
            ) from exc
        if exc_type is None:  # COMMIT itself failed
            raise exc
        return False


def store_error(path: Path | str, what: str, exc: sqlite3.Error, disk_full_fix: str = "") -> StoreError:
    """``what`` failed on the DB at ``path``: the StoreError that says what to do;
    ``disk_full_fix`` adds a remedy of the caller's to the disk-full hint."""
    msg = str(exc)
    if is_disk_full(exc):
        hint = disk_full_hint(path) + (f", or {disk_full_fix}" if disk_full_fix else "")
    elif "locked" in msg or "busy" in msg:
        hint = (
            f"another process holds the write lock on {Path(path).name}: only one writer may write it "
            "(the capture service writes the hot DB)"
        )
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
    return f"disk full: {folder} has {free_space(folder)}; free space there or point SDR_ASSETS_HOME at a larger disk"


def free_space(folder: Path | str) -> str:
    """'12.3 MB free' on the filesystem holding ``folder``."""
    try:
        return f"{shutil.disk_usage(folder).free / 1e6:.1f} MB free"
    except OSError:
        return "no free space that can be read"
