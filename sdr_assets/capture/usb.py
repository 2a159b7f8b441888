"""A local RTL-SDR dongle over USB (pyrtlsdr / librtlsdr, imported lazily in open()).

librtlsdr's async reader runs in a thread and hands buffers to a bounded queue, each with
the wall time it arrived; events() turns them into Chunks stamped by the wall-clock
discipline of :mod:`sdr_assets.capture.clock` (``tolerance_s``). Losses are Gaps:
``usb_queue_overflow`` (the consumer fell behind and a buffer was discarded here),
``underrun``/``stall`` (fewer samples arrived than the rate implies: the dongle or libusb
dropped some) and ``late`` (more arrived than the rate implies).
"""

import logging
import queue
import threading
import time

from sdr_assets.capture.base import DEFAULT_CHUNK_SAMPLES, Source
from sdr_assets.capture.clock import DEFAULT_TOLERANCE_S, WallClock
from sdr_assets.errors import SourceError
from sdr_assets.records import SourceInfo

log = logging.getLogger("sdr_assets.capture")

_END = object()


def _no_dongle(index: int, exc: BaseException) -> SourceError:
    return SourceError(
        f"no RTL-SDR dongle found at index {index} ({type(exc).__name__}: "
        f"{exc}); plug one in, or use rtl_tcp://HOST:PORT, file://PATH or "
        "synthetic://"
    )


class RtlSdrSource(Source):
    """Stream cu8 from RTL-SDR dongle ``index`` (``rtl_test`` lists them)."""

    def __init__(
        self,
        index: int = 0,
        *,
        center_freq_hz: float,
        sample_rate_hz: float,
        gain_db: float | None = None,
        ppm: int | None = None,
        chunk_samples: int = DEFAULT_CHUNK_SAMPLES,
        queue_chunks: int = 64,
        tolerance_s: float = DEFAULT_TOLERANCE_S,
        uri: str | None = None,
    ) -> None:
        super().__init__()
        self.index = int(index)
        self.center_freq_hz, self.sample_rate_hz = float(center_freq_hz), float(sample_rate_hz)
        self.gain_db, self.ppm = gain_db, ppm
        # librtlsdr wants buffers in multiples of 512 bytes.
        self.chunk_samples = max(256, int(chunk_samples) // 256 * 256)
        self.tolerance_s = tolerance_s
        self._not_before_ns: int | None = None
        self.uri = uri or f"rtlsdr://{self.index}"
        self._queue: queue.Queue = queue.Queue(maxsize=queue_chunks)
        self._sdr = None
        self._reader: threading.Thread | None = None
        self._dropped_samples = 0  # discarded by the callback, not yet reported
        self._lock = threading.Lock()

    def open(self) -> SourceInfo:
        self.close()
        self._stopping = False
        self._queue = queue.Queue(maxsize=self._queue.maxsize)
        self._dropped_samples = 0
        try:
            from rtlsdr import RtlSdr
        except (ImportError, OSError, AttributeError) as exc:  # librtlsdr missing or too old
            raise _no_dongle(self.index, exc) from None
        try:
            sdr = RtlSdr(device_index=self.index)
        except (OSError, AttributeError, ImportError) as exc:  # LibUSBError is an OSError
            raise _no_dongle(self.index, exc) from None
        try:
            sdr.sample_rate = self.sample_rate_hz
            sdr.center_freq = self.center_freq_hz
            if self.ppm:
                sdr.freq_correction = self.ppm
            sdr.gain = "auto" if self.gain_db is None else self.gain_db
            actual_rate = float(sdr.sample_rate)
            gains = [g / 10 for g in sdr.get_gains()]
        except (OSError, AttributeError) as exc:
            sdr.close()
            raise SourceError(
                f"RTL-SDR {self.index} refused the tuning ({type(exc).__name__}: "
                f"{exc}); check --center-freq-hz/--sample-rate-hz/--gain-db"
            ) from None
        self._sdr, self.sample_rate_hz = sdr, actual_rate
        return SourceInfo(
            uri=self.uri,
            kind="rtlsdr",
            center_freq_hz=self.center_freq_hz,
            sample_rate_hz=actual_rate,
            gain_db=self.gain_db,
            realtime=True,
            meta={
                "index": self.index,
                "gains_db": gains,
                "tuner_type": int(getattr(sdr, "get_tuner_type", lambda: -1)()),
            },
        )

    # ---- the librtlsdr thread -------------------------------------------------------------
    def _callback(self, buf, _context) -> None:
        data = bytes(buf)  # the buffer is reused by librtlsdr: copy it now
        try:
            self._queue.put_nowait((time.time_ns(), data))
        except queue.Full:
            with self._lock:
                self._dropped_samples += len(data) // 2

    def _read_thread(self) -> None:
        try:
            self._sdr.read_bytes_async(self._callback, 2 * self.chunk_samples)
        except OSError as exc:  # unplugged, or a libusb error mid-stream
            self._queue.put(("error", exc))
        finally:
            self._queue.put(_END)

    # ---- iteration ------------------------------------------------------------------------
    def events(self):
        if self._sdr is None:
            raise SourceError("RtlSdrSource.events() before open(); call open() first")
        self._reader = threading.Thread(target=self._read_thread, name="rtlsdr-async", daemon=True)
        self._reader.start()
        clock = WallClock(
            center_freq_hz=self.center_freq_hz,
            sample_rate_hz=self.sample_rate_hz,
            gain_db=self.gain_db,
            chunk_samples=self.chunk_samples,
            tolerance_s=self.tolerance_s,
        )
        if self._not_before_ns is not None:
            clock.not_before(self._not_before_ns)
        tuning = (self.center_freq_hz, self.gain_db)
        while not self._stopping:
            try:
                item = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            if item is _END:
                break
            if item[0] == "error":
                yield from clock.finish()
                raise SourceError(
                    f"RTL-SDR {self.index} stopped streaming "
                    f"({type(item[1]).__name__}: {item[1]}); check the USB "
                    "connection and restart the capture"
                )
            t_arrival_ns, data = item
            if (self.center_freq_hz, self.gain_db) != tuning:
                tuning = (self.center_freq_hz, self.gain_db)
                yield from clock.retune(self.center_freq_hz, self.sample_rate_hz, self.gain_db)
            with self._lock:
                dropped, self._dropped_samples = self._dropped_samples, 0
            yield from clock.lost(dropped, "usb_queue_overflow", "the consumer fell behind; buffers were discarded")
            yield from clock.feed(data, t_arrival_ns)
        yield from clock.finish()

    def resume_after(self, t_end_ns: int) -> None:
        self._not_before_ns = int(t_end_ns)

    def stop(self) -> None:
        super().stop()
        sdr = self._sdr
        if sdr is not None and self._reader is not None:
            try:
                sdr.cancel_read_async()
            except OSError as exc:
                log.info("RTL-SDR %d: cancel_read_async: %s", self.index, exc)

    def close(self) -> None:
        self.stop()
        if self._reader is not None:
            self._reader.join(timeout=5)
            self._reader = None
        if self._sdr is not None:
            self._sdr.close()
            self._sdr = None

    # ---- tuning ---------------------------------------------------------------------------
    def set_center_freq_hz(self, center_freq_hz: float) -> bool:
        self.center_freq_hz = float(center_freq_hz)
        if self._sdr is not None:
            self._sdr.center_freq = self.center_freq_hz
        return True

    def set_gain_db(self, gain_db: float | None) -> bool:
        self.gain_db = gain_db
        if self._sdr is not None:
            self._sdr.gain = "auto" if gain_db is None else float(gain_db)
        return True
