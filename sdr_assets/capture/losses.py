"""Turning lost samples into Gap records: coalesced ring overflows and restart dead time.

The reader thread owns a :class:`LossRecorder`; the gaps it makes go, with the source's own
gaps and annotations, onto ``side`` (a deque the writer thread drains into each batch), and
every lost sample is added to the shared :class:`Counters` at once, by cause.
"""

import math
from collections import deque

from sdr_assets.capture.telemetry_sampler import RECEIVED_CAUSES, Counters
from sdr_assets.records import INT64_MAX, MAX_SAMPLE_RATE_HZ, NS_PER_S, Annotation, Chunk, Gap, samples_to_ns, utc_iso


class LossRecorder:
    """Counts losses and queues the gaps that record them (used by the reader thread)."""

    def __init__(self, counters: Counters, ring_bytes: int) -> None:
        self.counters = counters
        self.ring_bytes = ring_bytes
        self.side: deque[Gap | Annotation] = deque()
        self._run: list | None = None  # the overflow run: [t_start_ns, n_samples, sample_rate_hz]

    def overflowed(self, chunk: Chunk) -> None:
        """A chunk the ring could not take; joins the current run if it follows it."""
        self.counters.add_lost("ring_overflow", chunk.n_samples)
        run = self._run
        if (
            run is not None
            and run[2] == chunk.sample_rate_hz
            and abs(chunk.t_start_ns - (run[0] + samples_to_ns(run[1], run[2]))) <= samples_to_ns(1, run[2])
        ):
            run[1] += chunk.n_samples
            return
        self.flush()
        self._run = [chunk.t_start_ns, chunk.n_samples, chunk.sample_rate_hz]

    def flush(self) -> None:
        """End the current overflow run (a chunk fitted again, a source gap, the end)."""
        if self._run is not None:
            t_start_ns, n, rate = self._run
            self._run = None
            self.side.append(
                Gap(
                    t_start_ns, n, rate, "ring_overflow", f"ring full ({self.ring_bytes} bytes): the writer fell behind"
                )
            )

    def source_event(self, event: Gap | Annotation) -> None:
        """A gap the source reported (counted under its cause) or an annotation: queued.
        A source's ``late`` samples reached it, so they count as received too."""
        if isinstance(event, Gap):
            self.flush()
            self.counters.add_lost(event.cause, event.n_samples_lost)
            if event.cause in RECEIVED_CAUSES:
                self.counters.samples_received += event.n_samples_lost
        self.side.append(event)

    def restart(self, resume_from, first_t_start_ns: int) -> Gap | None:
        """Record the dead time between the newest stored sample ``resume_from`` (a
        ``store.hot.TimelineEnd``: t_end_ns, sample_rate_hz) and the new stream's first sample, if any."""
        if resume_from is None:
            return None
        prev_end_ns, rate_hz = resume_from.t_end_ns, resume_from.sample_rate_hz
        note = ""
        if not (isinstance(rate_hz, int | float) and 1.0 <= rate_hz <= MAX_SAMPLE_RATE_HZ):
            # a row an older version stored (a synthetic rate=1e300): count at the nearest
            # rate a source may claim, so the gap can be stored and this capture can start
            number = isinstance(rate_hz, int | float) and not math.isnan(rate_hz)
            clamped = min(max(rate_hz, 1.0), MAX_SAMPLE_RATE_HZ) if number else MAX_SAMPLE_RATE_HZ
            note = f"; the newest stored chunk claims {rate_hz!r} Hz: counted at {clamped:g} Hz"
            rate_hz = clamped
        dead_ns = first_t_start_ns - prev_end_ns
        if dead_ns <= samples_to_ns(1, rate_hz):
            return None  # a replay that starts earlier, or a seamless continuation
        n = min(int(round(dead_ns * rate_hz / NS_PER_S)), INT64_MAX)
        gap = Gap(
            prev_end_ns,
            n,
            rate_hz,
            "restart",
            f"service was down from {utc_iso(prev_end_ns, digits=3, suffix='+00:00')} "
            f"to {utc_iso(first_t_start_ns, digits=3, suffix='+00:00')} "
            f"({dead_ns / NS_PER_S:.3f} s){note}",
        )
        self.counters.add_lost("restart", n)
        self.side.append(gap)
        return gap
