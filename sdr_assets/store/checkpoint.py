"""WAL checkpoints off the writer's commit path: a thread with its own connection.

SQLite's in-line autocheckpoint runs inside the committing writer (a stall as long as the
copy). This thread runs PASSIVE checkpoints every ``interval_s`` instead, back to back while
it is behind and making progress (after a long snapshot held the WAL), and publishes its
backlog so the writer can tell whether an in-line checkpoint would be short.
"""

import logging
import sqlite3
import threading
from pathlib import Path

from sdr_assets.store.db import connect_rw

log = logging.getLogger(__name__)


class Checkpointer(threading.Thread):
    """PASSIVE checkpoints on its own connection, off the writer's commit path."""

    def __init__(self, path: Path, interval_s: float):
        super().__init__(name="hot-db-checkpointer", daemon=True)
        self._path, self._interval_s = path, interval_s
        self._stop_event = threading.Event()
        self.n_runs = 0
        self.backlog_frames = 0  # WAL frames not yet copied into the DB file, as last seen
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            conn = connect_rw(self._path, cache_size_kib=256)
        except BaseException as exc:  # logged; the writer still works, its WAL valve takes over
            self.error = exc
            log.warning("hot DB background checkpointer could not start: %s", exc)
            return
        try:
            done_before = -1
            while True:
                _, n_log, n_done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                self.n_runs += 1
                self.backlog_frames = max(0, n_log - n_done)
                # behind and making progress (e.g. after a long snapshot): go again at once
                again = self.backlog_frames > 0 and n_done > done_before
                done_before = n_done
                if self._stop_event.wait(0.0 if again else self._interval_s):
                    break
        except sqlite3.Error as exc:
            self.error = exc
            log.warning("hot DB background checkpoint stopped: %s", exc)
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=30)
