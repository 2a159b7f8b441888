"""The database-stats view: per table its row count, oldest and newest record, and bytes.

One short read-only transaction. A table's time is its first column of :data:`TIME_COLUMNS`
(``t_ns`` for telemetry, ``t_start_ns`` for chunks, ...). Bytes are the pages of the table
and its indexes from SQLite's ``dbstat``, except for the table of IQ blobs (``iq`` column):
dbstat would read every overflow page, gigabytes of the hot DB, while the capture writes, so
its bytes are the pages in use less every other b-tree's (exact), or, where a DB had two such
tables, computed from the blob lengths (``store.hot.chunk_pages``).
"""

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from sdr_assets.errors import StoreError
from sdr_assets.store.db import connect_ro, file_bytes
from sdr_assets.store.hot import chunk_pages

TIME_COLUMNS = ("t_ns", "t_start_ns", "started_ns", "created_ns", "registered_ns")


@dataclass(frozen=True)
class TableStats:
    name: str
    rows: int
    time_column: str | None
    oldest_ns: int | None
    newest_ns: int | None
    bytes: int  # the table and its indexes


@dataclass
class DatabaseView:
    path: Path
    file_bytes: int
    wal_bytes: int
    page_size: int
    free_bytes: int  # pages on the freelist (reused before the file grows)
    tables: list[TableStats] = field(default_factory=list)


def _btree_bytes(conn: sqlite3.Connection, names: list[str]) -> dict[str, int]:
    """{name: bytes} of the named b-trees (dbstat walks only those)."""
    if not names:
        return {}
    marks = ", ".join("?" * len(names))
    return {
        n: int(b)
        for n, b in conn.execute(f"SELECT name, sum(pgsize) FROM dbstat WHERE name IN ({marks}) GROUP BY name", names)
    }


def database_view(path) -> DatabaseView:
    """The view of one of our databases (hot, analysis, a snapshot)."""
    path = Path(path)
    if not path.exists():
        raise StoreError(f"{path} does not exist; nothing to show (start a capture or materialise first).")
    conn = connect_ro(path)
    try:
        conn.execute("BEGIN")
        view = _view(conn, path)
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the figures of {path}: {exc}") from exc
    finally:
        conn.close()
    return view


def _view(conn: sqlite3.Connection, path: Path) -> DatabaseView:
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    used = (
        conn.execute("PRAGMA page_count").fetchone()[0] - conn.execute("PRAGMA freelist_count").fetchone()[0]
    ) * page_size
    free = conn.execute("PRAGMA freelist_count").fetchone()[0] * page_size
    objects = conn.execute(
        "SELECT type, name, tbl_name FROM sqlite_master "
        "WHERE type IN ('table', 'index') AND name NOT LIKE 'sqlite_stat%'"
    ).fetchall()
    tables = sorted(n for t, n, _ in objects if t == "table" and not n.startswith("sqlite_"))
    blob = [n for n in tables if "iq" in _columns(conn, n)]
    sizes = _btree_bytes(conn, ["sqlite_schema"] + [n for _, n, _ in objects if n not in blob])
    if len(blob) == 1:  # exact: what is in use and not in any other b-tree
        sizes[blob[0]] = used - sum(sizes.values())
    else:
        for name in blob:
            pages = sum(chunk_pages(n, page_size) for (n,) in conn.execute(f'SELECT length(iq) FROM "{name}"'))
            sizes[name] = int(pages * page_size)
    out = []
    for name in tables:
        own = [name] + [n for t, n, tbl in objects if t == "index" and tbl == name]
        out.append(_table(conn, name, sum(sizes.get(n, 0) for n in own)))
    return DatabaseView(path, file_bytes(path), file_bytes(f"{path}-wal"), page_size, free, out)


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]


def _table(conn: sqlite3.Connection, name: str, n_bytes: int) -> TableStats:
    rows = conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
    tcol = next((c for c in TIME_COLUMNS if c in _columns(conn, name)), None)
    oldest = newest = None
    if tcol is not None:
        oldest, newest = conn.execute(f'SELECT min("{tcol}"), max("{tcol}") FROM "{name}"').fetchone()
    return TableStats(name, rows, tcol, oldest, newest, n_bytes)
