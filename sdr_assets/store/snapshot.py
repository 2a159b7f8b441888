"""Point-in-time copies of the hot DB, taken while the capture keeps writing.

One-step online backup (``backup(pages=-1)``): in WAL mode it reads one consistent snapshot
without blocking the writer (a paged backup restarts on every foreign write and never
finishes under a live writer). The copy is written under a temporary name, switched to a
rollback journal (a standalone file), checked (``integrity_check`` plus each chunk's CRC-32),
fsynced and renamed into place.

The source is opened ``mode=ro`` (a read-only connection still reads the WAL through the
shared -shm index) and this module never checkpoints the hot DB on SQLite < 3.51.3: a second
connection checkpointing while the writer resets the WAL is the trigger of SQLite's WAL-reset
corruption bug (see store/hot.py). The writer's own autocheckpoint shrinks the WAL instead.
"""

import logging
import os
import sqlite3
import sys
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from sdr_assets.errors import ConfigError, StoreError
from sdr_assets.records import samples_to_ns
from sdr_assets.store.db import BUSY_TIMEOUT_MS, check_sqlite_file, connect_ro

log = logging.getLogger(__name__)

# SQLite fixed its WAL-reset bug in 3.51.3; before that only the writer may checkpoint.
CHECKPOINT_AFTER_SNAPSHOT = sqlite3.sqlite_version_info >= (3, 51, 3)


@dataclass
class SnapshotResult:
    path: Path
    n_bytes: int
    seconds: float  # whole call: backup + check + fsync + rename
    mb_per_s: float  # n_bytes / backup_s (the copy itself, comparable with `cp`)
    last_seq: int | None
    last_t_end_ns: int | None
    first_t_start_ns: int | None
    n_chunks: int
    integrity: str  # "ok" or the first problem found
    backup_s: float = 0.0
    check_s: float = 0.0


def snapshot_file_name(time_key: str) -> str:
    """A partition's snapshot file name: ``2026-11-23-04:00`` -> ``hot-2026-11-23-0400.db``."""
    return f"hot-{time_key.replace(':', '')}.db"


def _missing_hot(path: Path) -> StoreError:
    return StoreError(f"{path} does not exist yet; start the capture first (it creates the hot DB).")


def _chunk_figures(conn: sqlite3.Connection) -> tuple[int | None, int | None, int | None, int]:
    """(last_seq, last_t_end_ns, first_t_start_ns, n_chunks) of a DB with a chunks table."""
    last = conn.execute(
        "SELECT seq, t_start_ns, n_samples, sample_rate_hz FROM chunks ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    first = conn.execute("SELECT min(t_start_ns) FROM chunks").fetchone()[0]
    n = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
    if last is None:
        return None, None, None, 0
    return last[0], last[1] + samples_to_ns(last[2], last[3]), first, n


def take_snapshot(hot_path, dest_path, *, nice: int = 10) -> SnapshotResult:
    """Copy ``hot_path`` to ``dest_path`` (atomic rename), check it, checkpoint the hot DB.

    The work runs in a short-lived thread whose nice value is raised by ``nice`` (Linux; 0 =
    run in the caller's thread), so on a small box the capture writer wins the CPU.
    """
    return _niced(lambda: _take_snapshot(Path(hot_path), Path(dest_path)), nice)


def _niced(fn, nice: int):
    if not nice or not sys.platform.startswith("linux"):
        return fn()
    box: dict = {}

    def target():
        try:  # on Linux a thread id names one thread: only this thread is de-prioritised
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
        except OSError as exc:
            log.debug("could not lower the snapshot thread's priority: %s", exc)
        try:
            box["result"] = fn()
        except BaseException as exc:  # re-raised in the caller's thread below
            box["error"] = exc

    th = threading.Thread(target=target, name="hot-snapshot")
    th.start()
    th.join()
    if "error" in box:
        raise box["error"]
    return box["result"]


def _take_snapshot(hot_path: Path, dest_path: Path) -> SnapshotResult:
    if not hot_path.exists():
        raise _missing_hot(hot_path)
    check_sqlite_file(hot_path)
    dest_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest_path.with_name(f".{dest_path.name}.tmp-{os.getpid()}")
    _remove_db_files(tmp)
    t0 = time.perf_counter()
    try:
        src = sqlite3.connect(hot_path.resolve().as_uri() + "?mode=ro", uri=True, isolation_level=None)
        try:
            src.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            dst = sqlite3.connect(str(tmp), isolation_level=None)
            try:
                dst.execute("PRAGMA journal_mode=OFF")  # a fresh copy: checked and fsynced below
                dst.execute("PRAGMA synchronous=OFF")
                src.backup(dst, pages=-1)
            finally:
                dst.close()
            backup_s = time.perf_counter() - t0
            if CHECKPOINT_AFTER_SNAPSHOT:
                src.close()  # a read-write connection for the checkpoint (safe from 3.51.3 on)
                src = sqlite3.connect(hot_path.resolve().as_uri() + "?mode=rw", uri=True, isolation_level=None)
                src.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                src.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            src.close()
        # The copied header still says WAL: make the snapshot one standalone file.
        dst = sqlite3.connect(str(tmp), isolation_level=None)
        try:
            dst.execute("PRAGMA journal_mode=DELETE")
            figures = _chunk_figures(dst)
        finally:
            dst.close()
    except (sqlite3.Error, OSError) as exc:
        _remove_db_files(tmp)
        raise _snapshot_error(hot_path, dest_path, exc) from exc
    except BaseException:
        _remove_db_files(tmp)
        raise
    t1 = time.perf_counter()
    integrity = verify_snapshot(tmp)
    check_s = time.perf_counter() - t1
    try:
        _fsync(tmp)
        os.replace(tmp, dest_path)
        _fsync_dir(dest_path.parent)
    except OSError as exc:
        _remove_db_files(tmp)
        raise _snapshot_error(hot_path, dest_path, exc) from exc
    n_bytes = dest_path.stat().st_size
    return SnapshotResult(
        path=dest_path,
        n_bytes=n_bytes,
        seconds=time.perf_counter() - t0,
        mb_per_s=n_bytes / 1e6 / max(backup_s, 1e-9),
        last_seq=figures[0],
        last_t_end_ns=figures[1],
        first_t_start_ns=figures[2],
        n_chunks=figures[3],
        integrity=integrity,
        backup_s=backup_s,
        check_s=check_s,
    )


def _snapshot_error(hot_path: Path, dest_path: Path, exc: BaseException) -> StoreError:
    from sdr_assets.store.txn import disk_full_hint, is_disk_full

    if is_disk_full(exc):
        return StoreError(
            f"snapshot of {hot_path} into {dest_path} failed ({exc}): {disk_full_hint(dest_path)}; "
            f"the copy needs about {_size(hot_path) / 1e6:.0f} MB (keep_snapshots sets how many are "
            "kept). The partial copy was removed; the hot DB was not touched."
        )
    return StoreError(
        f"snapshot of {hot_path} into {dest_path} failed ({exc}); "
        "check free disk space and that the hot DB is readable."
    )


def _size(path: Path) -> int:
    return sum(os.path.getsize(f"{path}{s}") for s in ("", "-wal") if os.path.exists(f"{path}{s}"))


def verify_snapshot(path) -> str:
    """``PRAGMA integrity_check`` then each chunk's CRC-32: "ok" or the first problem."""
    path = Path(path)
    if not path.exists():
        raise StoreError(f"snapshot {path} does not exist; take one first (take_snapshot).")
    try:
        conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        return f"cannot open: {exc}"
    try:
        rows = conn.execute("PRAGMA integrity_check(1)").fetchall()
        first = rows[0][0] if rows else "no result"
        if first != "ok":
            return str(first)
        return _verify_crc(conn)
    except sqlite3.DatabaseError as exc:
        return f"error: {exc}"
    finally:
        conn.close()


def _verify_crc(conn: sqlite3.Connection) -> str:
    cols = {r[1] for r in conn.execute("PRAGMA table_info(chunks)")}
    if "iq_crc32" not in cols:
        return "ok"
    for seq, iq, crc in conn.execute("SELECT seq, iq, iq_crc32 FROM chunks WHERE iq_crc32 IS NOT NULL ORDER BY seq"):
        got = zlib.crc32(iq)
        if got != crc:
            return f"chunk seq {seq}: iq CRC-32 {got:#010x} != stored {crc:#010x} (payload corrupted)"
    return "ok"


def prune_snapshots(folder, keep: int, pattern: str = "*.db") -> list[Path]:
    """Delete all but the newest ``keep`` snapshot files (by mtime) in ``folder``."""
    if keep < 0:
        raise ConfigError(f"prune_snapshots(keep={keep}): keep must be >= 0.")
    dropped = list_snapshots(folder, pattern)[keep:]
    for p in dropped:
        remove_snapshot(p)
    return dropped


def list_snapshots(folder, pattern: str = "*.db") -> list[Path]:
    """The snapshot files in ``folder``, newest first (by mtime, then name)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(
        (p for p in folder.glob(pattern) if p.is_file()), key=lambda p: (p.stat().st_mtime_ns, p.name), reverse=True
    )


def remove_snapshot(path) -> None:
    """Delete a snapshot file (and any -journal/-wal/-shm beside it)."""
    _remove_db_files(Path(path))


def retention_dropped(hot_path, t_end_ns: int) -> int | None:
    """When retention has already deleted the samples of a window ending at ``t_end_ns``,
    the time the hot DB now starts at (ns); else None (the window is held, or was never
    captured: an empty window, not a dropped one)."""
    held = hot_time_range(hot_path)
    if held is not None and hot_pruned(hot_path) and t_end_ns <= held[0]:
        return held[0]
    return None


def hot_time_range(hot_path) -> tuple[int, int] | None:
    """(first_t_start_ns, last_t_end_ns) of the chunks the hot DB holds now, None if none."""
    hot_path = Path(hot_path)
    if not hot_path.exists():
        raise _missing_hot(hot_path)
    conn = connect_ro(hot_path)
    try:
        conn.execute("BEGIN")
        last_seq, last_t_end_ns, first_t_start_ns, _ = _chunk_figures(conn)
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the time range of {hot_path}: {exc}") from exc
    finally:
        conn.close()
    if last_seq is None:
        return None
    return first_t_start_ns, last_t_end_ns


def hot_pruned(hot_path) -> int:
    """How many chunks retention has deleted from the hot DB so far (seqs start at 1)."""
    hot_path = Path(hot_path)
    if not hot_path.exists():
        raise _missing_hot(hot_path)
    conn = connect_ro(hot_path)
    try:
        first = conn.execute("SELECT min(seq) FROM chunks").fetchone()[0]
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read {hot_path}: {exc}") from exc
    finally:
        conn.close()
    return 0 if first is None else first - 1


def _remove_db_files(path: Path) -> None:
    for suffix in ("", "-journal", "-wal", "-shm"):
        try:
            os.unlink(f"{path}{suffix}")
        except FileNotFoundError:
            pass


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
