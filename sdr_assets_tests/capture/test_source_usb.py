"""The USB dongle source: without a dongle, one clear line; with one (hardware marker), data."""

import os
import sys
import threading
import time

import pytest

from sdr_assets.capture.uri import open_source
from sdr_assets.capture.usb import RtlSdrSource
from sdr_assets.errors import SourceError
from sdr_assets.records import Chunk

HARDWARE = os.environ.get("SDR_ASSETS_HARDWARE") == "1"


@pytest.mark.skipif(HARDWARE, reason="a dongle is plugged in (SDR_ASSETS_HARDWARE=1)")
def test_no_dongle_is_one_clear_line():
    src = open_source("rtlsdr://7", sample_rate_hz=250_000)
    with pytest.raises(SourceError) as info:
        src.open()
    msg = str(info.value)
    assert msg.startswith("no RTL-SDR dongle found at index 7 (")
    assert "plug one in, or use rtl_tcp://HOST:PORT, file://PATH or synthetic://" in msg
    assert "\n" not in msg
    src.close()  # closing an unopened source is fine


@pytest.mark.hardware
@pytest.mark.skipif(not HARDWARE, reason="needs a dongle and SDR_ASSETS_HARDWARE=1")
def test_dongle_streams_chunks():
    src = RtlSdrSource(0, center_freq_hz=433.92e6, sample_rate_hz=1.024e6, chunk_samples=65536)
    info = src.open()
    try:
        chunks = []
        for ev in src.events():
            if isinstance(ev, Chunk):
                chunks.append(ev)
                if len(chunks) == 20:
                    break
    finally:
        src.close()
    assert info.kind == "rtlsdr" and all(c.n_samples == 65536 for c in chunks)
    for a, b in zip(chunks, chunks[1:]):
        assert b.t_start_ns >= a.t_end_ns


class _FakeRtlSdr:
    """The hardware edge only: librtlsdr's async reader, faked. It hands over buffers at the
    sample rate, and holds back ``pause_s`` worth after ``pause_after`` buffers (the dongle
    dropped them)."""

    pause_after, pause_s = 10, 1.2
    delivered: list[tuple[int, int]] = []  # (wall ns after the callback, bytes so far)

    def __init__(self, device_index: int = 0) -> None:
        self.sample_rate, self.center_freq, self.gain = 2.048e6, 100e6, "auto"
        self._cancel = threading.Event()

    def get_gains(self):
        return [0, 9, 14]

    def get_tuner_type(self):
        return 5

    def read_bytes_async(self, callback, n_bytes: int) -> None:
        t0, k, sent = time.monotonic(), 0, 0
        buf = bytearray(n_bytes)
        while not self._cancel.is_set():
            k += 1
            due = t0 + k * n_bytes / 2 / self.sample_rate + (self.pause_s if k > self.pause_after else 0)
            if self._cancel.wait(max(0.0, due - time.monotonic())):
                return
            buf[:4] = sent.to_bytes(4, "little")  # the wire offset, to find each buffer again
            callback(buf, None)
            sent += n_bytes
            type(self).delivered.append((time.time_ns(), sent))

    def cancel_read_async(self) -> None:
        self._cancel.set()

    def close(self) -> None:
        self._cancel.set()


def test_a_dongle_that_drops_buffers_is_a_stall_gap_and_every_sample_is_placed_in_time(tmp_path, monkeypatch):
    import types

    from sdr_assets.capture.service import CaptureService
    from sdr_assets_tests.capture_support import query, uncovered_holes

    fake = types.ModuleType("rtlsdr")
    fake.RtlSdr = _FakeRtlSdr
    monkeypatch.setitem(sys.modules, "rtlsdr", fake)
    _FakeRtlSdr.delivered = []
    hot = tmp_path / "hot.db"
    src = RtlSdrSource(0, center_freq_hz=433.92e6, sample_rate_hz=250_000, chunk_samples=8192, tolerance_s=0.5)
    summary = CaptureService(src, hot, duration_s=3.0, window_s_for_capacity_check=1.0).run()
    (stall,) = query(hot, "SELECT n_samples_lost FROM gaps WHERE cause = 'stall'")
    assert 0.6 * 250_000 <= stall[0] <= 1.3 * 250_000
    assert summary.samples_received == summary.samples_stored > 0
    assert set(summary.samples_lost) == {"stall"} and uncovered_holes(hot) == []
    sent_by = {sent - 16384: t for t, sent in _FakeRtlSdr.delivered}  # buffer offset -> when
    for t_start, iq in query(hot, "SELECT t_start_ns, iq FROM chunks"):
        for k in range(0, len(iq), 16384):  # each buffer the chunk holds
            offset = int.from_bytes(iq[k : k + 4], "little")
            t_sample = t_start + (k + 16384) // 2 * 4000  # its last sample's stamp
            assert sent_by[offset] - 500_000_000 <= t_sample <= sent_by[offset]
