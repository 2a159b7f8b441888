"""Metrics from any process, through a queue and one writer thread, plus queries.

``MetricsLogger`` is for processes other than the capture service (training, inference,
...): ``log()`` only puts on a bounded queue (never blocks; a full queue counts the drop),
a background thread batches rows into the DB's ``telemetry`` table with ``BEGIN IMMEDIATE``.
Point it at ``analysis.db`` (or any DB with a telemetry table but the hot DB, which it
refuses): the capture service logs its own figures through ``HotWriter.write_batch`` so the
hot DB keeps a single writer. The query helpers work on any of them.
"""

import logging
import math
import queue
import sqlite3
import threading
import time
from collections import namedtuple
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from sdr_assets.errors import ConfigError, StoreError
from sdr_assets.records import NS_PER_S, samples_to_ns
from sdr_assets.store.db import HOT_APP_ID, connect_ro, connect_rw, file_bytes, reading
from sdr_assets.store.txn import Txn, store_error

log = logging.getLogger(__name__)

StatsRow = namedtuple("StatsRow", "key metric count min avg max")
_FLUSH = object()
_STOP = object()
TELEMETRY_BTREES = ("telemetry", "telemetry_t", "telemetry_metric_t")  # the table and its indexes
ENV_CAP_MB = "SDR_ASSETS_TELEMETRY_CAP_MB"
ENV_MAX_AGE_DAYS = "SDR_ASSETS_TELEMETRY_MAX_AGE_DAYS"


# -- the bound ------------------------------------------------------------------------------
@dataclass(frozen=True)
class TelemetryLimits:
    """How much telemetry a database keeps: a size cap (the telemetry table with its indexes)
    and an age limit, enforced every ``prune_interval_s`` by the DB's own writer."""

    cap_bytes: int | None = 500_000_000
    max_age_s: float | None = 90 * 86400.0
    prune_interval_s: float = 300.0
    low_water: float = 0.9  # a prune over the cap goes down to this share of it
    vacuum_min_bytes: int = 64_000_000  # VACUUM after a prune when this much of the file is free
    vacuum_min_fraction: float = 0.25  # ... and at least this share of it (else SQLite reuses it)
    measure_every_s: float = 3600.0  # the bytes-a-row figure (dbstat) is re-measured this often

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "TelemetryLimits":
        """``SDR_ASSETS_TELEMETRY_CAP_MB`` (default 500) and ``SDR_ASSETS_TELEMETRY_MAX_AGE_DAYS``
        (default 90); ``none`` turns either off."""

        def number(name: str, default: float, unit: float) -> float | None:
            raw = environ.get(name, "").strip().lower()
            if raw == "none":
                return None
            try:
                value = float(raw) if raw else default
            except ValueError:
                value = -1.0
            if not (value > 0 and math.isfinite(value)):
                raise ConfigError(f"{name}={raw!r}: give a positive number (or 'none' for no limit).")
            return value * unit

        cap = number(ENV_CAP_MB, 500.0, 1e6)
        return cls(cap_bytes=None if cap is None else int(cap), max_age_s=number(ENV_MAX_AGE_DAYS, 90.0, 86400.0))

    def __post_init__(self) -> None:
        if self.cap_bytes is not None and self.cap_bytes <= 0:
            raise ConfigError(f"telemetry cap {self.cap_bytes} bytes: must be > 0 (or None: no cap).")
        if self.max_age_s is not None and not self.max_age_s > 0:
            raise ConfigError(f"telemetry max age {self.max_age_s} s: must be > 0 (or None: no limit).")
        if not self.prune_interval_s > 0 or not 0 < self.low_water <= 1:
            raise ConfigError("telemetry prune_interval_s must be > 0 and low_water in (0, 1].")


@dataclass
class TelemetryPrune:
    rows_by_age: int
    rows_by_size: int
    rows_left: int
    bytes_before: int  # estimated: rows x measured bytes a row
    bytes_after: int
    seconds: float
    vacuumed: bool = False
    file_bytes_freed: int = 0  # by the VACUUM

    @property
    def rows(self) -> int:
        return self.rows_by_age + self.rows_by_size


def telemetry_bytes(conn: sqlite3.Connection) -> int:
    """Bytes of the telemetry table and its indexes (pages, via SQLite's dbstat table)."""
    names = ", ".join(f"'{n}'" for n in TELEMETRY_BTREES)
    return int(conn.execute(f"SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name IN ({names})").fetchone()[0])


class TelemetryPruner:
    """Keeps one DB's telemetry within :class:`TelemetryLimits`; called by that DB's writer.

    The row count is cheap (an index scan); the bytes a row takes are measured with dbstat
    (which reads every telemetry page) only once per ``measure_every_s``, and only when the
    table could be near the cap. ``vacuum``: False for the hot DB, whose free pages the next
    chunks reuse (a VACUUM there would rewrite gigabytes under the capture)."""

    ROW_BYTES_MAX = 256  # no telemetry row with its index entries is bigger (measured: ~104 B)
    ROW_BYTES_TYPICAL = 104  # 23 capture metrics a second, 64 KiB pages, both indexes (dbstat)

    def __init__(self, limits: TelemetryLimits, *, vacuum: bool, clock=time.monotonic) -> None:
        self.limits = limits
        self.vacuum = vacuum
        self._clock = clock
        self._next = clock()  # the first batch prunes
        self._row_bytes: float | None = None
        self._measured_at = 0.0

    def due(self) -> bool:
        return self._clock() >= self._next

    def prune(self, conn: sqlite3.Connection, path: Path, now_ns: int | None = None) -> TelemetryPrune:
        """One pass in one ``BEGIN IMMEDIATE`` transaction (then VACUUM when it pays)."""
        lim = self.limits
        t0 = time.perf_counter()
        now_ns = time.time_ns() if now_ns is None else now_ns
        self._next = self._clock() + lim.prune_interval_s
        by_age = by_size = 0
        with Txn(conn, "telemetry prune", path):
            newest_ns = conn.execute("SELECT max(t_ns) FROM telemetry").fetchone()[0]
            if lim.max_age_s is not None and newest_ns is not None:
                # counted back from the newest row, as the hot DB's --max-age-s: a replay stamped
                # in the past, or a clock set wrong, never empties the table
                cutoff_ns = min(now_ns, newest_ns) - int(lim.max_age_s * NS_PER_S)
                by_age = conn.execute("DELETE FROM telemetry WHERE t_ns < ?", (cutoff_ns,)).rowcount
            n = conn.execute("SELECT count(*) FROM telemetry").fetchone()[0]
            before = after = int(n * (self._row_bytes or self.ROW_BYTES_TYPICAL))
            if lim.cap_bytes is not None and n * self.ROW_BYTES_MAX > lim.cap_bytes:
                if self._row_bytes is None or self._clock() - self._measured_at > lim.measure_every_s:
                    self._row_bytes = telemetry_bytes(conn) / max(n, 1)
                    self._measured_at = self._clock()
                before = after = int(n * self._row_bytes)
                if before > lim.cap_bytes:
                    keep = int(lim.cap_bytes * lim.low_water / self._row_bytes)
                    by_size = conn.execute(
                        "DELETE FROM telemetry WHERE rowid IN (SELECT rowid FROM telemetry ORDER BY t_ns LIMIT ?)",
                        (n - keep,),
                    ).rowcount
                    after = int((n - by_size) * self._row_bytes)
                    self._row_bytes = None  # re-measure next time: pages were freed
        out = TelemetryPrune(by_age, by_size, n - by_size, before, after, 0.0)
        if self.vacuum and out.rows:
            try:
                self._vacuum(conn, out)
            except sqlite3.Error as exc:
                raise store_error(path, "VACUUM after a telemetry prune", exc) from exc
        out.seconds = time.perf_counter() - t0
        return out

    def _vacuum(self, conn: sqlite3.Connection, out: TelemetryPrune) -> None:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        lim = self.limits
        if free * page_size >= lim.vacuum_min_bytes and free >= lim.vacuum_min_fraction * pages:
            conn.execute("VACUUM")
            out.vacuumed = True
            out.file_bytes_freed = (pages - conn.execute("PRAGMA page_count").fetchone()[0]) * page_size


def _has_telemetry(conn: sqlite3.Connection) -> bool:
    return bool(conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='telemetry'").fetchone())


class MetricsLogger:
    """Log ``(metric, value)`` rows for one process into ``db_path``'s telemetry table."""

    def __init__(
        self,
        db_path,
        process: str,
        capture_id: int | None = None,
        flush_interval_s: float = 1.0,
        max_queue: int = 100_000,
        limits: TelemetryLimits | None = TelemetryLimits(),
    ):
        if not process:
            raise ConfigError("MetricsLogger needs a process name, e.g. 'training'.")
        self.db_path = Path(db_path)
        self.process = process
        self.capture_id = capture_id
        self.flush_interval_s = flush_interval_s
        self.n_dropped = 0
        self.n_written = 0
        self._pruner = None if limits is None else TelemetryPruner(limits, vacuum=True)
        self.prunes: list[TelemetryPrune] = []  # the passes that deleted rows
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
                self._prune_if_due(conn)
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

    def _prune_if_due(self, conn: sqlite3.Connection) -> None:
        """The bound (TelemetryLimits), kept by this writer thread every prune_interval_s."""
        if self._pruner is None or not self._pruner.due():
            return
        res = self._pruner.prune(conn, self.db_path)
        if res.rows:
            self.prunes.append(res)
            log.info(
                "telemetry of %s: pruned %d rows (%d by age, %d over the cap), %d left%s",
                self.db_path,
                res.rows,
                res.rows_by_age,
                res.rows_by_size,
                res.rows_left,
                f", VACUUM freed {res.file_bytes_freed / 1e6:.1f} MB" if res.vacuumed else "",
            )

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


def history(
    conn: sqlite3.Connection, metric: str, since_ns: int | None = None, process: str | None = None
) -> list[tuple[int, float]]:
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
        key = f"strftime('%Y-%m-%dT%H:00Z', t_ns / {NS_PER_S}, 'unixepoch')"
    else:
        raise ConfigError(f"stats(by={by!r}): use 'capture' or 'hour'.")
    sql = (
        f"SELECT {key} AS k, metric, count(*), min(value), avg(value), max(value) "
        "FROM telemetry GROUP BY k, metric ORDER BY k, metric"
    )
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
        gaps = tuple(
            GapSummary(*g)
            for g in conn.execute(
                "SELECT cause, count(*), sum(n_samples_lost) FROM gaps WHERE capture_id = ? GROUP BY cause",
                (cap.capture_id,),
            )
        )
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
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        rows = {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
        oldest = newest = None
        if "chunks" in tables:
            oldest = conn.execute("SELECT min(t_start_ns) FROM chunks").fetchone()[0]
            last = conn.execute(
                "SELECT t_start_ns, n_samples, sample_rate_hz FROM chunks ORDER BY seq DESC LIMIT 1"
            ).fetchone()
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
