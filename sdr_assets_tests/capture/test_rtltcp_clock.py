"""The rtl_tcp client's clock discipline against scripted servers, through the real capture
service into a real hot DB: a slow drip, a stall, a stall until shutdown, a burst far
faster than the rate, a reconnect. In every case the books close (received = stored + lost
after receipt), every stored byte is the wire's own, every stored sample's time lies within
the tolerance of when it arrived (never after the service received it), and stored samples
and gaps tile the timeline up to the stop.
"""

import time
from dataclasses import dataclass

import numpy as np
import pytest

from sdr_assets.capture.clock import DEFAULT_TOLERANCE_S
from sdr_assets.capture.rtltcp import RtlTcpSource
from sdr_assets.capture.service import CaptureService
from sdr_assets.capture.telemetry_sampler import RECEIVED_CAUSES
from sdr_assets.records import NS_PER_S, samples_to_ns
from sdr_assets_tests.capture_support import CountingSource, query, uncovered_holes
from sdr_assets_tests.rtltcp_scripts import ScriptedServer, locate, payload

RATE_HZ = 250_000
BYTES_PER_S = 2 * RATE_HZ
TOL_NS = int(DEFAULT_TOLERANCE_S * NS_PER_S)
PIECE = 16_384  # bytes a send while paced (33 ms at 250 kS/s)
# Far more than the ring and than the rate: 1 GB, as fast as loopback takes it.
BURST_BYTES = 1 << 30


@dataclass
class Run:
    summary: object
    started_ns: int
    stopped_ns: int
    handed_at: dict


def _capture(hot, port: int, duration_s: float, **client_kw) -> Run:
    client = RtlTcpSource(
        "127.0.0.1",
        port,
        center_freq_hz=433.92e6,
        sample_rate_hz=RATE_HZ,
        chunk_samples=32_768,
        backoff_initial_s=0.05,
        **client_kw,
    )
    src = CountingSource(client)
    svc = CaptureService(src, hot, ring_bytes=1 << 20, duration_s=duration_s, window_s_for_capacity_check=1.0)
    t0 = time.time_ns()
    summary = svc.run()
    return Run(summary, t0, time.time_ns(), src.handed_at)


def _gaps(hot, capture_id: int) -> list[tuple]:
    return query(
        hot,
        "SELECT t_start_ns, t_end_ns, n_samples_lost, cause FROM gaps WHERE capture_id = ? ORDER BY t_start_ns, gap_id",
        (capture_id,),
    )


def _check_books(hot, run: Run, server: ScriptedServer) -> dict:
    """The promises every scripted case must keep; returns samples lost by cause."""
    cid = run.summary.capture_id
    chunks = query(hot, "SELECT t_start_ns, n_samples, iq FROM chunks WHERE capture_id = ? ORDER BY t_start_ns", (cid,))
    gaps = _gaps(hot, cid)
    lost: dict[str, int] = {}
    for _, _, n, cause in gaps:
        lost[cause] = lost.get(cause, 0) + n
    stored = sum(n for _, n, _ in chunks)
    # received = stored + lost after receipt (the DB's own figures, and the summary's)
    after_receipt = sum(n for c, n in lost.items() if c in RECEIVED_CAUSES)
    assert run.summary.samples_received == stored + after_receipt, (run.summary.line(), lost)
    assert run.summary.samples_stored == stored and run.summary.samples_lost == lost
    assert 2 * run.summary.samples_received <= server.offset  # nothing made up
    # every stored byte is the wire's, and every sample's time lies within the tolerance of
    # when it arrived; none lies after the service got it
    hint = None
    for t_start, n, iq in chunks:
        off = locate(iq, hint)
        hint = off + len(iq)
        assert iq == payload(off, len(iq))
        stamps = t_start + np.round(np.arange(n) * (NS_PER_S / RATE_HZ)).astype(np.int64)
        sent_from, sent_by = server.arrival_bounds(off + 2 * np.arange(n) + 1)
        late = sent_from - TOL_NS - stamps
        assert late.max() <= 0, f"a sample stamped {late.max() / 1e9:.3f} s beyond the tolerance before it was sent"
        early = stamps - (sent_by + TOL_NS)
        assert early.max() <= 0, f"a sample stamped {early.max() / 1e9:.3f} s beyond the tolerance after it was sent"
        end = t_start + samples_to_ns(n, RATE_HZ)
        assert end <= run.handed_at[t_start], "a chunk stamped after it reached the service"
    # chunks and gaps tile the timeline, from the first sample to within T of the stop
    spans = sorted(
        [(t, t + samples_to_ns(n, RATE_HZ)) for t, n, _ in chunks]
        + [(t0, t1) for t0, t1, _, cause in gaps if t1 > t0 and cause != "restart"]
    )
    one = samples_to_ns(1, RATE_HZ)
    for (_, e0), (s1, _) in zip(spans, spans[1:]):
        assert abs(s1 - e0) <= one, f"hole or overlap of {(s1 - e0) / 1e9:.6f} s in the timeline"
    assert spans[0][0] >= run.started_ns - TOL_NS
    assert run.stopped_ns - TOL_NS - NS_PER_S // 2 <= spans[-1][1] <= run.stopped_ns
    return lost


def test_a_slow_drip_is_recorded_as_underrun_not_stamped_as_a_full_stream(data_root, port):
    """1,000 B/s to a 250 kS/s capture: what arrives is stored at its own time, the rest of
    the time is `underrun` gaps (before: 26 ms of samples for the whole run, no gap)."""
    hot = data_root / "hot.db"
    with ScriptedServer(port, [[("pace", 1000, 60, 40)]]) as server:
        run = _capture(hot, port, duration_s=5.0)
    lost = _check_books(hot, run, server)
    assert set(lost) == {"underrun"}
    assert lost["underrun"] >= (5.0 - DEFAULT_TOLERANCE_S) * RATE_HZ
    assert run.summary.samples_stored <= 5.5 * 1000 / 2


def test_a_stall_is_a_recorded_gap_and_the_stream_goes_on(data_root, port):
    stall_s = 3.5
    script = [("pace", BYTES_PER_S, 1.0, PIECE), ("silent", stall_s), ("pace", BYTES_PER_S, 60, PIECE)]
    hot = data_root / "hot.db"
    with ScriptedServer(port, [script]) as server:
        run = _capture(hot, port, duration_s=6.5, stall_timeout_s=10.0)
    lost = _check_books(hot, run, server)
    assert set(lost) <= {"stall", "late"}
    (stall,) = [g for g in _gaps(hot, run.summary.capture_id) if g[3] == "stall"]
    assert (stall_s - DEFAULT_TOLERANCE_S) * RATE_HZ <= stall[2] <= (stall_s + 0.5) * RATE_HZ
    assert server.connections == 1


def test_a_stall_until_shutdown_is_recorded_at_the_stop(data_root, port):
    script = [("pace", BYTES_PER_S, 1.0, PIECE), ("hold",)]
    hot = data_root / "hot.db"
    with ScriptedServer(port, [script]) as server:
        run = _capture(hot, port, duration_s=4.5, stall_timeout_s=10.0)
    lost = _check_books(hot, run, server)
    last = _gaps(hot, run.summary.capture_id)[-1]
    assert last[3] == "stall" and last[2] >= (3.5 - DEFAULT_TOLERANCE_S) * RATE_HZ
    assert set(lost) <= {"stall", "late"}


def test_a_burst_is_never_stamped_ahead_and_a_later_capture_does_not_overlap(data_root, port):
    """A server that sends 1 GB as fast as it can: the samples that cannot be placed are
    `late`, none is stamped in the future, and the next capture follows the first one's
    timeline (a restart gap in between when there is dead time), never over it."""
    hot = data_root / "hot.db"
    with ScriptedServer(port, [[("burst", BURST_BYTES), ("hold",)]]) as server:
        run = _capture(hot, port, duration_s=3.0)
        assert server.offset == BURST_BYTES, "the burst did not get through in 3 s"
    lost = _check_books(hot, run, server)
    assert lost["late"] > 0.9 * BURST_BYTES // 2
    with ScriptedServer(port, [[("pace", BYTES_PER_S, 60, PIECE)]]) as server:
        second = _capture(hot, port, duration_s=2.0)
    _check_books(hot, second, server)
    # the second capture starts where the first one's timeline (its samples, then the
    # stall until its stop) ends, or later with a restart gap in between: never over it
    first_end = max(
        query(
            hot, "SELECT max(t_start_ns + n_samples * 4000) FROM chunks WHERE capture_id = ?", (run.summary.capture_id,)
        )[0][0],
        max(t1 for _, t1, _, _ in _gaps(hot, run.summary.capture_id)),
    )
    starts = query(hot, "SELECT min(t_start_ns) FROM chunks WHERE capture_id = ?", (second.summary.capture_id,))[0][0]
    restart = [g for g in _gaps(hot, second.summary.capture_id) if g[3] == "restart"]
    assert starts >= first_end and first_end <= run.stopped_ns
    assert len(restart) <= 1 and all(
        g[0] == first_end and abs(g[1] - starts) <= samples_to_ns(1, RATE_HZ) for g in restart
    )
    assert uncovered_holes(hot) == []


def test_a_reconnect_is_a_recorded_gap_and_the_clock_follows_the_new_stream(data_root, port):
    first = [("pace", BYTES_PER_S, 1.0, PIECE), ("close",)]
    then = [("pace", BYTES_PER_S, 60, PIECE)]
    hot = data_root / "hot.db"
    with ScriptedServer(port, [first, then]) as server:
        run = _capture(hot, port, duration_s=3.5)
    lost = _check_books(hot, run, server)
    assert server.connections == 2 and set(lost) <= {"reconnect", "late"}
    assert lost["reconnect"] > 0


def test_a_hot_db_stamped_in_the_future_is_not_written_over(data_root, port):
    """A hot DB whose newest sample lies an hour ahead of the clock (what the byte clock
    left after a burst): a live capture refuses to store samples over it, and says why."""
    from sdr_assets.errors import CaptureError
    from sdr_assets.records import Chunk, SourceInfo
    from sdr_assets.store.hot import HotWriter

    hot = data_root / "hot.db"
    ahead_ns = time.time_ns() + 3_600 * NS_PER_S
    with HotWriter(hot) as writer:
        cid = writer.begin_capture(SourceInfo("test://old", "test", 433.92e6, RATE_HZ), time.time_ns())
        writer.write_batch(cid, [Chunk(ahead_ns, 433.92e6, RATE_HZ, None, bytes(2000))])
        writer.end_capture(cid, "eof")
    with ScriptedServer(port, [[("pace", BYTES_PER_S, 60, PIECE)]]):
        with pytest.raises(CaptureError, match="ahead of this machine's clock"):
            _capture(hot, port, duration_s=2.0)
    assert query(hot, "SELECT count(*) FROM chunks")[0][0] == 1
    assert query(hot, "SELECT end_reason FROM captures WHERE capture_id = 2")[0][0].startswith("error: ")
