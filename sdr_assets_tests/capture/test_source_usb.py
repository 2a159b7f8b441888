"""The USB dongle source: without a dongle, one clear line; with one (hardware marker), data."""

import os

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
