"""The hot DB's checkpointer thread: it checkpoints off the commit path, keeps the WAL bounded
under a writer that never pauses, never starts a checkpoint that could race a WAL reset, stops
cleanly, and loses nothing."""

import logging
import os
import sqlite3
import time
import zlib

import pytest

from sdr_assets.records import Chunk, SourceInfo
from sdr_assets.store import checkpoint
from sdr_assets.store.checkpoint import Checkpointer
from sdr_assets.store.db import connect_hot, file_bytes
from sdr_assets.store.hot import HotWriter

FS_HZ = 1_000_000.0
INFO = SourceInfo("synthetic://test", "synthetic", 433.92e6, FS_HZ)
MIB = 2**20


def wait_until(cond, timeout_s: float = 10.0) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


class Feed:
    """Batches of fresh random chunks, consecutive in time."""

    def __init__(self, writer: HotWriter, chunk_bytes: int = 256 * 1024):
        self.w, self.chunk_bytes = writer, chunk_bytes
        self.cid = writer.begin_capture(INFO, 0)
        self.t_ns, self.crcs = 1_700_000_000 * 10**9, []

    def batch(self, n_chunks: int = 1):
        cs = []
        for _ in range(n_chunks):
            c = Chunk(self.t_ns, INFO.center_freq_hz, FS_HZ, None, os.urandom(self.chunk_bytes))
            self.t_ns = c.t_end_ns
            self.crcs.append(zlib.crc32(c.iq))
            cs.append(c)
        return self.w.write_batch(self.cid, cs)


def test_the_thread_checkpoints_the_writer_never_does_and_close_stops_it(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint, "CHECKPOINT_MIN_BYTES", 2 * MIB)
    path = tmp_path / "hot.db"
    w = HotWriter(path, cap_bytes=None)
    w.open()
    ckpt = w._ckpt
    assert ckpt.is_alive() and w.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    feed = Feed(w)
    for _ in range(12):  # 12 MiB in 4 batches of 3 MiB
        feed.batch(4 * 3)
    assert wait_until(lambda: ckpt.n_checkpoints >= 2)
    assert wait_until(lambda: os.path.getsize(path) > 8 * MIB)  # the pages reached the main file
    figures = w.checkpoint_figures()
    assert figures["checkpoints"] >= 2 and figures["checkpoint_ms_max"] > 0 and figures["wal_mb"] >= 0
    assert w.checkpoint_figures()["checkpoints"] == 0  # per interval: taken and reset
    w.close()
    assert not ckpt.is_alive()
    assert file_bytes(f"{path}-wal") == 0  # the last connection checkpointed the rest and removed it
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT iq, iq_crc32 FROM chunks ORDER BY seq").fetchall()
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    assert [c for _, c in rows] == feed.crcs == [zlib.crc32(iq) for iq, _ in rows]  # nothing lost


def test_a_writer_that_never_pauses_still_restarts_the_wal(tmp_path, monkeypatch):
    """Without a pause no checkpoint is complete when a transaction begins, so the WAL would
    never restart; past reset_bytes the writer is parked for one short lap and it does."""
    monkeypatch.setattr(checkpoint, "CHECKPOINT_MIN_BYTES", 1 * MIB)
    monkeypatch.setattr(checkpoint, "RESET_BYTES", 4 * MIB)
    monkeypatch.setattr(checkpoint, "PARK_MAX_TAIL_S", 10.0)  # a slow test machine: always ask
    path = tmp_path / "hot.db"
    wal_max = 0
    with HotWriter(path, cap_bytes=16 * MIB) as w:  # the cap's deletes too
        feed = Feed(w)
        for _ in range(160):  # 40 MiB, back to back
            feed.batch(1)
            wal_max = max(wal_max, file_bytes(f"{path}-wal"))
        parks = w._ckpt.n_parks
    assert parks >= 1
    assert wal_max < 24 * MIB  # without the lap it grows to the 40 MiB written
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        crcs = [c for (c,) in conn.execute("SELECT iq_crc32 FROM chunks ORDER BY seq")]
    finally:
        conn.close()
    assert crcs == feed.crcs[-len(crcs) :] and len(crcs) >= 40  # the newest kept, under the cap


def test_no_checkpoint_starts_between_a_complete_one_and_a_commit_that_wrote_frames(tmp_path):
    """The guard against SQLite's WAL-reset bug (< 3.51.3): after a complete checkpoint the
    writer's next transaction may reset the WAL, and no checkpoint may start until one has
    ended that wrote frames; a commit that changed nothing does not count."""
    path = tmp_path / "hot.db"
    conn = connect_hot(path)
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE t (x BLOB)")
    ckpt = Checkpointer(path, page_size=65536, min_bytes=1, interval_s=0.02)
    ckpt.start()
    try:
        ckpt.wait_ready()
        conn.execute("INSERT INTO t VALUES (zeroblob(100000))")
        ckpt.committed(100000)
        assert wait_until(lambda: ckpt.n_complete >= 1)
        done = ckpt.n_checkpoints
        for _ in range(10):  # transactions that write no frames: the WAL stays complete
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DELETE FROM t WHERE x IS NULL")
            conn.execute("COMMIT")
            ckpt.committed(1)
            time.sleep(0.03)
        time.sleep(0.2)
        assert ckpt.n_checkpoints == done  # none started meanwhile
        conn.execute("INSERT INTO t VALUES (zeroblob(100000))")  # this one resets the WAL
        ckpt.committed(100000)
        assert wait_until(lambda: ckpt.n_checkpoints > done)
    finally:
        ckpt.stop()
        conn.close()
    assert not ckpt.is_alive() and ckpt.error is None


def test_a_checkpointer_that_cannot_start_leaves_the_writer_checkpointing_inline(tmp_path, monkeypatch, caplog):
    def refuse(*args, **kwargs):
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(checkpoint, "connect_rw", refuse)
    path = tmp_path / "hot.db"
    with caplog.at_level(logging.WARNING), HotWriter(path, cap_bytes=None) as w:
        assert w._ckpt is None and w.checkpoint_figures() == {}
        assert w.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
        Feed(w).batch(4)
    assert "checkpoints are in-line" in caplog.text
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT count(*) FROM chunks").fetchone()[0] == 4
    finally:
        conn.close()


@pytest.mark.parametrize("mode", ["background", "inline"])
def test_the_writers_commits_never_copy_the_wal_in_the_background(tmp_path, monkeypatch, mode):
    """Behaviour, not timing: in-line, SQLite copies the WAL inside the commit that crosses
    wal_autocheckpoint (its frames land in the main file at once); in the background the
    writer's commits never copy: with the thread idle the main file does not grow."""
    monkeypatch.setattr(checkpoint, "CHECKPOINT_MIN_BYTES", 1 << 40)  # the thread waits ...
    monkeypatch.setattr(checkpoint, "CHECKPOINT_INTERVAL_S", 3600.0)  # ... and waits
    path = tmp_path / "hot.db"
    with HotWriter(path, cap_bytes=None, checkpoint=mode, wal_autocheckpoint_pages=16) as w:
        feed = Feed(w)
        for _ in range(8):
            feed.batch(4)  # 8 MiB: 128+ pages, far past 16
        main_bytes = os.path.getsize(path)
        assert (main_bytes > 4 * MIB) == (mode == "inline")
