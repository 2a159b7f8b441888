"""One capture per hot database: an exclusive ``flock`` on ``hot.db.lock``."""

import fcntl
import os
from pathlib import Path

from sdr_assets.errors import CaptureError


class WriterLock:
    """Held for the life of a capture. The kernel drops it when the process dies (even by
    SIGKILL), so a crash never leaves a stale lock behind."""

    def __init__(self, hot_path: Path) -> None:
        self.hot_path = Path(hot_path)
        self.path = Path(f"{hot_path}.lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise CaptureError naming the pid that holds it."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise CaptureError(
                f"cannot create the capture lock {self.path} ({exc.strerror}): the folder of the "
                f"hot DB is not writable; make it writable or set SDR_ASSETS_HOME to a writable folder."
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise CaptureError(
                f"another capture (pid {holder}) is writing {self.hot_path}; the hot DB has exactly "
                f"one writer: stop that one first, or set SDR_ASSETS_HOME to another folder."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # no pid: nobody is writing
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def holder_pid(hot_path: Path) -> int | None:
    """The pid of the live capture writing ``hot_path``, else None. Reads the pid the holder
    wrote (never takes the lock, so it cannot make a starting capture fail) and checks that
    the process is alive and is a capture (a SIGKILLed holder leaves its pid behind)."""
    import psutil

    try:
        text = Path(f"{hot_path}.lock").read_text().strip()
        pid = int(text)
        proc = psutil.Process(pid)
        cmdline = " ".join(proc.cmdline())
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
    except (FileNotFoundError, ValueError, psutil.Error):
        return None
    return pid if "capture" in cmdline or pid == os.getpid() else None
