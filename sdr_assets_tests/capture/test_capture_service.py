"""The capture service in-process, on real sources and a real hot DB file."""

import threading
import time

import pytest

from sdr_assets.capture.base import Source
from sdr_assets.capture.service import CaptureService
from sdr_assets.capture.uri import open_source
from sdr_assets.errors import ConfigError, SourceError
from sdr_assets.records import Chunk, SourceInfo, samples_to_ns
from sdr_assets.sigmf import format_datetime_ns, write_sigmf
from sdr_assets_tests.capture_support import CountingSource, latest_metrics, query, uncovered_holes, write_cu8


def _service(source, hot, **kw):
    kw.setdefault("window_s_for_capacity_check", 1.0)
    return CaptureService(source, hot, **kw)


def test_slow_writer_overflows_the_ring_and_every_sample_is_accounted(tmp_path):
    """received == stored + recorded as lost, read back from the DB, against what the
    source actually produced."""
    hot = tmp_path / "hot.db"
    src = CountingSource(open_source("synthetic://?seed=1&rate=1024000"))  # 2 MB/s, realtime
    svc = _service(src, hot, ring_bytes=1024 * 1024, writer_delay_s=1.0, duration_s=3.0)
    summary = svc.run()

    stored_db = query(hot, "SELECT coalesce(sum(n_samples), 0) FROM chunks")[0][0]
    gaps = query(hot, "SELECT n_samples_lost FROM gaps WHERE cause = 'ring_overflow'")
    lost_db = sum(n for (n,) in gaps)
    assert lost_db > 0, "the slowed writer should have overflowed the 1 MiB ring"
    assert stored_db + lost_db == src.samples_produced
    assert summary.samples_received == src.samples_produced
    assert summary.samples_stored == stored_db
    assert summary.samples_lost == {"ring_overflow": lost_db}
    # consecutive overflowed chunks became one gap each run, not one gap per chunk
    assert len(gaps) < lost_db // 131072
    # chunks and gaps tile the timeline: no hole anywhere, no overlap
    assert uncovered_holes(hot) == []
    # the last telemetry rows close the books too
    m = latest_metrics(hot, summary.capture_id)
    assert m["samples_received"] == m["samples_stored"] + m["samples_lost_ring_overflow"]
    assert m["samples_buffered"] == 0 and m["ring_high_water"] == pytest.approx(1.0, abs=0.3)
    assert query(hot, "SELECT end_reason FROM captures")[0][0] == "duration"


def test_unpaced_file_waits_for_room_instead_of_dropping(tmp_path):
    """A recording can be paused, so a slow writer costs time, not samples."""
    rec = write_cu8(tmp_path / "rec_433.92M_250k.cu8", 6 * 1024 * 1024)
    hot = tmp_path / "hot.db"
    src = CountingSource(open_source(f"file://{rec}"))
    summary = _service(src, hot, ring_bytes=1024 * 1024, writer_delay_s=0.05).run()
    assert summary.end_reason == "eof"
    assert summary.samples_lost == {}
    assert summary.samples_stored == summary.samples_received == src.samples_produced == 3 * 1024 * 1024
    assert query(hot, "SELECT count(*) FROM gaps")[0][0] == 0
    iq = b"".join(r[0] for r in query(hot, "SELECT iq FROM chunks ORDER BY seq"))
    assert iq == rec.read_bytes()  # stored exactly as in the file


class _FailingSource(Source):
    """Yields a few chunks, then fails like an unplugged dongle."""

    def __init__(self, n_ok: int):
        super().__init__()
        self.n_ok = n_ok

    def open(self):
        return SourceInfo("test://failing", "test", 100e6, 250_000.0, None, True)

    def events(self):
        for k in range(self.n_ok):
            yield Chunk(
                1_000_000_000 + samples_to_ns(k * 1000, 250_000.0), 100e6, 250_000.0, None, bytes([k % 256]) * 2000
            )
        raise SourceError("the dongle went away; plug it back in and restart")


def test_a_source_error_is_recorded_and_raised_after_storing_what_arrived(tmp_path):
    hot = tmp_path / "hot.db"
    with pytest.raises(SourceError, match="dongle went away"):
        _service(_FailingSource(5), hot).run()
    (reason,) = query(hot, "SELECT end_reason FROM captures")[0]
    assert reason.startswith("error: the dongle went away")
    assert query(hot, "SELECT count(*), sum(n_samples) FROM chunks")[0] == (5, 5000)


def test_capacity_refusal_creates_no_capture_row(tmp_path):
    hot = tmp_path / "hot.db"
    src = open_source("synthetic://?seed=1&rate=1024000")
    with pytest.raises(ConfigError, match="two"):
        CaptureService(src, hot, cap_bytes=1_000_000, window_s_for_capacity_check=60.0).run()
    assert not hot.exists() or query(hot, "SELECT count(*) FROM captures")[0][0] == 0


def test_restart_records_the_dead_time_as_a_gap(tmp_path):
    hot = tmp_path / "hot.db"
    first = _service(open_source("synthetic://?seed=1&rate=250000"), hot, duration_s=1.5).run()
    threading.Event().wait(1.0)  # the service is "down" for a second
    second = _service(open_source("synthetic://?seed=2&rate=250000"), hot, duration_s=1.5).run()
    rows = query(
        hot, "SELECT capture_id, t_start_ns, t_end_ns, n_samples_lost, detail FROM gaps WHERE cause = 'restart'"
    )
    assert len(rows) == 1
    capture_id, t_start_ns, t_end_ns, n_lost, detail = rows[0]
    assert capture_id == second.capture_id and "service was down from" in detail
    (last_end,) = query(
        hot, "SELECT max(t_start_ns + n_samples * 4000) FROM chunks WHERE capture_id = ?", (first.capture_id,)
    )[0]
    (next_start,) = query(hot, "SELECT min(t_start_ns) FROM chunks WHERE capture_id = ?", (second.capture_id,))[0]
    assert t_start_ns == last_end
    assert abs(t_end_ns - next_start) <= 4000  # within one sample at 250 kS/s
    assert n_lost == pytest.approx((next_start - last_end) * 250_000 / 1e9, abs=1)
    assert n_lost >= 250_000 * 0.9  # at least the second it was down
    assert second.samples_lost == {"restart": n_lost}
    assert uncovered_holes(hot) == []


class _StubbornSource(Source):
    """Ignores stop(): one chunk, then blocks in events() for a long time."""

    def __init__(self):
        super().__init__()
        self.release = threading.Event()

    def open(self):
        return SourceInfo("test://stubborn", "test", 100e6, 250_000.0, None, True)

    def events(self):
        yield Chunk(1_000_000_000, 100e6, 250_000.0, None, b"\x80" * 2000)
        self.release.wait(30)


def test_a_source_that_ignores_stop_is_left_behind_and_the_capture_still_ends(tmp_path):
    hot = tmp_path / "hot.db"
    src = _StubbornSource()
    try:
        summary = _service(src, hot, duration_s=0.5, reader_stop_timeout_s=0.5).run()
    finally:
        src.release.set()
    assert summary.end_reason == "duration"
    assert summary.samples_received == summary.samples_stored == 1000
    assert query(hot, "SELECT end_reason FROM captures") == [("duration",)]


def test_a_database_that_stays_locked_ends_the_capture_with_every_sample_counted(tmp_path):
    """Someone else holds the hot DB's write lock past the busy timeout: the write fails,
    the capture ends with the error recorded, and what it could not store is counted."""
    import sqlite3

    hot = tmp_path / "hot.db"
    src = CountingSource(open_source("synthetic://?seed=1&rate=250000"))
    svc = _service(src, hot)
    outcome = {}

    def run():
        try:
            outcome["summary"] = svc.run()
        except Exception as exc:  # the error is the subject of this test
            outcome["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    deadline = time.monotonic() + 30
    while svc.counters.samples_stored == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    rogue = sqlite3.connect(hot, isolation_level=None)
    rogue.execute("BEGIN IMMEDIATE")  # a second writer: what the flock keeps out
    deadline = time.monotonic() + 60
    while not svc._writer_dead and time.monotonic() < deadline:
        time.sleep(0.1)
    rogue.execute("ROLLBACK")
    rogue.close()
    t.join(timeout=60)
    assert not t.is_alive()
    err = outcome.get("error")
    assert err is not None and "locked" in str(err)
    c = svc.counters
    assert c.lost.get("write_error", 0) > 0
    assert c.samples_received == c.samples_stored + c.lost["write_error"] == src.samples_produced
    (reason,) = query(hot, "SELECT end_reason FROM captures")[0]
    assert reason.startswith("error: ") and "locked" in reason
    assert query(hot, "SELECT sum(n_samples) FROM chunks")[0][0] == c.samples_stored


def test_an_unpaced_replay_ends_at_the_wall_clock_and_a_loop_is_held_there(tmp_path):
    """An unpaced recording is stamped so that it ends when it was opened; looped, it
    catches up with the wall clock and goes on at its pace, never ahead of it."""
    rec = write_cu8(tmp_path / "rec_433.92M_250k.cu8", 2 * 62_500)  # 0.25 s at 250 kS/s
    hot = tmp_path / "hot.db"
    t0 = time.time_ns()
    summary = _service(open_source(f"file://{rec}", loop=True), hot, duration_s=2.0).run()
    t1 = time.time_ns()
    first, last = query(hot, "SELECT min(t_start_ns), max(t_start_ns + n_samples * 4000) FROM chunks")[0]
    assert t0 - 250_000_000 <= first <= t1 - 250_000_000
    assert last <= t1
    assert 1.0 * 250_000 <= summary.samples_stored <= 2.5 * 250_000  # not a disk's worth
    assert summary.samples_lost == {} and uncovered_holes(hot) == []


def test_a_replay_over_stored_samples_is_refused_and_a_later_start_follows_with_a_gap(tmp_path):
    """The hot DB keeps one timeline: replaying a recording again would store its samples
    over themselves; given a later start (?start=) it follows, the dead time a restart gap."""
    now_ns = time.time_ns()
    meta, _ = write_sigmf(
        tmp_path / "rec",
        write_cu8(tmp_path / "raw.cu8", 50_000).read_bytes(),
        250e3,
        433.92e6,
        datetime_ns=now_ns - 600 * 10**9,
    )
    hot = tmp_path / "hot.db"
    assert _service(open_source(f"file://{meta}"), hot).run().samples_stored == 25_000
    with pytest.raises(ConfigError, match="before the end of what .* already holds"):
        _service(open_source(f"file://{meta}"), hot).run()
    assert query(hot, "SELECT count(*), sum(n_samples) FROM chunks")[0] == (1, 25_000)
    assert query(hot, "SELECT end_reason FROM captures WHERE capture_id = 2")[0][0].startswith("error: ")
    later = format_datetime_ns(now_ns - 300 * 10**9)
    third = _service(open_source(f"file://{meta}?start={later}"), hot).run()
    assert third.samples_stored == 25_000 and set(third.samples_lost) == {"restart"}
    assert uncovered_holes(hot) == []


def test_a_recording_dated_in_the_future_is_refused(tmp_path):
    meta, _ = write_sigmf(tmp_path / "rec", bytes(2000), 250e3, 433.92e6, datetime_ns=time.time_ns() + 86_400 * 10**9)
    hot = tmp_path / "hot.db"
    with pytest.raises(ConfigError, match="ahead of this machine's clock"):
        _service(open_source(f"file://{meta}"), hot).run()
    assert query(hot, "SELECT count(*) FROM chunks")[0][0] == 0


def test_a_failure_after_the_writer_started_closes_the_hot_db_and_its_threads(tmp_path):
    """An error between the writer's start and the supervisor (here the log line that announces
    the capture) is raised, and the writer still records the end and closes the hot DB: no
    writer or checkpointer thread is left behind holding it open."""
    hot = tmp_path / "hot.db"

    def log(line):
        if line.startswith("capture 1:"):
            raise BrokenPipeError("the terminal went away")

    before = set(threading.enumerate())
    svc = _service(open_source("synthetic://?seed=1&rate=1024000"), hot, log=log, duration_s=5.0)
    with pytest.raises(BrokenPipeError):
        svc.run()
    left = [t.name for t in set(threading.enumerate()) - before if t.is_alive()]
    assert left == []
    assert not (tmp_path / "hot.db-wal").exists()  # the last connection closed: WAL checkpointed away
    assert query(hot, "SELECT end_reason FROM captures")[0][0].startswith("error: BrokenPipeError")


def test_a_recording_that_jumps_into_the_future_is_refused_not_waited_for(tmp_path):
    """A SigMF capture whose core:datetime lies far ahead of the clock: the service does not wait
    for the wall clock to get there (it would, for years); it refuses in one line, and the
    samples before the jump stay stored."""
    import json
    import time as _time
    from datetime import UTC, datetime, timedelta

    from sdr_assets.capture.file import FileSource
    from sdr_assets.capture.service import CaptureService
    from sdr_assets.errors import ConfigError

    past = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    ahead = (datetime.now(UTC) + timedelta(days=3650)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    meta = {
        "global": {"core:datatype": "cu8", "core:sample_rate": 250000, "core:version": "1.2.0"},
        "captures": [
            {"core:sample_start": 0, "core:frequency": 433.92e6, "core:datetime": past},
            {"core:sample_start": 4096, "core:frequency": 433.92e6, "core:datetime": ahead},
        ],
        "annotations": [],
    }
    (tmp_path / "r.sigmf-meta").write_text(json.dumps(meta))
    (tmp_path / "r.sigmf-data").write_bytes(bytes(range(256)) * 64)  # 8192 samples
    service = CaptureService(FileSource(tmp_path / "r", chunk_samples=1024), tmp_path / "hot.db")
    t0 = _time.monotonic()
    with pytest.raises(ConfigError) as err:
        service.run()
    assert _time.monotonic() - t0 < 30
    msg = str(err.value)
    assert "\n" not in msg and "ahead of this machine's clock" in msg and "core:datetime" in msg
    assert service.counters.samples_received == 4096
