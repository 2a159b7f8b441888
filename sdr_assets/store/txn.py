"""BEGIN IMMEDIATE ... COMMIT for a single writer, with errors that say what to do."""

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
        return False


def store_error(path: Path, what: str, exc: sqlite3.Error) -> StoreError:
    msg = str(exc)
    if "full" in msg:
        hint = "the disk is full: free space or lower --cap-bytes"
    elif "locked" in msg or "busy" in msg:
        hint = "another process holds the write lock on the hot DB: only the capture service may write it"
    else:
        hint = "check the disk and the file; the batch was rolled back"
    return StoreError(f"{path}: {what} failed ({msg}); {hint}.")
