"""The hot DB's WAL checkpoints, off the writer's commit path: a thread with its own connection.

SQLite's in-line autocheckpoint runs inside the committing writer: at 3.2 MS/s its copy of
64 MiB (plus two fsyncs) made about one commit in 40 take 100-400 ms. Here the writer's
connection has ``wal_autocheckpoint=0`` and :class:`Checkpointer` runs ``PASSIVE`` checkpoints
on a connection of its own, after every ``min_bytes`` the writer commits (or ``interval_s``).

The WAL-reset bug (SQLite 3.7.0-3.51.2, sqlite.org/wal.html#walresetbug) needs a checkpoint
that STARTS while another connection's write transaction resets the WAL. A write transaction
resets the WAL only when it began while every frame was checkpointed, that is after a
checkpoint that completed. So after a complete checkpoint this thread starts no other until
``PRAGMA data_version`` on its connection has changed, i.e. until a commit that wrote frames
has ended: that commit either reset the WAL or appended past the checkpoint, and from then on
no transaction can reset it before the next complete checkpoint. The writer never checkpoints
while this thread runs (only when it has stopped: at close, or after it failed), and no other
connection checkpoints the hot DB (snapshots open it ``mode=ro``).

A writer that commits without pause seldom leaves a checkpoint complete, and the WAL only
restarts from its beginning after one: past ``reset_bytes`` of WAL the writer is parked before
its next transaction (:meth:`Checkpointer.writer_gate`) while this thread copies the tail
that came since its last checkpoint; then the writer's next transaction restarts the WAL (and
cuts the file to ``journal_size_limit``). Parking is only asked for when the last checkpoint
was short (the tail is what arrived meanwhile), and lasts at most ``park_timeout_s``. A reader
holding an old snapshot (a backup) keeps every checkpoint from completing; then the writer is
parked at most once per further ``reset_bytes`` of growth, and the WAL restarts once it ends.
"""

import logging
import sqlite3
import threading
import time
from pathlib import Path

from sdr_assets.store.db import connect_rw

log = logging.getLogger(__name__)

CHECKPOINT_MIN_BYTES = 4 * 2**20  # a checkpoint after this much is committed (~0.6 s at 3.2 MS/s)
CHECKPOINT_INTERVAL_S = 1.0  # ... or after this long, when anything was committed
RESET_BYTES = 64 * 2**20  # WAL content past which the writer is parked for one short lap
PARK_MAX_TAIL_S = 0.25  # ask for a park only when the last checkpoint took at most this long
PARK_TIMEOUT_S = 2.0  # the writer never waits longer than this for a lap


class Checkpointer(threading.Thread):
    """PASSIVE checkpoints of ``path`` on their own thread and connection (see module doc)."""

    def __init__(
        self,
        path: Path | str,
        *,
        page_size: int,
        synchronous: str = "NORMAL",
        min_bytes: int | None = None,
        interval_s: float | None = None,
        reset_bytes: int | None = None,
        park_timeout_s: float | None = None,
    ) -> None:
        """None: the module's constants (CHECKPOINT_MIN_BYTES, CHECKPOINT_INTERVAL_S,
        RESET_BYTES, PARK_TIMEOUT_S)."""
        super().__init__(name="hot-db-checkpointer", daemon=True)
        self.path = Path(path)
        self.synchronous = synchronous
        self.page_size = int(page_size)
        self.min_bytes = int(CHECKPOINT_MIN_BYTES if min_bytes is None else min_bytes)
        self.interval_s = float(CHECKPOINT_INTERVAL_S if interval_s is None else interval_s)
        self.reset_frames = max(1, int(RESET_BYTES if reset_bytes is None else reset_bytes) // self.page_size)
        self.park_timeout_s = float(PARK_TIMEOUT_S if park_timeout_s is None else park_timeout_s)
        self.error: BaseException | None = None
        self._cond = threading.Condition()
        self._stopping = False
        self._ready = threading.Event()
        # writer side (under _cond)
        self._pending_bytes = 0  # committed since the last checkpoint started
        self._commits = 0
        self._park_requested = False
        self._parked = False
        self._lap_running = False  # a lap's checkpoint is running: the parked writer waits for it
        # this thread's own
        self._guard: tuple[int, int] | None = None  # (data_version, commits) after a complete checkpoint
        self._next_park_frames = self.reset_frames
        self._last_log = 0  # frames in the WAL at the previous checkpoint
        # figures (under _cond): totals, and the interval's since take_figures()
        self.n_checkpoints = 0
        self.n_complete = 0
        self.n_parks = 0
        self.wal_frames = 0  # frames in the WAL at the last checkpoint
        self._fig = self._empty_figures()

    # ---- the writer's side ------------------------------------------------------------------
    def writer_gate(self) -> float:
        """Called by the writer before each batch's transaction: parks it while a lap that lets
        the WAL restart runs (rarely; see module doc). Seconds parked (0.0 nearly always)."""
        with self._cond:
            if not self._park_requested or self._stopping or not self.is_alive():
                return 0.0
            t0 = time.perf_counter()
            self._parked = True
            self._cond.notify_all()
            self._cond.wait_for(lambda: not self._park_requested or self._stopping, timeout=self.park_timeout_s)
            # a lap that has started ends before this writer goes on: its checkpoint must never
            # overlap a transaction (that could reset the WAL under it)
            self._cond.wait_for(lambda: not self._lap_running)
            self._parked = False
            self._park_requested = False  # done, or given up: asked again only after more growth
            waited = time.perf_counter() - t0
            self.n_parks += 1
            self._fig["parks"] += 1
            self._fig["parked_s_max"] = max(self._fig["parked_s_max"], waited)
            return waited

    def committed(self, n_bytes: int) -> None:
        """Called by the writer after each commit that wrote something."""
        with self._cond:
            self._pending_bytes += max(1, int(n_bytes))
            self._commits += 1
            if self._pending_bytes >= self.min_bytes or self._guard is not None:
                self._cond.notify_all()

    def stop(self, timeout_s: float | None = None) -> None:
        """Ask the thread to end after its current checkpoint and wait for it."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self.is_alive():
            self.join(timeout_s)

    def wait_ready(self, timeout_s: float = 10.0) -> None:
        """Until the thread has its connection (or failed to get one)."""
        self._ready.wait(timeout_s)

    def take_figures(self) -> dict[str, float]:
        """Checkpoints since the previous call: count, longest (ms), MB copied; the WAL's size
        (MB of frames at the last checkpoint); writer parks and the longest (ms)."""
        with self._cond:
            fig, self._fig = self._fig, self._empty_figures()
            wal_mb = self.wal_frames * self.page_size / 1e6
        return {
            "checkpoints": fig["n"],
            "checkpoint_ms_max": fig["s_max"] * 1000.0,
            "wal_mb": wal_mb,
            "writer_parks": fig["parks"],
            "writer_parked_ms_max": fig["parked_s_max"] * 1000.0,
        }

    @staticmethod
    def _empty_figures() -> dict:
        return {"n": 0, "s_max": 0.0, "parks": 0, "parked_s_max": 0.0}

    # ---- the thread -------------------------------------------------------------------------
    def run(self) -> None:
        try:
            conn = connect_rw(self.path, synchronous=self.synchronous, cache_size_kib=256)
            conn.execute("PRAGMA wal_autocheckpoint=0")
        except BaseException as exc:  # the writer sees error set and checkpoints in-line instead
            self.error = exc
            self._ready.set()
            log.warning(
                "the hot DB checkpointer of %s could not start (%s); the writer checkpoints in-line", self.path, exc
            )
            return
        self._ready.set()
        try:
            while self._step(conn):
                pass
        except sqlite3.Error as exc:
            self.error = exc
            log.warning("the hot DB checkpointer of %s stopped (%s); the writer checkpoints in-line", self.path, exc)
        finally:
            conn.close()
            with self._cond:
                self._park_requested = self._lap_running = False
                self._cond.notify_all()

    def _due(self) -> bool:
        if self._stopping:
            return True
        if self._park_requested:  # no other checkpoint before the lap: the writer would wait for it
            return self._parked
        if self._guard is not None:  # waiting for a commit after a complete checkpoint
            return self._commits > self._guard[1]
        return self._pending_bytes >= self.min_bytes

    def _step(self, conn: sqlite3.Connection) -> bool:
        """One wait and at most one checkpoint; False when stopping."""
        with self._cond:
            woken = self._cond.wait_for(self._due, timeout=self.interval_s)
            if self._stopping:
                return False
            lap = self._park_requested and self._parked
            self._lap_running = lap  # the writer stays parked until it ends
            if not lap and self._pending_bytes == 0:
                return True  # nothing committed
            taken, commits = self._pending_bytes, self._commits
        try:
            return self._checkpoint(conn, lap, woken, taken, commits)
        finally:
            if lap:
                with self._cond:
                    self._lap_running = False
                    self._park_requested = False
                    self._cond.notify_all()

    def _checkpoint(self, conn: sqlite3.Connection, lap: bool, woken: bool, taken: int, commits: int) -> bool:
        # In a lap the writer is parked between transactions: no transaction can reset the WAL
        # while this checkpoint runs, whatever the guard says.
        if self._guard is not None and not lap:
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            with self._cond:
                if version == self._guard[0]:  # no commit has written frames: the next may reset
                    self._guard = (version, commits)
                    return True
                self._guard = None
            if woken and taken < self.min_bytes:
                return True  # the guard is lifted; the next checkpoint when min_bytes are in
        t0 = time.perf_counter()
        busy, n_log, n_done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        took_s = time.perf_counter() - t0
        complete = busy == 0 and n_log == n_done
        # n_log is the WAL's end when the checkpoint began: frames appended meanwhile make
        # "complete" too hopeful, never the reverse; busy (another checkpointer: none should
        # exist) tells nothing, so it counts as possibly complete too.
        maybe_complete = complete or busy != 0
        version = conn.execute("PRAGMA data_version").fetchone()[0] if maybe_complete else None
        with self._cond:
            if maybe_complete:  # the writer's next transaction may reset the WAL: none until it ended
                self._guard = (version, commits)
            self._pending_bytes = max(0, self._pending_bytes - taken)
            self.n_checkpoints += 1
            self.n_complete += complete
            self.wal_frames = max(0, n_log)
            self._fig["n"] += 1
            self._fig["s_max"] = max(self._fig["s_max"], took_s)
            if n_log < self._last_log:  # the WAL restarted from its beginning
                self._next_park_frames = self.reset_frames
            self._last_log = n_log
            if lap:  # (if a reader keeps the WAL from restarting, the next lap after more growth)
                self._next_park_frames = n_log + self.reset_frames
            elif n_log >= self._next_park_frames and took_s <= PARK_MAX_TAIL_S:
                self._park_requested = True
        return True
