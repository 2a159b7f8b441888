"""The analysis DB as a circular buffer of time windows (partitions) cut from snapshots.

``load_window`` copies one partition's chunks (t_start in [t_start, t_end)), and the gaps
and annotations overlapping it, from a snapshot in one transaction (re-loading replaces),
then drops the least recently loaded partitions beyond ``keep_partitions`` from every table
that has a ``partition_key``. Least recently *loaded*, not oldest in time, so a backfill of
an old partition is not dropped the moment it lands.

``AnalysisDB`` is the one handle on the analysis DB: its typed methods (chunks and their runs
from ``store.chunks``, frames, labels, detections and energy bursts from the modules of those names, the
model registry's functions take it too) return records, never tuples.
"""

import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from sdr_assets.errors import ConfigError, StoreError
from sdr_assets.records import NS_PER_S, TimeFreqBox, box_of, contiguous_runs, samples_to_ns
from sdr_assets.store.bursts import BurstQueries
from sdr_assets.store.chunks import ChunkQueries
from sdr_assets.store.db import (
    ANALYSIS_APP_ID,
    ANALYSIS_BUSY_TIMEOUT_MS,
    SQLITE_HEADER,
    DbHandle,
    analysis_migrations,
    connect_ro,
    connect_rw,
    migrate,
    ro_uri,
)
from sdr_assets.store.detections import DetectionQueries
from sdr_assets.store.frames import FrameQueries
from sdr_assets.store.labels import LabelQueries
from sdr_assets.store.txn import Txn
from sdr_assets.store.window_load import WindowStats, drop_partitions, load_window_into

log = logging.getLogger(__name__)

QUICK_CHECK_MAX_BYTES = 64 * 2**20
DEFAULT_TOL_NS = 1_000  # chunk times are rounded to 1 ns; 1 us leaves room, a lost sample does not


class GapRow(NamedTuple):
    gap_id: int
    capture_id: int
    t_start_ns: int
    t_end_ns: int
    n_samples_lost: int
    cause: str
    detail: str


class AnnotationRow(NamedTuple):
    annotation_id: int
    capture_id: int
    t_start_ns: int
    t_end_ns: int
    freq_lower_hz: float
    freq_upper_hz: float
    label: str
    snr_db: float | None
    origin: str

    @property
    def box(self) -> TimeFreqBox:
        return box_of(self)


class PartitionRow(NamedTuple):
    partition_key: str
    t_start_ns: int
    t_end_ns: int
    snapshot_path: str | None
    snapshot_last_seq: int | None
    n_chunks: int
    n_samples: int
    n_samples_lost: int
    loaded_ns: int


class Hole(NamedTuple):
    t_start_ns: int
    t_end_ns: int
    after_seq: int | None
    before_seq: int | None
    kind: str  # "hole" (time missing, no gap recorded) | "overlap" (chunks overlap in time)

    @property
    def duration_s(self) -> float:
        return (self.t_end_ns - self.t_start_ns) / NS_PER_S


class _Span(NamedTuple):
    t_start_ns: int
    t_end_ns: int
    seq: int | None


def _span(c) -> _Span:
    end = getattr(c, "t_end_ns", None)
    if end is None:
        end = c.t_start_ns + samples_to_ns(c.n_samples, c.sample_rate_hz)
    return _Span(c.t_start_ns, end, getattr(c, "seq", None))


def check_contiguity(chunks: Iterable, gaps: Iterable, tol_ns: int = DEFAULT_TOL_NS) -> list[Hole]:
    """Holes between consecutive chunks (time order) that no recorded gap covers, and overlaps.

    ``chunks``: items with ``seq``, ``t_start_ns`` and ``t_end_ns`` (or ``n_samples`` and
    ``sample_rate_hz``); ``gaps``: items with ``t_start_ns`` and ``t_end_ns``.
    """
    spans = sorted(_span(c) for c in chunks)
    covers = _merge(sorted((g.t_start_ns, g.t_end_ns) for g in gaps), tol_ns)
    runs = list(contiguous_runs(spans, tol_ns=tol_ns, retune=False))  # a hole or an overlap ends a run
    holes = []
    for before, after in zip(runs, runs[1:]):
        e0, q0, s1, q1 = before[-1].t_end_ns, before[-1].seq, after[0].t_start_ns, after[0].seq
        if s1 - e0 > tol_ns and not _covered(covers, e0 + tol_ns, s1 - tol_ns):
            holes.append(Hole(e0, s1, q0, q1, "hole"))
        elif e0 - s1 > tol_ns:
            holes.append(Hole(s1, e0, q0, q1, "overlap"))
    return holes


def _merge(intervals: list[tuple[int, int]], tol_ns: int) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for s, e in intervals:
        if out and s <= out[-1][1] + tol_ns:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def _covered(merged: list[tuple[int, int]], start: int, end: int) -> bool:
    return any(s <= start and e >= end for s, e in merged)


class AnalysisDB(DbHandle, ChunkQueries, FrameQueries, LabelQueries, DetectionQueries, BurstQueries):
    """The analysis database (see module doc). One per process; not shared across threads."""

    def __init__(self, path, *, read_only: bool = False):
        """``read_only``: only read an existing DB (``mode=ro``; never created, migrated or
        moved aside), for readers such as the SigMF export."""
        self.path = Path(path)
        self.read_only = read_only
        self._conn: sqlite3.Connection | None = None
        self.recovered_from: Path | None = None  # where a corrupt file was moved by open()

    def open(self) -> None:
        """Create or migrate the DB; a corrupt file is moved aside and a fresh one started."""
        if self._conn is not None:
            return
        if self.read_only:
            self._conn = connect_ro(self.path)
            return
        reason = _corrupt_reason(self.path)
        if reason:
            self._move_aside(reason)
        conn = connect_rw(self.path, busy_timeout_ms=ANALYSIS_BUSY_TIMEOUT_MS)
        try:
            migrate(conn, analysis_migrations(), application_id=ANALYSIS_APP_ID)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _move_aside(self, reason: str) -> None:
        aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{self.path}{suffix}")
            if src.exists():
                os.replace(src, f"{aside}{suffix}")
        self.recovered_from = aside
        log.warning(
            "analysis DB %s was unreadable (%s); moved to %s and started a fresh one "
            "(re-materialize the windows you need)",
            self.path,
            reason,
            aside,
        )

    @contextmanager
    def transaction(self, what: str = "write") -> Iterator[sqlite3.Connection]:
        """``with db.transaction() as conn:`` one :class:`~sdr_assets.store.txn.Txn` (BEGIN
        IMMEDIATE ... COMMIT, ROLLBACK on error; sqlite3 errors become StoreError)."""
        with Txn(self.conn, what, self.path):
            yield self.conn

    # -- loading ----------------------------------------------------------------------
    def load_window(
        self,
        snapshot_path,
        partition_key: str,
        t_start_ns: int,
        t_end_ns: int,
        *,
        keep_partitions: int,
        require_held: bool = False,
    ) -> WindowStats:
        """Copy one window from a snapshot (idempotent), then evict beyond ``keep_partitions``.

        ``require_held``: raise PartitionNotHeldError unless the snapshot's chunks span the
        whole window (otherwise a partial window loads and its coverage says so).
        """
        if keep_partitions < 1:
            raise ConfigError(f"keep_partitions={keep_partitions}: must be >= 1.")
        if t_end_ns <= t_start_ns:
            raise ConfigError(f"window [{t_start_ns}, {t_end_ns}) is empty or reversed.")
        snapshot_path = Path(snapshot_path)
        if not snapshot_path.exists():
            raise StoreError(f"snapshot {snapshot_path} does not exist; materialize the snapshot first.")
        args = (
            ro_uri(snapshot_path),
            str(snapshot_path),
            partition_key,
            int(t_start_ns),
            int(t_end_ns),
            keep_partitions,
            require_held,
        )
        from sdr_assets.store.txn import disk_full_hint, is_disk_full

        try:
            try:
                return load_window_into(self.conn, *args)
            except sqlite3.DatabaseError as exc:  # a big file is not quick_checked at open()
                if is_disk_full(exc) or not self._corrupt_after(exc):
                    raise
                self.close()
                self._move_aside(str(exc))
                self.open()
                return load_window_into(self.conn, *args)  # into the fresh DB, once
        except (sqlite3.Error, OSError) as exc:
            if not is_disk_full(exc):
                raise
            raise StoreError(
                f"{self.path}: loading window {partition_key} from {snapshot_path.name} failed ({exc}): "
                f"{disk_full_hint(self.path)}, or lower keep_partitions (each partition holds its "
                "samples). Nothing of this window was written."
            ) from exc

    def _corrupt_after(self, exc: sqlite3.DatabaseError) -> bool:
        """After a 'malformed' error: is this DB corrupt (not the snapshot)? quick_check says."""
        if (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF not in (11, 26):  # CORRUPT, NOTADB
            return False
        try:
            return self.conn.execute("PRAGMA main.quick_check(1)").fetchone()[0] != "ok"
        except sqlite3.DatabaseError:
            return True

    # -- readers ----------------------------------------------------------------------
    def gaps(self, partition_key: str) -> list[GapRow]:
        return [
            GapRow(*r)
            for r in self.conn.execute(
                "SELECT gap_id, capture_id, t_start_ns, t_end_ns, n_samples_lost, cause, detail FROM gaps "
                "WHERE partition_key = ? ORDER BY t_start_ns",
                (partition_key,),
            )
        ]

    def annotations(self, partition_key: str) -> list[AnnotationRow]:
        return [
            AnnotationRow(*r)
            for r in self.conn.execute(
                "SELECT annotation_id, capture_id, t_start_ns, t_end_ns, freq_lower_hz, freq_upper_hz, "
                "label, snr_db, origin FROM annotations WHERE partition_key = ? ORDER BY t_start_ns",
                (partition_key,),
            )
        ]

    def partitions(self) -> list[PartitionRow]:
        return [
            PartitionRow(*r)
            for r in self.conn.execute(
                "SELECT partition_key, t_start_ns, t_end_ns, snapshot_path, snapshot_last_seq, n_chunks, "
                "n_samples, n_samples_lost, loaded_ns FROM partitions ORDER BY t_start_ns"
            )
        ]

    def drop_partition(self, partition_key: str) -> None:
        """Remove one partition's rows from every partitioned table."""
        with self.transaction() as conn:
            drop_partitions(conn, [partition_key])


def _corrupt_reason(path: Path) -> str | None:
    """Why ``path`` cannot be used as an SQLite DB (cheap: header + schema), or None."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    with open(path, "rb") as fh:
        if fh.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
            return "not an SQLite file"
    try:
        conn = sqlite3.connect(ro_uri(path), uri=True)
    except sqlite3.Error as exc:
        return str(exc)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        if path.stat().st_size < QUICK_CHECK_MAX_BYTES:  # bigger files: schema read only (cost)
            first = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
            if first != "ok":
                return first
    except sqlite3.DatabaseError as exc:
        return str(exc)
    finally:
        conn.close()
    return None
