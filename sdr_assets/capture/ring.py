"""A bounded, preallocated byte ring between ONE reader thread and ONE writer thread.

The reader (the radio side) calls :meth:`ByteRing.put`, which never blocks on the writer:
when a chunk does not fit in the free bytes it returns ``False`` at once and the caller
counts the overflow. It also computes each chunk's CRC-32 over the bytes as they lie in the
ring (``capture/crc.py``, outside the GIL: beside the writer's SQLite work, not in it).
The writer (the database side) calls :meth:`ByteRing.take_batch`, which waits until enough
bytes are buffered (or a deadline passes) and returns whole chunks whose ``iq`` are
read-only views into the ring (no copy) with their CRC-32s; their space stays taken until
:meth:`ByteRing.release_batch`, called once they are committed. :meth:`ByteRing.get_batch`
is the copying form (space free at once).

The bytes live in one preallocated anonymous ``mmap`` (reserved at once, but the kernel only
backs the pages that have been written, so resident memory follows the high-water mark, not
the capacity); each record's metadata (t_start_ns,
rates, gain, length) sits beside it in a deque of small descriptors. A record may wrap
around the end of the buffer; it is then copied in and out in two pieces. Positions are
monotonic byte counters (``write_pos`` >= ``read_pos``), so ``used = write_pos - read_pos``.
Whenever the ring is empty the next record starts again at offset 0, so a writer that keeps
up keeps reusing the same first few MiB.

Only the counters and the descriptor deque are touched under the lock; the memcpy in
and out happens outside it (the region being copied belongs to exactly one side at a
time), so neither side ever waits for the other's copy.
"""

import mmap
import threading
import time
from collections import deque
from dataclasses import dataclass

from sdr_assets.capture.crc import RegionCrc
from sdr_assets.errors import ConfigError
from sdr_assets.records import Chunk

DEFAULT_RING_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class _Slot:
    pos: int  # monotonic byte position of the first byte
    n_bytes: int
    t_start_ns: int
    center_freq_hz: float
    sample_rate_hz: float
    gain_db: float | None
    iq_crc32: int  # zlib.crc32 of the bytes in the ring


class ByteRing:
    """Single-producer, single-consumer ring of cu8 chunks bounded in bytes."""

    def __init__(self, capacity_bytes: int = DEFAULT_RING_BYTES) -> None:
        if capacity_bytes < 2:
            raise ConfigError(f"ring size {capacity_bytes} bytes is too small; give at least 1 MiB.")
        self.capacity_bytes = int(capacity_bytes)
        self._buf = mmap.mmap(-1, self.capacity_bytes)  # zero pages, backed when written
        self._view = memoryview(self._buf)
        self._crc = RegionCrc(self._buf)
        self._slots: deque[_Slot] = deque()
        self._n_taken = 0  # slots at the head of _slots handed out by take_batch, not yet released
        self._write_pos = 0  # advanced by the reader only (under the lock)
        self._read_pos = 0  # advanced by the writer only (under the lock)
        self._high_water_bytes = 0
        self._peak_bytes = 0  # high water since the last take_peak_fraction()
        self._closed = False
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)

    # ---- reader side -------------------------------------------------------------------
    def put(self, chunk: Chunk, wait_s: float = 0.0) -> bool:
        """Copy ``chunk`` in; False (nothing stored) if it does not fit or the ring is closed.

        With the default ``wait_s=0`` it never waits for the writer (a radio cannot be
        paused): the lock is only held to read and bump counters. A source that can be
        paused (an unpaced file) passes ``wait_s > 0`` to wait up to that long for room."""
        data = memoryview(chunk.iq).cast("B")
        n = data.nbytes
        if n == 0:
            return True
        deadline = time.monotonic() + wait_s
        with self._cond:
            while True:
                if self._closed or n > self.capacity_bytes:
                    return False
                if n <= self.capacity_bytes - (self._write_pos - self._read_pos):
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            if not self._slots and self._write_pos % self.capacity_bytes:
                # Empty (and nothing being copied out): restart at offset 0.
                self._write_pos += self.capacity_bytes - self._write_pos % self.capacity_bytes
                self._read_pos = self._write_pos
            pos = self._write_pos
        # The region [pos, pos + n) is free and only this thread writes it until published.
        crc = self._copy_in(pos, data)
        slot = _Slot(pos, n, chunk.t_start_ns, chunk.center_freq_hz, chunk.sample_rate_hz, chunk.gain_db, crc)
        with self._cond:
            self._slots.append(slot)
            self._write_pos = pos + n
            used = self._write_pos - self._read_pos
            if used > self._high_water_bytes:
                self._high_water_bytes = used
            if used > self._peak_bytes:
                self._peak_bytes = used
            self._cond.notify_all()
        return True

    def close(self) -> None:
        """No more puts; get_batch drains what is left, then returns []."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # ---- writer side -------------------------------------------------------------------
    def take_batch(self, max_bytes: int, timeout_s: float) -> tuple[list[Chunk], list[int]]:
        """Whole chunks totalling at most ``max_bytes`` (always at least one if any is
        buffered) and their CRC-32s, without a copy: each ``iq`` is a read-only view into the
        ring (a chunk that wraps round the end is copied), valid until :meth:`release_batch`,
        which must be called (once the chunks are stored, or given up) before the next take.

        Waits until ``max_bytes`` are buffered, the ring is closed, or ``timeout_s`` has
        passed, whichever comes first; returns ([], []) if nothing is buffered by then."""
        taken = self._take(max_bytes, timeout_s)
        chunks = [
            Chunk(s.t_start_ns, s.center_freq_hz, s.sample_rate_hz, s.gain_db, self._view_out(s.pos, s.n_bytes))
            for s in taken
        ]
        return chunks, [s.iq_crc32 for s in taken]

    def release_batch(self) -> None:
        """Free the space of the batch :meth:`take_batch` handed out (no-op when none is)."""
        with self._cond:
            if not self._n_taken:
                return
            for _ in range(self._n_taken):
                last = self._slots.popleft()
            self._n_taken = 0
            self._read_pos = last.pos + last.n_bytes
            self._cond.notify_all()  # a reader waiting for room (wait_s > 0)

    def get_batch(self, max_bytes: int, timeout_s: float) -> list[Chunk]:
        """As :meth:`take_batch`, but the chunks are copied out as ``bytes`` and their space
        is free again at once."""
        taken = self._take(max_bytes, timeout_s)
        chunks = [
            Chunk(s.t_start_ns, s.center_freq_hz, s.sample_rate_hz, s.gain_db, self._copy_out(s.pos, s.n_bytes))
            for s in taken
        ]
        self.release_batch()
        return chunks

    def _take(self, max_bytes: int, timeout_s: float) -> list[_Slot]:
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._cond:
            if self._n_taken:
                raise RuntimeError("ByteRing: release_batch() the batch taken before taking another")
            while not self._closed and self._write_pos - self._read_pos < max_bytes:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            taken: list[_Slot] = []
            total = 0
            for slot in self._slots:
                if taken and total + slot.n_bytes > max_bytes:
                    break
                taken.append(slot)
                total += slot.n_bytes
            # These regions stay the writer's until read_pos moves past them (release_batch).
            self._n_taken = len(taken)
        return taken

    # ---- figures -----------------------------------------------------------------------
    @property
    def used_bytes(self) -> int:
        with self._lock:
            return self._write_pos - self._read_pos

    @property
    def fill_fraction(self) -> float:
        return self.used_bytes / self.capacity_bytes

    @property
    def high_water_bytes(self) -> int:
        with self._lock:
            return self._high_water_bytes

    @property
    def high_water_fraction(self) -> float:
        return self.high_water_bytes / self.capacity_bytes

    def take_peak_fraction(self) -> float:
        """Highest fill since the previous call (then restarts from the current fill)."""
        with self._lock:
            peak, self._peak_bytes = self._peak_bytes, self._write_pos - self._read_pos
        return peak / self.capacity_bytes

    @property
    def n_chunks(self) -> int:
        with self._lock:
            return len(self._slots)

    @property
    def closed(self) -> bool:
        with self._lock:
            return self._closed

    def drained(self) -> bool:
        """Closed and empty: the writer has everything there will ever be."""
        with self._lock:
            return self._closed and not self._slots

    # ---- copies ------------------------------------------------------------------------
    def _copy_in(self, pos: int, data: memoryview) -> int:
        """Copy in; the CRC-32 of the bytes as they now lie in the ring."""
        off = pos % self.capacity_bytes
        first = min(data.nbytes, self.capacity_bytes - off)
        self._view[off : off + first] = data[:first]
        crc = self._crc.crc32(off, first)
        if first < data.nbytes:
            self._view[0 : data.nbytes - first] = data[first:]
            crc = self._crc.crc32(0, data.nbytes - first, crc)
        return crc

    def _view_out(self, pos: int, n: int) -> memoryview | bytes:
        off = pos % self.capacity_bytes
        if off + n <= self.capacity_bytes:
            return self._view[off : off + n].toreadonly()
        return self._copy_out(pos, n)

    def _copy_out(self, pos: int, n: int) -> bytes:
        off = pos % self.capacity_bytes
        first = min(n, self.capacity_bytes - off)
        if first == n:
            return bytes(self._view[off : off + n])
        return bytes(self._view[off : off + first]) + bytes(self._view[0 : n - first])
