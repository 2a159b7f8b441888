"""The hot database's single writer: batches, retention, checkpoints.

Exactly one thread (the capture service's writer thread) calls a :class:`HotWriter`. Each
``write_batch`` is one ``BEGIN IMMEDIATE`` transaction that first makes room (max age, then
the byte cap, deleting the oldest chunks in small steps so freed pages are reused and the
file stops growing), then inserts.

Checkpoints (``checkpoint="background"``, the default): the writer's connection never
checkpoints while it runs (``wal_autocheckpoint=0``); a :class:`~sdr_assets.store.checkpoint.
Checkpointer` thread with its own connection does, off the commit path. SQLite 3.7.0-3.51.2 has
the "WAL-reset bug" (sqlite.org/wal.html#walresetbug): a checkpoint on one connection that
starts while a commit on another resets the WAL can corrupt the database. Measured here
(SQLite 3.40.1): an unguarded background checkpointer made 6 of 46 live snapshots fail
integrity_check ("2nd reference to page"). The checkpointer is guarded against exactly that
race (store/checkpoint.py: after a complete checkpoint it starts no other until a commit that
wrote frames has ended), and no other connection checkpoints: readers open ``mode=ro``.
``checkpoint="inline"``: SQLite's in-line autocheckpoint every ``wal_autocheckpoint_pages`` in
the committing writer (the writer also falls back to it if the checkpointer thread fails).
"""

import json
import logging
import math
import os
import sqlite3
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from sdr_assets.errors import ConfigError
from sdr_assets.records import NS_PER_S, Annotation, Chunk, Gap, SourceInfo, samples_to_ns
from sdr_assets.store.checkpoint import Checkpointer
from sdr_assets.store.db import HOT_APP_ID, DbHandle, connect_hot, hot_migrations, migrate
from sdr_assets.store.telemetry import TelemetryLimits, TelemetryPruner
from sdr_assets.store.txn import Txn

log = logging.getLogger(__name__)

BYTES_PER_SAMPLE = 2
CHECKPOINT_MODES = ("background", "inline")
ENV_CHECKPOINT = "SDR_ASSETS_CHECKPOINT"
# checkpoint="inline" only: 1000 pages = 64 MiB of WAL at 64 KiB pages. bench/snapshot.py, 6.4 MB/s: 256 pages made the
# in-line copy (plus its two fsyncs) every 2.5 s the p99 (14 ms; 83 ms beside snapshots);
# 1000 pages keeps p99 ~2-5 ms and costs one ~50-130 ms copy every 10 s, which the capture
# ring (seconds of slack) absorbs.
DEFAULT_AUTOCHECKPOINT_PAGES = 1000
MAX_AGE_LIMIT_S = 1e9  # ~31 years: ages are ns in a signed 64-bit SQLite integer


@dataclass
class BatchResult:
    commit_s: float  # the whole transaction: retention + inserts + COMMIT
    n_chunks: int
    n_bytes: int
    last_seq: int | None
    pruned_chunks: int
    telemetry_pruned: int = 0  # telemetry rows the 5-minute bound deleted after this batch


@dataclass(frozen=True)
class TimelineEnd:
    """Where the stored timeline ends (the newest sample or gap already recorded): a restarted
    capture picks up there, and nothing may be stored before ``t_end_ns``."""

    t_end_ns: int
    sample_rate_hz: float  # the rate of the capture that stored it


def _fmt_bytes(n: float) -> str:
    for unit, div in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= div:
            return f"{n / div:.3g} {unit}"
    return f"{n:.0f} B"


DEFAULT_CAP_BYTES = 2 * 1024**3  # the floor of the derived default cap
CAP_WINDOWS = 2.2  # the derived default cap holds two analysis windows plus 10 % of margin
DISK_RESERVE_BYTES = 256 * 2**20  # left free on the disk when the default cap is sized to it


def _fmt_window(window_s: float) -> str:
    return f"{window_s / 60:g}-min" if window_s >= 60 else f"{window_s:g}-s"


def default_cap_bytes(
    sample_rate_hz: float, window_s: float, room_bytes: float | None = None
) -> tuple[int, str | None]:
    """The hot DB cap when the user gives none, and a warning when the disk cannot hold it.

    Two analysis windows (plus 10 %) at the source's rate, at least 2 GiB: the plainest
    ``sdr-assets capture`` works at every RTL-SDR rate with any partition length. When the disk
    (``room_bytes``: its free space plus what the hot DB already takes) has less room, the cap
    is what the disk holds, and the warning says what that costs and how to fix it."""
    if not (sample_rate_hz > 0 and window_s > 0):
        raise ConfigError(f"sample_rate_hz ({sample_rate_hz}) and window_s ({window_s}) must be > 0.")
    rate_bps = sample_rate_hz * BYTES_PER_SAMPLE
    want = max(DEFAULT_CAP_BYTES, math.ceil(CAP_WINDOWS * window_s * rate_bps))
    if room_bytes is None or room_bytes - DISK_RESERVE_BYTES >= want:
        return want, None
    cap = max(int(room_bytes - DISK_RESERVE_BYTES), 64 * 2**20)
    win = _fmt_window(window_s)
    return cap, (
        f"warning: the disk has room for {_fmt_bytes(cap)} of hot DB, {cap / rate_bps:.0f} s at "
        f"{sample_rate_hz / 1e6:g} MS/s; two {win} windows need {_fmt_bytes(2 * window_s * rate_bps)}. "
        "Windows older than that are pruned before analysis can snapshot them: free disk space, "
        "lower the rate or shorten the partition (SDR_ASSETS_PARTITION_MINUTES)."
    )


def check_capacity(
    cap_bytes: int, sample_rate_hz: float, window_s: float, expected_bytes: float | None = None
) -> str | None:
    """Judge a cap the user chose against the analysis window; a warning line, or None.

    - a finite source (``expected_bytes``) that fits under the cap: nothing to say;
    - a cap of two windows or more: nothing to say;
    - between one and two windows: a warning (a window can be pruned if its analysis runs late);
    - under one window: ConfigError, because every window would lose its oldest samples before
      its snapshot: analysable data the user asked to keep would be lost, not just old data."""
    if not (sample_rate_hz > 0 and window_s > 0):
        raise ConfigError(f"sample_rate_hz ({sample_rate_hz}) and window_s ({window_s}) must be > 0.")
    if expected_bytes is not None and expected_bytes <= cap_bytes:
        return None
    rate_bps = sample_rate_hz * BYTES_PER_SAMPLE
    need = 2 * window_s * rate_bps
    if cap_bytes >= need:
        return None
    held_s = cap_bytes / rate_bps
    win = _fmt_window(window_s)
    numbers = (
        f"cap {_fmt_bytes(cap_bytes)} holds {held_s:.1f} s at {sample_rate_hz / 1e6:g} MS/s; "
        f"two {win} windows need {_fmt_bytes(need)}"
    )
    if cap_bytes >= window_s * rate_bps:
        return (
            f"warning: {numbers}: a window whose analysis starts late can lose its oldest samples "
            f"to the cap; raise --cap-bytes/--cap-gb to {_fmt_bytes(need)} or shorten the partition."
        )
    raise ConfigError(
        f"{numbers}: every window would lose its oldest samples before its snapshot; "
        f"raise --cap-bytes/--cap-gb to {_fmt_bytes(need)}, shorten the partition "
        "(--partition-minutes), or leave out --cap-* for a cap sized to the rate."
    )


def chunk_pages(n_bytes: int, page_size: int) -> float:
    """Pages one chunk row takes (SQLite's overflow rule for table leaves, plus ~64 B of row)."""
    payload = n_bytes + 64
    usable = page_size
    max_local = usable - 35
    if payload <= max_local:
        return (payload + 16) / usable
    min_local = ((usable - 12) * 32 // 255) - 23
    local = min_local + (payload - min_local) % (usable - 4)
    if local > max_local:
        local = min_local
    return math.ceil((payload - local) / (usable - 4)) + (local + 16) / usable


class HotWriter(DbHandle):
    """The one writer of the hot DB (see module doc). Not thread-safe by design."""

    def __init__(
        self,
        path,
        *,
        synchronous: str = "NORMAL",
        cap_bytes: int | None = 2 * 1024**3,
        max_age_s: float | None = None,
        prune_step_chunks: int = 64,
        wal_autocheckpoint_pages: int = DEFAULT_AUTOCHECKPOINT_PAGES,
        telemetry_limits: TelemetryLimits | None = TelemetryLimits(),  # noqa: B008 - frozen, shared safely
        checkpoint: str | None = None,
    ):
        if checkpoint is None:  # SDR_ASSETS_CHECKPOINT=inline: no checkpointer thread (e.g. under libfaketime,
            checkpoint = os.environ.get(ENV_CHECKPOINT) or "background"  # whose timed waits never return)
        if cap_bytes is not None and cap_bytes <= 0:
            raise ConfigError(f"cap_bytes={cap_bytes}: must be > 0 (or None for no byte cap).")
        if max_age_s is not None and not 0 < max_age_s <= MAX_AGE_LIMIT_S:
            raise ConfigError(
                f"max_age_s={max_age_s}: must be > 0 and at most {MAX_AGE_LIMIT_S:g} s "
                "(--max-age-s; omit it for no age limit)."
            )
        if prune_step_chunks < 1:
            raise ConfigError(f"prune_step_chunks={prune_step_chunks}: must be >= 1.")
        if wal_autocheckpoint_pages < 1:
            raise ConfigError(
                f"wal_autocheckpoint_pages={wal_autocheckpoint_pages}: must be >= 1 "
                "(checkpoint='inline', or the fallback when the checkpointer thread fails)."
            )
        if checkpoint not in CHECKPOINT_MODES:
            raise ConfigError(
                f"checkpoint={checkpoint!r} ({ENV_CHECKPOINT} or the argument): use one of {', '.join(CHECKPOINT_MODES)}."
            )
        self.path = Path(path)
        self.checkpoint = checkpoint
        self.synchronous = synchronous
        self.cap_bytes = cap_bytes
        self.max_age_s = max_age_s
        self.prune_step_chunks = prune_step_chunks
        self.wal_autocheckpoint_pages = wal_autocheckpoint_pages
        # No VACUUM here: the next chunks reuse the pages a telemetry prune frees.
        self._telemetry = None if telemetry_limits is None else TelemetryPruner(telemetry_limits, vacuum=False)
        self._conn: sqlite3.Connection | None = None
        self._ckpt: Checkpointer | None = None
        self._page_size = 0
        self._last_seq: int | None = None

    # -- life cycle -------------------------------------------------------------------
    def open(self) -> None:
        """Connect, migrate, set pragmas."""
        if self._conn is not None:
            return
        conn = connect_hot(self.path, synchronous=self.synchronous)
        try:
            migrate(conn, hot_migrations(), application_id=HOT_APP_ID)
            background = self.checkpoint == "background"
            conn.execute(f"PRAGMA wal_autocheckpoint={0 if background else int(self.wal_autocheckpoint_pages)}")
            self._page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            self._last_seq = conn.execute("SELECT max(seq) FROM chunks").fetchone()[0]
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        if background:
            self._ckpt = Checkpointer(self.path, page_size=self._page_size, synchronous=self.synchronous)
            self._ckpt.start()
            self._ckpt.wait_ready()
            self._check_checkpointer()

    def close(self) -> None:
        """Stop the checkpointer, then close (the last connection to close checkpoints the rest
        and removes the WAL)."""
        if self._ckpt is not None:
            self._ckpt.stop()
            self._ckpt = None
        super().close()

    def _check_checkpointer(self) -> None:
        """A checkpointer thread that ended (it failed: it logged why): checkpoint in-line."""
        ckpt = self._ckpt
        if ckpt is not None and (ckpt.error is not None or not ckpt.is_alive()):
            ckpt.stop()
            self._ckpt = None
            self.conn.execute(f"PRAGMA wal_autocheckpoint={int(self.wal_autocheckpoint_pages)}")
            log.warning("%s: checkpoints are in-line in the writer from now on (%s)", self.path, ckpt.error)

    def checkpoint_figures(self) -> dict[str, float]:
        """The background checkpointer's figures since the previous call (telemetry rows:
        checkpoints, checkpoint_ms_max, wal_mb, writer_parks, writer_parked_ms_max); {} in-line."""
        return {} if self._ckpt is None else self._ckpt.take_figures()

    # -- captures ---------------------------------------------------------------------
    def begin_capture(self, info: SourceInfo, started_ns: int) -> int:
        """Insert the captures row for a (re)started capture; returns its capture_id."""
        with self._txn("begin_capture"):
            cur = self.conn.execute(
                "INSERT INTO captures (source_uri, source_kind, center_freq_hz, sample_rate_hz, "
                "gain_db, started_ns, meta_json) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    info.uri,
                    info.kind,
                    float(info.center_freq_hz),
                    float(info.sample_rate_hz),
                    info.gain_db,
                    int(started_ns),
                    json.dumps(info.meta, default=str, sort_keys=True),
                ),
            )
        return cur.lastrowid

    def end_capture(self, capture_id: int, reason: str) -> None:
        with self._txn("end_capture"):
            self.conn.execute(
                "UPDATE captures SET ended_ns = ?, end_reason = ? WHERE capture_id = ?",
                (time.time_ns(), reason, capture_id),
            )

    def last_chunk_end(self) -> tuple[int, int, float] | None:
        """(capture_id, t_end_ns, sample_rate_hz) of the newest chunk, or None when empty."""
        row = self.conn.execute(
            "SELECT capture_id, t_start_ns, n_samples, sample_rate_hz FROM chunks ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        capture_id, t_start_ns, n_samples, rate = row
        return capture_id, t_start_ns + samples_to_ns(n_samples, rate), rate

    def timeline_end(self) -> TimelineEnd | None:
        """The end of the newest chunk, or of a gap recorded after it (a stall until the
        stop, a reconnect that never came back) if later; None when nothing is recorded."""
        last = self.last_chunk_end()
        if last is not None:
            capture_id, t_end_ns, rate = last
            row = self.conn.execute("SELECT max(t_end_ns) FROM gaps WHERE capture_id >= ?", (capture_id,)).fetchone()
            if row[0] is not None and row[0] > t_end_ns:
                t_end_ns = int(row[0])
            return TimelineEnd(t_end_ns, rate)
        row = self.conn.execute(
            "SELECT g.t_end_ns, c.sample_rate_hz FROM gaps g JOIN captures c USING (capture_id) "
            "ORDER BY g.t_end_ns DESC LIMIT 1"
        ).fetchone()
        return None if row is None else TimelineEnd(int(row[0]), float(row[1]))

    # -- the batch --------------------------------------------------------------------
    def write_batch(
        self,
        capture_id: int,
        chunks: list[Chunk],
        gaps: list[Gap] = (),
        annotations: list[Annotation] = (),
        telemetry: list[tuple[int, str, str, float]] = (),
        iq_crc32s: list[int] | None = None,
    ) -> BatchResult:
        """One transaction: retention first, then chunks, gaps, annotations, telemetry.

        A chunk's ``iq`` may be any bytes-like object (the capture ring hands out read-only
        views). ``iq_crc32s``: the chunks' zlib.crc32, when the caller has them already (the
        ring computes them on the reader's thread); computed here otherwise."""
        conn = self.conn
        t0 = time.perf_counter()
        ckpt = self._ckpt
        if ckpt is not None:
            ckpt.writer_gate()  # (parks this writer for one short lap when the WAL must restart)
        n_bytes = sum(len(c.iq) for c in chunks)
        first_seq = (self._last_seq or 0) + 1
        changes = conn.total_changes
        with self._txn("write_batch"):
            pruned = self._retain(chunks, n_bytes)
            if chunks:
                crcs = [zlib.crc32(c.iq) for c in chunks] if iq_crc32s is None else iq_crc32s
                if len(crcs) != len(chunks):
                    raise ValueError(f"{len(crcs)} iq_crc32s for {len(chunks)} chunks")
                conn.executemany(
                    "INSERT INTO chunks (seq, capture_id, t_start_ns, sample_rate_hz, center_freq_hz, "
                    "gain_db, n_samples, iq, iq_crc32) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            first_seq + i,
                            capture_id,
                            c.t_start_ns,
                            c.sample_rate_hz,
                            c.center_freq_hz,
                            c.gain_db,
                            len(c.iq) // BYTES_PER_SAMPLE,
                            c.iq,
                            crcs[i],
                        )
                        for i, c in enumerate(chunks)
                    ],
                )
            if gaps:
                conn.executemany(
                    "INSERT INTO gaps (capture_id, t_start_ns, t_end_ns, n_samples_lost, cause, detail) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [(capture_id, g.t_start_ns, g.t_end_ns, g.n_samples_lost, g.cause, g.detail) for g in gaps],
                )
            if annotations:
                conn.executemany(
                    "INSERT INTO annotations (capture_id, t_start_ns, t_end_ns, freq_lower_hz, "
                    "freq_upper_hz, label, snr_db, origin) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            capture_id,
                            a.t_start_ns,
                            a.t_end_ns,
                            a.freq_lower_hz,
                            a.freq_upper_hz,
                            a.label,
                            a.snr_db,
                            a.origin,
                        )
                        for a in annotations
                    ],
                )
            if telemetry:
                conn.executemany(
                    "INSERT INTO telemetry (t_ns, capture_id, process, metric, value) VALUES (?, ?, ?, ?, ?)",
                    [(int(t), capture_id, p, m, float(v)) for t, p, m, v in telemetry],
                )
        if chunks:
            self._last_seq = first_seq + len(chunks) - 1
        commit_s = time.perf_counter() - t0
        if ckpt is not None:
            if conn.total_changes != changes:
                ckpt.committed(n_bytes)
            self._check_checkpointer()
        telemetry_pruned = 0
        if self._telemetry is not None and self._telemetry.due():  # its own transaction
            telemetry_pruned = self._telemetry.prune(conn, self.path).rows
        return BatchResult(commit_s, len(chunks), n_bytes, self._last_seq if chunks else None, pruned, telemetry_pruned)

    def _retain(self, chunks: list[Chunk], n_bytes: int) -> int:
        """Delete what the age limit and the byte cap require before this batch goes in."""
        conn, pruned = self.conn, 0
        newest = self._last_seq
        if newest is None:
            return 0
        if self.max_age_s is not None:
            t_new = max((c.t_end_ns for c in chunks), default=None)
            if t_new is None:
                last = self.last_chunk_end()
                t_new = last[1] if last else None
            if t_new is not None:
                cutoff_ns = t_new - int(self.max_age_s * NS_PER_S)
                cur = conn.execute(
                    "DELETE FROM chunks WHERE seq IN (SELECT seq FROM chunks WHERE t_start_ns < ? "
                    "AND seq < ? ORDER BY t_start_ns LIMIT ?)",
                    (cutoff_ns, newest, self.prune_step_chunks),
                )
                pruned += cur.rowcount
        if self.cap_bytes is not None:
            pruned += self._fit_cap(chunks, newest)
        if pruned:
            self._prune_side_tables()
        return pruned

    def _fit_cap(self, chunks: list[Chunk], newest: int) -> int:
        conn, ps = self.conn, self._page_size
        incoming = (sum(chunk_pages(len(c.iq), ps) for c in chunks) + 2) * ps
        pruned = 0
        while True:
            over = self.used_bytes() + incoming - self.cap_bytes
            if over <= 0:
                return pruned
            rows = conn.execute(
                "SELECT seq, n_samples FROM chunks WHERE seq < ? ORDER BY seq LIMIT ?", (newest, self.prune_step_chunks)
            ).fetchall()
            if not rows:
                return pruned  # only the newest chunk is left: the batch alone exceeds the cap
            freed, upto = 0.0, rows[-1][0]
            for seq, n_samples in rows:
                freed += chunk_pages(n_samples * BYTES_PER_SAMPLE, ps) * ps
                if freed >= over:
                    upto = seq
                    break
            pruned += conn.execute("DELETE FROM chunks WHERE seq <= ?", (upto,)).rowcount

    def _prune_side_tables(self) -> None:
        """Drop gaps, annotations and telemetry older than the oldest chunk still held."""
        conn = self.conn
        oldest = conn.execute("SELECT min(t_start_ns) FROM chunks").fetchone()[0]
        if oldest is None:
            return
        conn.execute("DELETE FROM gaps WHERE t_start_ns < ? AND t_end_ns <= ?", (oldest, oldest))
        conn.execute("DELETE FROM annotations WHERE t_start_ns < ? AND t_end_ns <= ?", (oldest, oldest))
        conn.execute("DELETE FROM telemetry WHERE t_ns < ?", (oldest,))

    # -- sizes ------------------------------------------------------------------------
    def db_size_bytes(self) -> int:
        """Main file size as SQLite sees it: page_count * page_size."""
        return self.conn.execute("PRAGMA page_count").fetchone()[0] * self._page_size

    def used_bytes(self) -> int:
        """Pages in use (page_count - freelist_count) * page_size, in the current transaction."""
        pc = self.conn.execute("PRAGMA page_count").fetchone()[0]
        fl = self.conn.execute("PRAGMA freelist_count").fetchone()[0]
        return (pc - fl) * self._page_size

    # -- transactions -----------------------------------------------------------------
    def _txn(self, what: str) -> Txn:
        return Txn(
            self.conn,
            what,
            self.path,
            disk_full_fix="lower --cap-bytes so hot.db and its WAL (up to 64 MiB more) fit in the space there",
        )
