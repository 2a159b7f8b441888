"""Metrics from any process, through a queue and one writer thread, plus queries.

``MetricsLogger`` is for processes other than the capture service (training, inference,
...): ``log()`` only puts on a bounded queue (never blocks; a full queue counts the drop),
a background thread batches rows into the DB's ``telemetry`` table with ``BEGIN IMMEDIATE``.
Point it at ``analysis.db`` (or any DB with a telemetry table but the hot DB, which it
refuses): the capture service logs its own figures through ``HotWriter.write_batch`` so the
hot DB keeps a single writer. The query helpers work on any of them.
"""

import logging
import queue
import sqlite3
import threading
import time
from collections import namedtuple
from dataclasses import dataclass, fields
from pathlib import Path

from sdr_assets.errors import ConfigError, StoreError
from sdr_assets.records import samples_to_ns
from sdr_assets.store.db import HOT_APP_ID, connect_ro, connect_rw, file_bytes, reading
from sdr_assets.store.txn import Txn

log = logging.getLogger(__name__)

StatsRow = namedtuple("StatsRow", "key metric count min avg max")
_FLUSH = object()
_STOP = object()


def _has_telemetry(conn: sqlite3.Connection) -> bool:
    return bool(conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='telemetry'").fetchone())


class MetricsLogger:
    """Log ``(metric, value)`` rows for one process into ``db_path``'s telemetry table."""

    def __init__(self, db_path, process: str, capture_id: int | None = None,
                 flush_interval_s: float = 1.0, max_queue: int = 100_000):
        if not process:
            raise ConfigError("MetricsLogger needs a process name, e.g. 'training'.")
        self.db_path = Path(db_path)
        self.process = process
        self.capture_id = capture_id
        self.flush_interval_s = flush_interval_s
        self.n_dropped = 0
        self.n_written = 0
        conn = connect_ro(self.db_path)  # fail here, in the caller, not in the thread
        try:
            ok = _has_telemetry(conn)
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        finally:
            conn.close()
        if app_id == HOT_APP_ID:
            raise StoreError(
                f"{self.db_path} is the hot DB: only the capture service writes it (a second writer "
                "risks SQLite's WAL-reset bug and slows the capture). Log to analysis.db instead."
            )
        if not ok:
            raise StoreError(
                f"{self.db_path} has no telemetry table; open it once with AnalysisDB(path).open() "
                "(or point the logger at analysis.db)."
            )
        self._q: queue.Queue = queue.Queue(maxsize=max_queue)
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"metrics-{process}", daemon=True)
        self._thread.start()

    def log(self, metric: str, value: float, t_ns: int | None = None) -> None:
        """Queue one value; never blocks (drops and counts when the queue is full)."""
        if self._closed:
            raise StoreError(f"MetricsLogger({self.process}) is closed; create a new one.")
        try:
            self._q.put_nowait((time.time_ns() if t_ns is None else int(t_ns), metric, float(value)))
        except queue.Full:
            self.n_dropped += 1

    def flush(self, timeout_s: float = 30.0) -> None:
        """Block until everything logged before this call is committed."""
        self._raise_if_failed()
        done = threading.Event()
        self._q.put((_FLUSH, done), timeout=timeout_s)
        if not done.wait(timeout_s):
            raise StoreError(f"telemetry flush to {self.db_path} took over {timeout_s} s; is the DB locked?")
        self._raise_if_failed()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._q.put(_STOP)
        self._thread.join(timeout=60)
        self._raise_if_failed()

    def __enter__(self) -> "MetricsLogger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise StoreError(f"telemetry writer for {self.db_path} failed: {self._error}") from self._error

    def _run(self) -> None:
        conn = None
        try:
            conn = connect_rw(self.db_path, cache_size_kib=512)
            stop = False
            while not stop:
                rows, events = [], []
                try:
                    item = self._q.get(timeout=self.flush_interval_s)
                except queue.Empty:
                    continue
                deadline = time.monotonic() + 0.05
                while True:
                    if item is _STOP:
                        stop = True
                    elif isinstance(item, tuple) and item[0] is _FLUSH:
                        events.append(item[1])
                    else:
                        rows.append(item)
                    if stop or time.monotonic() > deadline:
                        break
                    try:
                        item = self._q.get_nowait()
                    except queue.Empty:
                        break
                self._write(conn, rows)
                for ev in events:
                    ev.set()
        except BaseException as exc:  # surfaced to the caller by flush()/close()
            self._error = exc
            log.error("telemetry writer for %s stopped: %s", self.db_path, exc)
            self._drain_events()
        finally:
            if conn is not None:
                conn.close()

    def _drain_events(self) -> None:
        while True:
            try:
                item = self._q.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, tuple) and item[0] is _FLUSH:
                item[1].set()

    def _write(self, conn: sqlite3.Connection, rows: list) -> None:
        if self.n_dropped:
            rows.append((time.time_ns(), "telemetry_dropped", float(self.n_dropped)))
        if not rows:
            return
        with Txn(conn, "telemetry write", self.db_path):
            conn.executemany(
                "INSERT INTO telemetry (t_ns, capture_id, process, metric, value) VALUES (?, ?, ?, ?, ?)",
                [(t, self.capture_id, self.process, m, v) for t, m, v in rows],
            )
        self.n_written += len(rows)


# -- queries (any DB with a telemetry table) ----------------------------------------------
def latest(conn: sqlite3.Connection, process: str | None = None) -> dict[str, tuple[int, float]]:
    """{metric: (t_ns, value)} of the newest row per metric (optionally of one process)."""
    sql = "SELECT metric, max(t_ns), value FROM telemetry"
    args: tuple = ()
    if process is not None:
        sql, args = sql + " WHERE process = ?", (process,)
    return {m: (t, v) for m, t, v in conn.execute(sql + " GROUP BY metric", args)}


def history(conn: sqlite3.Connection, metric: str, since_ns: int | None = None,
            process: str | None = None) -> list[tuple[int, float]]:
    """[(t_ns, value)] of one metric in time order."""
    sql, args = "SELECT t_ns, value FROM telemetry WHERE metric = ?", [metric]
    if since_ns is not None:
        sql += " AND t_ns >= ?"
        args.append(int(since_ns))
    if process is not None:
        sql += " AND process = ?"
        args.append(process)
    return [tuple(r) for r in conn.execute(sql + " ORDER BY t_ns", args)]


def stats(conn: sqlite3.Connection, by: str = "capture") -> list[StatsRow]:
    """Per capture_id (or per UTC hour, '2026-11-23T14:00Z') and metric: count, min, avg, max."""
    if by == "capture":
        key = "capture_id"
    elif by == "hour":
        key = "strftime('%Y-%m-%dT%H:00Z', t_ns / 1000000000, 'unixepoch')"
    else:
        raise ConfigError(f"stats(by={by!r}): use 'capture' or 'hour'.")
    sql = (f"SELECT {key} AS k, metric, count(*), min(value), avg(value), max(value) "
           "FROM telemetry GROUP BY k, metric ORDER BY k, metric")
    return [StatsRow(*r) for r in conn.execute(sql)]


def telemetry_stats(db_path, by: str = "capture") -> list[StatsRow]:
    """:func:`stats` of the DB at ``db_path``, through a short read-only connection."""
    with reading(db_path):
        conn = connect_ro(db_path)
        try:
            return stats(conn, by=by)
        finally:
            conn.close()


@dataclass(frozen=True)
class CaptureRow:
    """One run of the capture service, as the hot DB's ``captures`` table records it."""

    capture_id: int
    source_uri: str
    source_kind: str
    center_freq_hz: float
    sample_rate_hz: float
    gain_db: float | None  # None: automatic gain
    started_ns: int
    ended_ns: int | None  # None while running or after a crash
    end_reason: str | None


@dataclass(frozen=True)
class GapSummary:
    cause: str
    n_gaps: int
    n_samples_lost: int


@dataclass(frozen=True)
class CaptureStatus:
    capture: CaptureRow
    metrics: dict[str, tuple[int, float]]  # metric -> (t_ns, value), the newest since it started
    gaps: tuple[GapSummary, ...]  # its recorded losses, per cause


def newest_capture(hot_path) -> CaptureStatus | None:
    """The newest capture of a hot DB, its latest telemetry and its gaps, in one short
    read-only transaction (safe beside the running writer); None when none has run."""
    if not Path(hot_path).exists():
        return None
    with reading(hot_path):
        return _newest_capture(hot_path)


def _newest_capture(hot_path) -> CaptureStatus | None:
    cols = ", ".join(f.name for f in fields(CaptureRow))
    conn = connect_ro(hot_path)
    try:
        conn.execute("BEGIN")  # one consistent, short read
        has = conn.execute("SELECT 1 FROM sqlite_master WHERE name='captures'").fetchone()
        row = conn.execute(f"SELECT {cols} FROM captures ORDER BY capture_id DESC LIMIT 1").fetchone() if has else None
        if row is None:
            return None
        cap = CaptureRow(*row)
        metrics = {m: tv for m, tv in latest(conn, process="capture").items() if tv[0] >= cap.started_ns}
        gaps = tuple(GapSummary(*g) for g in conn.execute(
            "SELECT cause, count(*), sum(n_samples_lost) FROM gaps WHERE capture_id = ? GROUP BY cause",
            (cap.capture_id,)))
        conn.execute("COMMIT")
    finally:
        conn.close()
    return CaptureStatus(cap, metrics, gaps)


def database_stats(path) -> dict:
    """File, page and row figures of any of our DBs (short read-only transaction)."""
    with reading(path):
        return _database_stats(Path(path))


def _database_stats(path: Path) -> dict:
    conn = connect_ro(path)
    try:
        conn.execute("BEGIN")
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        page_count = conn.execute("PRAGMA page_count").fetchone()[0]
        freelist = conn.execute("PRAGMA freelist_count").fetchone()[0]
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        rows = {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
        oldest = newest = None
        if "chunks" in tables:
            oldest = conn.execute("SELECT min(t_start_ns) FROM chunks").fetchone()[0]
            last = conn.execute(
                "SELECT t_start_ns, n_samples, sample_rate_hz FROM chunks ORDER BY seq DESC LIMIT 1").fetchone()
            if last:
                newest = last[0] + samples_to_ns(last[1], last[2])
        conn.execute("COMMIT")
    finally:
        conn.close()
    return {
        "path": str(path),
        "file_bytes": file_bytes(path),
        "wal_bytes": file_bytes(f"{path}-wal"),
        "page_size": page_size,
        "page_count": page_count,
        "freelist_count": freelist,
        "used_bytes": (page_count - freelist) * page_size,
        "rows": rows,
        "oldest_chunk_t_start_ns": oldest,
        "newest_chunk_t_end_ns": newest,
    }
