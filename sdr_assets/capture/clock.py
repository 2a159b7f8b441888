"""The clock discipline of live sources: the stored timeline follows the wall clock.

A live radio takes samples at its rate whether or not they reach us; the wire (USB, a TCP
connection) hands them over in blocks, each some time after it was taken (rtl_tcp and
librtlsdr deliver 256 KiB buffers: 0.52 s of samples at 250 kS/s). Counting bytes alone
cannot tell a slow or stalled wire from a healthy one, so :class:`WallClock` checks every
block against the wall clock when it arrives. With tolerance T (``tolerance_s``, 2 s by
default), a block of n samples that arrives at wall time W:

* continues the timeline from the last sample when its samples then end no later than W and
  start no earlier than W - T: no sample is stamped after it arrived, none more than T before;
* shortfall (it would start more than T before W: the wire delivered fewer samples than the
  rate): the samples the radio took in between are a gap, counted at the rate (``stall`` when
  nothing arrived for more than T before the block, else ``underrun``), and the timeline is
  anchored again;
* excess (it would end after W: the sender drains a backlog or sends faster than the rate):
  its oldest samples are discarded so that the rest ends T/20 before W (the whole block when
  less than half of it and less than T/8 would be left). They were received but have no
  place on the timeline, whose time they would repeat: a ``late`` gap of no duration where
  they were discarded.

Anchoring (a connection opens, a reconnect, after a shortfall): the blocks of the next T/16
of wall time (or T of samples, whichever comes first) are held, then placed from the latest
start that puts none of them after its arrival (the least delay seen) less a margin of T/20
for jitter, never before the end of the timeline or of the hot DB. A connection starts where
it opened (less the margin), or up to T/8 earlier if its first blocks hold more samples than
time since then (the opening is measured once the header is in; the server may have started
before). The dead time after a drop is a ``reconnect`` gap, a radio that sends nothing for
more than T after a connection opened a ``stall``. At stop, time missing beyond T is a gap
too (a stall or a lost connection that lasts until the stop).

So every sample the wire delivered is stored or counted ``late``, and stored samples and
gaps, end to end, stay within T of the wall clock. The clock also cuts what it keeps into
chunks of ``chunk_samples``; a gap, a late drop, a retune or a drop ends a chunk.
"""

import time

from sdr_assets.errors import CaptureError
from sdr_assets.records import NS_PER_S, Chunk, Gap, samples_to_ns, utc_iso

DEFAULT_TOLERANCE_S = 2.0


class WallClock:
    """Turns blocks of cu8 bytes and their arrival times into chunks and gaps, stamped
    against the wall clock (one per source, used by one thread)."""

    def __init__(
        self,
        *,
        center_freq_hz: float,
        sample_rate_hz: float,
        gain_db: float | None,
        chunk_samples: int,
        tolerance_s: float = DEFAULT_TOLERANCE_S,
        now_ns=time.time_ns,
    ) -> None:
        if not tolerance_s > 0:
            raise CaptureError(f"clock tolerance {tolerance_s!r} s must be > 0 (2 is the default)")
        self.freq, self.rate, self.gain = float(center_freq_hz), float(sample_rate_hz), gain_db
        self.chunk_bytes = 2 * int(chunk_samples)
        self.tolerance_ns = int(tolerance_s * NS_PER_S)
        self.settle_ns = self.tolerance_ns // 16  # blocks held to anchor the timeline
        self.margin_ns = self.tolerance_ns // 20  # slack left at an anchor for jitter
        self.early_ns = self.tolerance_ns // 8  # how much before its opening a connection may start
        self.min_keep_ns = self.tolerance_ns // 8
        self.now_ns = now_ns
        self._seg_t0: int | None = None  # timeline end = seg_t0 + seg_n samples at rate
        self._seg_n = 0
        self._held: list[tuple[bytes, int]] | None = None  # blocks of an anchoring
        self._held_n = 0
        self._why_anchor: tuple[str, str] | None = None  # (cause, detail) of a shortfall
        self._open_ns: int | None = None  # a connection opened; no block placed since
        self._reconnect_why: str | None = None  # the connection dropped (why)
        self._not_before: int | None = None
        self._last_arrival: int | None = None
        self._late_n = 0
        self._late_at: int | None = None
        self._lost_first: list[tuple[int, str, str]] = []
        self._buf = bytearray()  # kept bytes not yet out as a chunk
        self._buf_t0 = 0

    # ---- state ----------------------------------------------------------------------------
    @property
    def next_ns(self) -> int | None:
        """The stamp the next sample gets (the end of the timeline), None before the start."""
        if self._seg_t0 is None:
            return None
        return self._seg_t0 + samples_to_ns(self._seg_n, self.rate)

    def max_block_samples(self) -> int:
        """The most samples a block may hold (half the tolerance: a block that arrives at
        once is then never stamped more than T before it arrived)."""
        return max(1, int(self.tolerance_ns // 2 * self.rate / NS_PER_S))

    def not_before(self, t_ns: int) -> None:
        """Never stamp a sample before ``t_ns`` (the end of what the hot DB already holds).

        Raises CaptureError when ``t_ns`` lies beyond the tolerance in the future: samples
        taken now could only be stored over it."""
        ahead_ns = int(t_ns) - self.now_ns()
        if ahead_ns > self.tolerance_ns:
            raise CaptureError(
                f"the hot DB already holds samples up to {utc_iso(t_ns, digits=3, suffix='+00:00')}, "
                f"{ahead_ns / NS_PER_S:.1f} s ahead of this machine's clock; a live capture "
                "would store samples over them. Check the system clock (NTP), or move the hot "
                "DB aside (or set SDR_ASSETS_HOME to another folder)."
            )
        self._not_before = int(t_ns)

    # ---- what the source tells ------------------------------------------------------------
    def opened(self, t_ns: int) -> list:
        """A connection opened at ``t_ns``: the radio streams from about here."""
        out = self._settle()
        if self._seg_t0 is None and self._open_ns is not None:  # the last one sent nothing
            self._seg_t0, self._seg_n = self._floored(self._open_ns), 0
        self._open_ns = self._last_arrival = int(t_ns)
        return out

    def dropped(self, why: str) -> list:
        """The connection went away: what it delivered is placed; the dead time until the
        next connection is a ``reconnect`` gap."""
        out = self._settle() + self._flush()
        self._reconnect_why = why
        return out

    def retune(self, center_freq_hz: float, sample_rate_hz: float, gain_db: float | None) -> list:
        """Bytes fed from now on carry the new tuning; the timeline goes on at the new rate."""
        out = self._settle() + self._flush()
        end = self.next_ns
        self.freq, self.rate, self.gain = float(center_freq_hz), float(sample_rate_hz), gain_db
        if end is not None:
            self._seg_t0, self._seg_n = end, 0
        return out

    def lost(self, n_samples: int, cause: str, detail: str) -> list:
        """``n_samples`` the source knows it lost here (e.g. a discarded USB buffer); before
        the first block they are recorded just before it."""
        if n_samples <= 0:
            return []
        if self._seg_t0 is None or self._held is not None:
            self._lost_first.append((n_samples, cause, detail))
            return []
        return self._flush() + self._flush_late() + [self._gap(n_samples, cause, detail)]

    def feed(self, data, arrived_ns: int) -> list:
        """A block of whole cu8 samples (bytes, or a memoryview the caller reuses once this
        returns) that arrived at ``arrived_ns``: the chunks and gaps it completes, in time
        order. Only what is kept is copied."""
        if not data:
            return []
        if self._held is None and (self._seg_t0 is None or self._open_ns is not None):
            self._held = []  # a connection's first blocks anchor it
        if self._held is None:
            start, n = self.next_ns, len(data) // 2
            if (
                start + samples_to_ns(n, self.rate) <= arrived_ns and arrived_ns - start > self.tolerance_ns
            ):  # shortfall: anchor again
                quiet_ns = arrived_ns - self._last_arrival
                if quiet_ns > self.tolerance_ns:
                    self._why_anchor = ("stall", f"no data for {quiet_ns / NS_PER_S:.3f} s")
                else:
                    self._why_anchor = ("underrun", "the wire delivered fewer samples than the sample rate")
                self._held = []
        self._last_arrival = arrived_ns
        if self._held is not None:
            self._held.append((bytes(data), arrived_ns))
            self._held_n += len(data) // 2
            if (
                arrived_ns - self._held[0][1] < self.settle_ns
                and self._held_n < self.tolerance_ns * self.rate / NS_PER_S
            ):
                return []  # (more samples than the tolerance: a burst, no need to wait)
            return self._settle()
        return self._place(data, arrived_ns)

    def finish(self, now_ns: int | None = None) -> list:
        """At stop: everything held is placed, samples discarded late are recorded, and time
        missing beyond the tolerance is a gap up to now (a stall or a lost connection that
        lasts until the stop)."""
        out = self._settle() + self._flush() + self._flush_late()
        if self._seg_t0 is None:
            if self._open_ns is None:
                return out
            self._seg_t0, self._seg_n = self._floored(self._open_ns), 0
        w = self.now_ns() if now_ns is None else now_ns
        start = self.next_ns
        if w - start > self.tolerance_ns:
            n = int(round((w - start) * self.rate / NS_PER_S))
            if self._reconnect_why is not None:
                cause, what = "reconnect", f"{self._reconnect_why}; no data again before the stop"
            else:
                quiet_ns = w - (self._last_arrival if self._last_arrival is not None else start)
                cause, what = "stall", f"no data for the last {quiet_ns / NS_PER_S:.3f} s"
            out.append(self._gap(n, cause, f"{what} (recorded at the stop)"))
        return out

    # ---- placing --------------------------------------------------------------------------
    def _settle(self) -> list:
        """Place the held blocks from the latest start that puts none after its arrival."""
        held, self._held, self._held_n = self._held, None, 0
        if not held:
            return []
        n_lost = sum(k for k, _, _ in self._lost_first)
        cum, bound = n_lost, None
        for data, w in held:
            cum += len(data) // 2
            t = w - samples_to_ns(cum, self.rate)
            bound = t if bound is None else min(bound, t)
        first_w = held[0][1]
        out = self._flush() + self._flush_late()
        if self._open_ns is not None or self._seg_t0 is None:  # a connection (or stream) starts
            opened = bound if self._open_ns is None else self._floored(self._open_ns)
            self._open_ns = None
            if first_w - opened <= self.tolerance_ns:
                # the radio streams from the opening (earlier if the blocks say so: the opening
                # is measured once the header is in), less the margin; T/8 before it at most
                start = self._floored(max(min(bound, opened) - self.margin_ns, opened - self.early_ns))
            else:  # nothing for more than T after the opening
                start = self._floored(bound - self.margin_ns)
            if self._seg_t0 is None:
                self._seg_t0, self._seg_n = opened if start > opened else start, 0
            if start > self.next_ns:
                why, self._reconnect_why = self._reconnect_why, None
                if why is not None:
                    cause, detail = "reconnect", f"{why}; the stream went on after"
                else:
                    cause, detail = "stall", "no data after the connection opened for"
                out += self._gap_to(start, cause, f"{detail} {(first_w - opened) / NS_PER_S:.3f} s")
            self._reconnect_why = None
        else:  # after a shortfall
            cause, detail = self._why_anchor or ("underrun", "")
            start = self._floored(bound - self.margin_ns)
            behind_ns = first_w - self.next_ns
            out += self._gap_to(
                start, cause, f"{detail}; the timeline was {behind_ns / NS_PER_S:.3f} s behind the wall clock"
            )
        self._why_anchor = None
        out += [self._gap(k, cause, detail) for k, cause, detail in self._lost_first]
        self._lost_first.clear()
        for data, w in held:
            out += self._place(data, w)
        return out

    def _place(self, data: bytes, w: int) -> list:
        """One block on from the end of the timeline; its oldest samples are late if it
        would end after it arrived."""
        n = len(data) // 2
        start = self.next_ns
        room = int(round((w - start) * self.rate / NS_PER_S))  # (to the nearest sample)
        keep = n
        if room < n:  # excess: what is kept ends a margin before the arrival
            keep = max(int((w - self.margin_ns - start) * self.rate / NS_PER_S), 0)
            if keep * 2 < n and keep * NS_PER_S < self.min_keep_ns * self.rate:
                keep = 0
            if self._late_at is None:
                self._late_at = start
            self._late_n += n - keep
        if keep == 0:
            return []
        out = []
        if keep < n or self._late_n:
            out += self._flush() + self._flush_late()
        if not self._buf:
            self._buf_t0 = start
        self._buf += data[2 * (n - keep) :] if keep < n else data
        self._seg_n += keep
        while len(self._buf) >= self.chunk_bytes:
            out.append(self._chunk(self.chunk_bytes))
        return out

    # ---- helpers --------------------------------------------------------------------------
    def _chunk(self, n_bytes: int) -> Chunk:
        chunk = Chunk(
            t_start_ns=self._buf_t0,
            center_freq_hz=self.freq,
            sample_rate_hz=self.rate,
            gain_db=self.gain,
            iq=bytes(self._buf[:n_bytes]),
        )
        del self._buf[:n_bytes]
        self._buf_t0 = chunk.t_end_ns
        return chunk

    def _flush(self) -> list:
        return [self._chunk(len(self._buf))] if self._buf else []

    def _floored(self, t_ns: int) -> int:
        """``t_ns``, but never before the end of the timeline or of the hot DB."""
        for floor in (self.next_ns, self._not_before):
            if floor is not None and t_ns < floor:
                t_ns = floor
        return t_ns

    def _gap(self, n: int, cause: str, detail: str) -> Gap:
        gap = Gap(self.next_ns, n, self.rate, cause, detail)
        self._seg_n += n
        return gap

    def _gap_to(self, t_ns: int, cause: str, detail: str) -> list:
        n = int(round((t_ns - self.next_ns) * self.rate / NS_PER_S))
        return [self._gap(n, cause, detail)] if n > 0 else []

    def _flush_late(self) -> list:
        if not self._late_n:
            return []
        n, self._late_n = self._late_n, 0
        at, self._late_at = self._late_at, None
        return [
            Gap(
                at,
                n,
                self.rate,
                "late",
                f"{n} samples arrived after their time had passed (the sender drained a "
                "backlog or sent faster than the rate); discarded",
                duration_ns=0,
            )
        ]
