"""The wall-clock discipline alone, on simulated arrivals (no sockets, no sleeping): jitter,
a dongle crystal off by 1000 ppm either way, a burst at the start, a hot DB that ends a little
or far in the future, USB buffers lost before the first one. In every case each stored sample
lies in [arrival - T, arrival], the books close and stored samples and gaps tile the time."""

import numpy as np
import pytest

from sdr_assets.capture.clock import DEFAULT_TOLERANCE_S, WallClock
from sdr_assets.errors import CaptureError
from sdr_assets.records import NS_PER_S, Chunk, Gap, samples_to_ns
from sdr_assets_tests.rtltcp_scripts import locate, payload

RATE_HZ = 250_000
T0_NS = 1_700_000_000 * NS_PER_S
TOL_NS = int(DEFAULT_TOLERANCE_S * NS_PER_S)
BLOCK = 8_192  # samples a block (33 ms at 250 kS/s)


def _run(
    arrivals,
    *,
    open_ns: int | None = T0_NS,
    stop_ns: int | None = None,
    not_before_ns: int | None = None,
    lost_first: int = 0,
):
    """Feed blocks of BLOCK samples arriving at ``arrivals`` (ns); the events and the
    wire log [(arrival_ns, end offset in bytes)]."""
    stop_ns = stop_ns if stop_ns is not None else arrivals[-1]
    clock = WallClock(
        center_freq_hz=433.92e6, sample_rate_hz=RATE_HZ, gain_db=None, chunk_samples=32_768, now_ns=lambda: stop_ns
    )
    if not_before_ns is not None:
        clock.not_before(not_before_ns)
    events = [] if open_ns is None else clock.opened(open_ns)
    events += clock.lost(lost_first, "usb_queue_overflow", "test")
    log, off = [], 0
    for w in arrivals:
        events += clock.feed(payload(off, 2 * BLOCK), int(w))
        off += 2 * BLOCK
        log.append((int(w), off))
    return events + clock.finish(stop_ns), log


def _check(events, log) -> dict[str, int]:
    """Every stored sample in [arrival - T, arrival]; books; tiling. Lost by cause."""
    chunks = [e for e in events if isinstance(e, Chunk)]
    gaps = [e for e in events if isinstance(e, Gap)]
    arrived = np.array([w for w, _ in log], dtype=np.int64)
    ends = np.array([o for _, o in log], dtype=np.int64)
    hint = None
    for c in chunks:
        off = locate(c.iq, hint)
        hint = off + len(c.iq)
        at = arrived[np.searchsorted(ends, off + 2 * np.arange(c.n_samples) + 1, side="right")]
        stamps = c.t_start_ns + np.round(np.arange(c.n_samples) * NS_PER_S / RATE_HZ).astype(np.int64)
        assert (stamps <= at).all(), "a sample stamped after it arrived"
        assert (stamps >= at - TOL_NS).all(), "a sample stamped more than T before it arrived"
    lost: dict[str, int] = {}
    for g in gaps:
        lost[g.cause] = lost.get(g.cause, 0) + g.n_samples_lost
    assert sum(c.n_samples for c in chunks) + lost.get("late", 0) == ends[-1] // 2
    spans = [(e.t_start_ns, e.t_end_ns) for e in events if e.t_end_ns > e.t_start_ns]
    for (_, e0), (s1, _) in zip(spans, spans[1:]):  # in the order they were handed out
        assert abs(s1 - e0) <= samples_to_ns(1, RATE_HZ)
    return lost


def _steady(
    n_blocks: int, rate_ratio: float = 1.0, jitter_ms: float = 0.0, first_ms: float = 40.0, seed: int = 0
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    period_ns = BLOCK / (RATE_HZ * rate_ratio) * NS_PER_S
    due = T0_NS + first_ms * 1e6 + period_ns * np.arange(n_blocks)
    return np.maximum.accumulate(due + rng.uniform(0, jitter_ms * 1e6, n_blocks)).astype(np.int64)


def test_a_jittery_stream_is_stored_whole_from_its_opening():
    events, log = _run(_steady(600, jitter_ms=30))  # 20 s, delivered up to 30 ms late
    assert _check(events, log) == {}
    # the radio streams from the opening (less a margin for the jitter to come)
    assert T0_NS - TOL_NS // 8 <= events[0].t_start_ns <= T0_NS


def test_a_fast_crystal_is_trimmed_late_and_a_slow_one_leaves_underrun_gaps():
    """Over 100 s, a radio 0.5 % fast delivers 0.5 s of samples more than the wall clock
    allows, one 3 % slow 3 s fewer (real dongles are ~100 ppm off: the same, slower)."""
    fast, log = _run(_steady(3_000, rate_ratio=1.005, jitter_ms=5))
    lost = _check(fast, log)
    assert set(lost) == {"late"} and 0.1 * RATE_HZ <= lost["late"] <= 0.6 * RATE_HZ
    assert sum(isinstance(e, Gap) for e in fast) <= 20  # trimmed now and then, not every block
    slow, log = _run(_steady(3_000, rate_ratio=0.97, jitter_ms=5))
    lost = _check(slow, log)
    assert set(lost) == {"underrun"} and 0.5 * RATE_HZ <= lost["underrun"] <= 3.5 * RATE_HZ


def test_a_burst_at_the_opening_starts_the_stream_at_most_t_over_8_before_it():
    burst = T0_NS + 5_000_000 + np.arange(200) * 10_000  # 6.5 s of samples within 2 ms
    events, log = _run(np.concatenate([burst, _steady(100, first_ms=300)]))
    lost = _check(events, log)
    assert lost["late"] > 100 * BLOCK and set(lost) == {"late"}
    assert min(e.t_start_ns for e in events) >= T0_NS - TOL_NS // 8


def test_a_stall_until_the_stop_and_a_silent_opening_are_gaps():
    events, log = _run(_steady(30), stop_ns=T0_NS + 10 * NS_PER_S)
    last = events[-1]
    assert isinstance(last, Gap) and last.cause == "stall" and last.t_end_ns == T0_NS + 10 * NS_PER_S
    _check(events, log)
    late_start, log = _run(_steady(30, first_ms=3_000))  # nothing for 3 s after the opening
    gap = next(e for e in late_start if isinstance(e, Gap))
    assert gap.cause == "stall" and gap.t_start_ns == T0_NS and gap.n_samples_lost > 2.5 * RATE_HZ
    _check(late_start, log)


def test_the_stream_never_starts_before_the_end_of_the_hot_db():
    end_ns = T0_NS + 500_000_000  # half a second ahead of the opening
    events, log = _run(_steady(100), not_before_ns=end_ns, stop_ns=T0_NS)
    _check(events, log)
    assert min(e.t_start_ns for e in events) >= end_ns
    with pytest.raises(CaptureError, match="ahead of this machine's clock"):
        _run(_steady(10), not_before_ns=T0_NS + 3 * TOL_NS, stop_ns=T0_NS)


def test_usb_buffers_lost_before_the_first_are_recorded_before_it():
    events, log = _run(_steady(50), open_ns=None, lost_first=2 * BLOCK)
    assert isinstance(events[0], Gap) and events[0].cause == "usb_queue_overflow"
    assert events[0].n_samples_lost == 2 * BLOCK
    assert events[1].t_start_ns == events[0].t_end_ns
    _check(events, log)
