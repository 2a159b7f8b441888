"""The capture service: one source in, the hot database out, nothing lost silently.

Two threads and a ring between them. The **reader** iterates ``source.events()`` and puts
each chunk into the :class:`ByteRing` without ever waiting for the database (a radio cannot
be paused); a chunk that does not fit is counted and recorded as a ``ring_overflow`` gap
(consecutive overflows coalesce into one gap). Gaps and annotations from the source go to
a small side queue. The **writer** is the only thread, and its connection the only one,
that writes the hot database: it commits whatever the ring holds every ``batch_max_bytes``
or ``batch_max_s``, plus the side queue and, once an interval, the service's telemetry,
each batch in one transaction. So at every moment::

    samples_received == samples_stored + samples lost after receipt + samples in the ring

and when the service ends the ring is empty. After a restart (a crash, SIGKILL, a reboot)
the dead time between the newest stored sample and the new stream's first is recorded as a
``restart`` gap, so a reader of the database sees every hole explained.

The hot DB keeps one timeline (docs/capture.md): a live source is told where it ends
(``Source.resume_after``) and stamps against the wall clock (``capture/clock.py``); a replay
that would start before that end, or in the future, is refused; no sample is stored ahead
of the wall clock (an unpaced replay that catches up with it is held there). The writer
lock is taken before the source opens.
"""

import shutil
import signal
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from sdr_assets.capture.base import Source
from sdr_assets.capture.lock import WriterLock
from sdr_assets.capture.losses import LossRecorder
from sdr_assets.capture.ring import DEFAULT_RING_BYTES, ByteRing
from sdr_assets.capture.telemetry_sampler import RECEIVED_CAUSES, Counters, TelemetrySampler
from sdr_assets.errors import CaptureError, ConfigError, SdrAssetsError
from sdr_assets.records import NS_PER_S, Annotation, Chunk, Gap, SourceInfo, samples_to_ns, utc_iso

DEFAULT_BATCH_MAX_BYTES = 4 * 1024 * 1024
DEFAULT_BATCH_MAX_S = 0.25
READER_STOP_TIMEOUT_S = 5.0  # a source that ignores stop() this long is abandoned
FUTURE_START_LIMIT_NS = 2_000_000_000  # a first sample further ahead of the clock is refused
PAUSABLE_PUT_WAIT_S = 3600.0  # an unpaced source waits for room instead of overflowing


@dataclass(frozen=True)
class CaptureSummary:
    capture_id: int
    end_reason: str
    samples_received: int
    samples_stored: int
    samples_lost: dict  # by cause
    bytes_stored: int
    duration_s: float

    @property
    def samples_lost_after_receipt(self) -> int:
        return sum(n for cause, n in self.samples_lost.items() if cause in RECEIVED_CAUSES)

    def line(self) -> str:
        lost = sum(self.samples_lost.values())
        causes = ", ".join(f"{c}: {n}" for c, n in sorted(self.samples_lost.items()))
        return (
            f"capture {self.capture_id} ended ({self.end_reason}) after {self.duration_s:.1f} s: "
            f"received {self.samples_received} samples, stored {self.samples_stored} "
            f"({self.bytes_stored / 1e6:.1f} MB), lost {lost}" + (f" ({causes})" if causes else "")
        )


class CaptureService:
    """Runs one capture from ``source`` into the hot database at ``hot_path``."""

    def __init__(
        self,
        source: Source,
        hot_path: Path | str,
        *,
        ring_bytes: int = DEFAULT_RING_BYTES,
        batch_max_bytes: int = DEFAULT_BATCH_MAX_BYTES,
        batch_max_s: float = DEFAULT_BATCH_MAX_S,
        synchronous: str = "NORMAL",
        cap_bytes: int | None = None,
        max_age_s: float | None = None,
        window_s_for_capacity_check: float = 3600.0,
        telemetry_interval_s: float = 1.0,
        duration_s: float | None = None,
        writer_delay_s: float = 0.0,
        reader_stop_timeout_s: float = READER_STOP_TIMEOUT_S,
        telemetry_limits=None,
        log=None,
    ) -> None:
        if batch_max_bytes <= 0 or batch_max_s <= 0 or telemetry_interval_s <= 0:
            raise ConfigError("batch_max_bytes, batch_max_s and telemetry_interval_s must be > 0.")
        if ring_bytes < 64 * 1024:
            raise ConfigError(
                f"ring of {ring_bytes} bytes is too small; give at least 1 MiB (--ring-mb 1), 64 MiB is the default."
            )
        self._source = source
        self.hot_path = Path(hot_path)
        self._ring = ByteRing(ring_bytes)
        # Never wait for more than half the ring: a full ring means overflow, not a batch.
        self._batch_target = min(batch_max_bytes, ring_bytes // 2)
        self._batch_max_s = batch_max_s
        self._synchronous = synchronous
        self._cap_bytes = cap_bytes
        self._max_age_s = max_age_s
        self._window_s = window_s_for_capacity_check
        self._telemetry_interval_s = telemetry_interval_s
        self._duration_s = duration_s
        self._writer_delay_s = writer_delay_s
        self._reader_stop_timeout_s = reader_stop_timeout_s
        self._telemetry_limits = telemetry_limits  # store.telemetry.TelemetryLimits; None: its default
        self._log = log or (lambda line: None)
        self.counters = Counters()
        self._sampler = TelemetrySampler()
        self._losses = LossRecorder(self.counters, self._ring.capacity_bytes)
        self._info: SourceInfo | None = None
        self.capture_id: int | None = None
        self._resume_from = None  # store.hot.TimelineEnd once the hot DB is open
        self._first_event = True
        self._bytes_stored = 0
        self._pruned_chunks = 0
        self._ready = threading.Event()
        self._stopped = threading.Event()
        self._stop_reason: str | None = None
        self._error: SdrAssetsError | None = None
        self._writer_dead = False
        self._abandoned = False

    # ---- control -----------------------------------------------------------------------
    def stop(self, reason: str = "signal") -> None:
        """Ask the capture to end: the source stops, the ring drains, the writer commits."""
        if self._stop_reason is None:
            self._stop_reason = reason
        self._stopped.set()
        self._source.stop()

    def _size_cap(self, info: SourceInfo) -> None:
        """The hot DB's cap: the user's (judged against two analysis windows), or one derived
        from the window and the rate (see store.hot.default_cap_bytes); warnings are logged."""
        from sdr_assets.store.hot import check_capacity, default_cap_bytes

        expected = self._source.expected_samples()
        if self._duration_s is not None:
            by_duration = int(self._duration_s * info.sample_rate_hz)
            expected = by_duration if expected is None else min(expected, by_duration)
        expected_bytes = None if expected is None else 2 * expected
        if self._cap_bytes is None:
            self.hot_path.parent.mkdir(parents=True, exist_ok=True)
            room = shutil.disk_usage(self.hot_path.parent).free + sum(
                p.stat().st_size for p in self.hot_path.parent.glob(self.hot_path.name + "*") if p.is_file()
            )
            self._cap_bytes, warning = default_cap_bytes(info.sample_rate_hz, self._window_s, room)
            if warning and expected_bytes is not None and expected_bytes <= self._cap_bytes:
                warning = None  # a finite source that fits: nothing will be pruned
        else:
            warning = check_capacity(self._cap_bytes, info.sample_rate_hz, self._window_s, expected_bytes)
        if warning:
            self._log(warning)

    def run(self) -> CaptureSummary:
        """Capture until the source ends, :meth:`stop` is called, or SIGINT/SIGTERM arrives.

        Raises (after recording the end in the database) the error that ended it, if any."""
        t0 = time.monotonic()
        lock = WriterLock(self.hot_path)
        lock.acquire()  # first: a second capture is told so, and never takes the radio
        try:
            info = self._info = self._source.open()
        except BaseException:
            lock.release()
            raise
        old_handlers = {}
        writer = None
        try:
            if threading.current_thread() is threading.main_thread():
                for sig in (signal.SIGINT, signal.SIGTERM):
                    old_handlers[sig] = signal.signal(sig, lambda *_: self.stop("signal"))
            self._size_cap(info)
            writer = threading.Thread(target=self._write_thread, name="capture-writer", daemon=True)
            writer.start()
            self._ready.wait()
            if self.capture_id is None:  # the database refused: nothing was started
                writer.join()
                raise self._error
            self._log(self._start_line(info))
            if self._sampler.gpu_note:  # one info line; the GPU metrics are simply absent
                self._log(f"info: {self._sampler.gpu_note}")
            reader = threading.Thread(target=self._read_thread, name="capture-reader", daemon=True)
            reader.start()
            self._supervise(t0, reader, writer)
        except BaseException as exc:
            if writer is not None and writer.is_alive():  # failed before the writer was seen to end:
                self.stop(f"error: {type(exc).__name__}: {exc}")  # it drains, records the end, closes
                self._ring.close()
                writer.join(self._reader_stop_timeout_s)
            raise
        finally:
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
            self._source.close()
            lock.release()
        summary = CaptureSummary(
            self.capture_id,
            self._end_reason(),
            self.counters.samples_received,
            self.counters.samples_stored,
            dict(self.counters.lost),
            self._bytes_stored,
            time.monotonic() - t0,
        )
        self._log(summary.line())
        if self._error is not None:
            raise self._error
        return summary

    def _supervise(self, t0: float, reader: threading.Thread, writer: threading.Thread) -> None:
        abandon_at = None
        while writer.is_alive():
            writer.join(0.1)
            now = time.monotonic()
            if self._duration_s is not None and now - t0 >= self._duration_s:
                self.stop("duration")
            if self._stop_reason is not None and abandon_at is None:
                abandon_at = now + self._reader_stop_timeout_s
            if abandon_at is not None and reader.is_alive() and now > abandon_at and not self._abandoned:
                self._log(
                    f"warning: the source did not stop within {self._reader_stop_timeout_s:g} s; "
                    f"leaving it behind and closing the capture."
                )
                self._abandoned = True
                self._ring.close()
        if not self._abandoned:  # (after a writer failure the reader may still be counting)
            reader.join(self._reader_stop_timeout_s)

    def _end_reason(self) -> str:
        if self._error is not None:
            return f"error: {self._error}"
        return self._stop_reason or "eof"

    def _fail(self, exc: SdrAssetsError) -> None:
        if self._error is None:
            self._error = exc
        self.stop(f"error: {exc}")

    def _start_line(self, info: SourceInfo) -> str:
        gain = "auto" if info.gain_db is None else f"{info.gain_db:g} dB"
        pace = "realtime" if info.realtime else "unpaced"
        resume = ""
        if self._resume_from is not None:
            resume = f"; newest stored sample {utc_iso(self._resume_from.t_end_ns, digits=3, suffix='+00:00')}"
        return (
            f"capture {self.capture_id}: {info.uri} ({info.kind}, {pace}) "
            f"{info.sample_rate_hz / 1e6:g} MS/s at {info.center_freq_hz / 1e6:.6g} MHz, gain {gain} "
            f"-> {self.hot_path} (ring {self._ring.capacity_bytes / 2**20:g} MiB, "
            f"cap {self._cap_bytes / 2**30:.3g} GiB){resume}"
        )

    # ---- reader thread -------------------------------------------------------------------
    def _read_thread(self) -> None:
        wait_s = 0.0 if self._info.realtime else PAUSABLE_PUT_WAIT_S
        losses = self._losses
        try:
            if self._resume_from is not None:  # a live source starts its clock after it
                self._source.resume_after(self._resume_from.t_end_ns)
            for event in self._source.events():
                if self._abandoned:
                    break
                if isinstance(event, (Chunk, Gap)):
                    if self._first_event:
                        self._first_event = False  # (annotations may start inside a chunk)
                        self._check_first(event.t_start_ns)
                        losses.restart(self._resume_from, event.t_start_ns)
                    if not self._wait_for_wall_clock(event):
                        break
                if isinstance(event, Chunk):
                    self.counters.samples_received += event.n_samples
                    if self._ring.put(event, wait_s):
                        losses.flush()
                    elif self._writer_dead:  # the database is gone: counted, nowhere to record
                        self.counters.add_lost("write_error", event.n_samples)
                    else:
                        losses.overflowed(event)
                elif isinstance(event, (Gap, Annotation)):
                    losses.source_event(event)
                else:
                    raise CaptureError(
                        f"the source yielded a {type(event).__name__}; "
                        f"a source must yield Chunk, Gap or Annotation records."
                    )
        except SdrAssetsError as exc:
            self._fail(exc)
        except Exception as exc:  # a bug or an OS error in a source: end cleanly, say what
            traceback.print_exc()
            self._fail(CaptureError(f"the source failed: {type(exc).__name__}: {exc}"))
        finally:
            losses.flush()
            self._ring.close()

    def _check_first(self, t_start_ns: int) -> None:
        """The hot DB holds one timeline: a stream may not start before its end, nor in the
        future (a replay with a wrong start time would otherwise hold the capture up)."""
        now_ns = time.time_ns()
        if t_start_ns - now_ns > FUTURE_START_LIMIT_NS:
            raise ConfigError(
                f"{self._info.uri} stamps its first sample at {utc_iso(t_start_ns, digits=3, suffix='+00:00')}, "
                f"{(t_start_ns - now_ns) / NS_PER_S:.1f} s ahead of this machine's clock; "
                "give the recording a start time in the past (start=... or its "
                "core:datetime), or check the clock."
            )
        if self._resume_from is None:
            return
        end_ns, rate_hz = self._resume_from.t_end_ns, self._resume_from.sample_rate_hz
        if t_start_ns < end_ns - samples_to_ns(1, rate_hz):
            raise ConfigError(
                f"{self._info.uri} starts at {utc_iso(t_start_ns, digits=3, suffix='+00:00')}, before the end of "
                f"what {self.hot_path} already holds ({utc_iso(end_ns, digits=3, suffix='+00:00')}); the hot DB "
                "keeps one timeline and nothing is stored over it. Replay into "
                "another SDR_ASSETS_HOME, or give the replay a later start (start=...)."
            )

    def _wait_for_wall_clock(self, event: Chunk | Gap) -> bool:
        """No sample is stored ahead of the wall clock: an unpaced replay that catches up
        with it goes on at its pace. False when the capture was stopped meanwhile. A stream that
        jumps into the future (a SigMF capture whose core:datetime lies years ahead: a gap to it,
        or a chunk starting there) is refused, as a first sample there is, rather than waited for."""
        now_ns = time.time_ns()
        lead_ns = (event.t_end_ns if isinstance(event, Gap) else event.t_start_ns) - now_ns
        if lead_ns > FUTURE_START_LIMIT_NS:
            raise ConfigError(
                f"{self._info.uri} jumps to {utc_iso(now_ns + lead_ns, digits=3, suffix='+00:00')}, "
                f"{lead_ns / NS_PER_S:.1f} s ahead of this machine's clock, and no sample is stored ahead of "
                "it; fix the recording's capture times (core:datetime), or check the clock."
            )
        ahead_s = (event.t_end_ns - now_ns) / 1e9
        if ahead_s > 0:
            return not self._stopped.wait(ahead_s)
        return True

    # ---- writer thread -------------------------------------------------------------------
    def _write_thread(self) -> None:
        from sdr_assets.store.hot import HotWriter

        hot = None
        try:
            bound = {} if self._telemetry_limits is None else {"telemetry_limits": self._telemetry_limits}
            hot = HotWriter(
                self.hot_path,
                synchronous=self._synchronous,
                cap_bytes=self._cap_bytes,
                max_age_s=self._max_age_s,
                **bound,
            )
            hot.open()
            self._resume_from = hot.timeline_end()
            self.capture_id = hot.begin_capture(self._info, time.time_ns())
        except SdrAssetsError as exc:
            self._error = exc
        except Exception as exc:
            traceback.print_exc()
            self._error = CaptureError(f"cannot start writing {self.hot_path}: {type(exc).__name__}: {exc}")
        finally:
            if self.capture_id is None and hot is not None:
                hot.close()
            self._ready.set()
        if self.capture_id is None:
            return
        try:
            self._write_loop(hot)
        except SdrAssetsError as exc:
            self._writer_failed(exc)
        except Exception as exc:
            traceback.print_exc()
            self._writer_failed(CaptureError(f"writing {self.hot_path} failed: {type(exc).__name__}: {exc}"))
        finally:
            try:
                hot.end_capture(self.capture_id, self._end_reason())
            except SdrAssetsError as exc:
                self._log(f"warning: could not record the end of capture {self.capture_id}: {exc}")
            hot.close()

    def _writer_failed(self, exc: SdrAssetsError) -> None:
        self._writer_dead = True
        self._fail(exc)
        self._ring.close()
        while not self._ring.drained():  # what is left can no longer be stored: count it
            for chunk in self._ring.get_batch(1 << 30, 0.0):
                self.counters.add_lost("write_error", chunk.n_samples)

    def _write_loop(self, hot) -> None:
        interval_s = self._telemetry_interval_s
        next_telemetry = time.monotonic() + interval_s
        while True:
            finished = self._ring.drained()  # checked first: the side queue is complete then
            wait_s = min(self._batch_max_s, max(0.0, next_telemetry - time.monotonic()))
            # no copy: the chunks are views into the ring, its space is freed once committed
            chunks, crcs = self._ring.take_batch(self._batch_target, wait_s)
            try:
                gaps, notes = [], []
                side = self._losses.side
                while side:
                    event = side.popleft()
                    (gaps if isinstance(event, Gap) else notes).append(event)
                telemetry = []
                if finished or time.monotonic() >= next_telemetry:
                    telemetry = self._telemetry_rows(hot)
                    next_telemetry = max(next_telemetry + interval_s, time.monotonic())
                if chunks or gaps or notes or telemetry:
                    self._commit(hot, chunks, crcs, gaps, notes, telemetry)
            finally:
                del chunks  # (the views into the ring)
                self._ring.release_batch()
            if finished:
                return

    def _commit(self, hot, chunks, crcs, gaps, notes, telemetry) -> None:
        if self._writer_delay_s and chunks:
            time.sleep(self._writer_delay_s)  # test hook: a writer slowed on purpose
        try:
            result = hot.write_batch(
                self.capture_id, chunks, gaps=gaps, annotations=notes, telemetry=telemetry, iq_crc32s=crcs
            )
        except BaseException:
            for chunk in chunks:
                self.counters.add_lost("write_error", chunk.n_samples)
            raise
        n_bytes = sum(len(c.iq) for c in chunks)
        self.counters.samples_stored += sum(c.n_samples for c in chunks)
        self._bytes_stored += n_bytes
        self._pruned_chunks += result.pruned_chunks
        if chunks:
            self._sampler.note_commit(result.commit_s, n_bytes)

    def _telemetry_rows(self, hot) -> list:
        return self._sampler.rows(
            self.counters,
            ring_fill=self._ring.take_peak_fraction(),
            ring_high_water=self._ring.high_water_fraction,
            bytes_stored=self._bytes_stored,
            db_size_bytes=hot.db_size_bytes(),
            extra={"pruned_chunks": self._pruned_chunks, **hot.checkpoint_figures()},
        )
