"""The byte ring: bounded, never blocks the reader, loses nothing silently."""

import random
import threading
import time

import pytest

from sdr_assets.capture.ring import ByteRing
from sdr_assets.errors import ConfigError
from sdr_assets.records import Chunk


def _chunk(i: int, n_bytes: int, rate_hz: float = 250_000.0) -> Chunk:
    body = bytes((i + k) % 256 for k in range(min(n_bytes, 257))) * (n_bytes // 257 + 1)
    return Chunk(
        t_start_ns=1_000 * i,
        center_freq_hz=433.92e6 + i,
        sample_rate_hz=rate_hz,
        gain_db=None if i % 2 else 10.0 + i,
        iq=body[:n_bytes],
    )


def test_put_get_keeps_bytes_and_metadata():
    ring = ByteRing(1000)
    a, b = _chunk(1, 300), _chunk(2, 400)
    assert ring.put(a) and ring.put(b)
    assert ring.used_bytes == 700 and ring.n_chunks == 2
    out = ring.get_batch(10_000, timeout_s=0)
    assert out == [a, b]  # dataclass equality: every field and every byte
    assert all(type(c.iq) is bytes for c in out)
    assert ring.used_bytes == 0 and ring.high_water_bytes == 700


def test_full_ring_refuses_without_blocking_and_stores_nothing():
    ring = ByteRing(1000)
    assert ring.put(_chunk(1, 600))
    t0 = time.monotonic()
    assert ring.put(_chunk(2, 500)) is False
    assert time.monotonic() - t0 < 0.5
    assert ring.used_bytes == 600 and ring.n_chunks == 1
    assert ring.put(_chunk(3, 400))  # exactly fills it
    assert ring.fill_fraction == 1.0
    assert ring.put(_chunk(4, 2)) is False
    assert ring.put(_chunk(5, 2000)) is False  # larger than the whole ring


def test_wraparound_copies_in_and_out_in_two_pieces():
    ring = ByteRing(1000)
    for i in range(50):  # positions walk round the buffer many times, at odd offsets
        c1, c2 = _chunk(i, 333 + i), _chunk(i + 1, 401)
        assert ring.put(c1) and ring.put(c2)
        assert ring.get_batch(10_000, timeout_s=0) == [c1, c2]
    assert ring.used_bytes == 0


def test_get_batch_respects_max_bytes_but_returns_at_least_one():
    ring = ByteRing(10_000)
    chunks = [_chunk(i, 1000) for i in range(5)]
    for c in chunks:
        ring.put(c)
    assert ring.get_batch(2500, timeout_s=0) == chunks[:2]
    assert ring.get_batch(10, timeout_s=0) == chunks[2:3]
    assert ring.get_batch(10_000, timeout_s=0) == chunks[3:]


def test_get_batch_waits_for_the_deadline_then_returns_what_is_there():
    ring = ByteRing(10_000)
    assert ring.get_batch(100, timeout_s=0.05) == []
    ring.put(_chunk(1, 50))
    t0 = time.monotonic()
    out = ring.get_batch(100, timeout_s=0.2)  # only 50 of 100 bytes: waits the full time
    assert len(out) == 1 and time.monotonic() - t0 >= 0.15


def test_get_batch_wakes_when_enough_bytes_arrive():
    ring = ByteRing(10_000)
    threading.Timer(0.1, ring.put, args=(_chunk(1, 200),)).start()
    t0 = time.monotonic()
    out = ring.get_batch(100, timeout_s=30)
    assert len(out) == 1 and time.monotonic() - t0 < 20


def test_close_drains_then_signals_end():
    ring = ByteRing(10_000)
    ring.put(_chunk(1, 100))
    ring.close()
    assert ring.put(_chunk(2, 100)) is False  # closed: refused
    assert not ring.drained()
    t0 = time.monotonic()
    assert len(ring.get_batch(1_000_000, timeout_s=30)) == 1  # closed: no wait for bytes
    assert ring.drained() and ring.get_batch(100, timeout_s=30) == []
    assert time.monotonic() - t0 < 10


def test_tiny_ring_is_a_config_error():
    with pytest.raises(ConfigError):
        ByteRing(1)


def test_concurrent_reader_and_slow_writer_lose_nothing_silently():
    """A fast producer against a slow consumer: every chunk is either handed to the
    writer intact and in order, or refused (and counted by the caller)."""
    ring = ByteRing(64 * 1024)
    rng = random.Random(7)
    sizes = [rng.randrange(2, 9000, 2) for _ in range(3000)]
    accepted: list[int] = []
    refused: list[int] = []
    got: list[Chunk] = []

    def produce():
        for i, n in enumerate(sizes):
            (accepted if ring.put(_chunk(i, n)) else refused).append(i)
            if i % 50 == 0:
                time.sleep(0.001)
        ring.close()

    def consume():
        while not ring.drained():
            batch = ring.get_batch(16 * 1024, timeout_s=0.05)
            got.extend(batch)
            time.sleep(0.002)  # a slow "commit"

    threads = [threading.Thread(target=produce), threading.Thread(target=consume)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert refused, "the slow writer should have made the ring overflow"
    assert len(accepted) + len(refused) == len(sizes)
    assert [c.t_start_ns // 1000 for c in got] == accepted
    assert all(c == _chunk(i, sizes[i]) for c, i in zip(got, accepted))
    assert sum(len(c.iq) for c in got) + sum(sizes[i] for i in refused) == sum(sizes)
    assert 0 < ring.high_water_bytes <= ring.capacity_bytes


def test_put_with_wait_gets_room_once_the_writer_takes_a_batch():
    ring = ByteRing(1000)
    assert ring.put(_chunk(1, 800))
    assert ring.put(_chunk(2, 800), wait_s=0.05) is False  # nobody frees room
    threading.Timer(0.1, ring.get_batch, args=(10_000, 0)).start()
    assert ring.put(_chunk(3, 800), wait_s=30)
    assert ring.get_batch(10_000, timeout_s=0) == [_chunk(3, 800)]


def test_an_empty_ring_restarts_at_offset_zero():
    ring = ByteRing(1000)
    ring.put(_chunk(1, 300))
    ring.get_batch(1000, 0)
    assert ring.put(_chunk(2, 300)) and ring.used_bytes == 300
    assert ring._slots[0].pos % ring.capacity_bytes == 0  # reused from the start
    assert ring.put(_chunk(3, 700)) and ring.fill_fraction == 1.0  # the skipped tail is free


def test_peak_fill_is_per_interval_and_high_water_is_forever():
    ring = ByteRing(1000)
    ring.put(_chunk(1, 500))
    ring.get_batch(1000, 0)
    assert ring.take_peak_fraction() == 0.5
    assert ring.take_peak_fraction() == 0.0  # nothing since
    assert ring.high_water_fraction == 0.5


def test_take_batch_hands_out_views_and_frees_their_space_only_on_release():
    import zlib

    ring = ByteRing(1000)
    a, b = _chunk(1, 300), _chunk(2, 400)
    assert ring.put(a) and ring.put(b)
    out, crcs = ring.take_batch(10_000, timeout_s=0)
    assert [bytes(c.iq) for c in out] == [a.iq, b.iq]
    assert [(c.t_start_ns, c.center_freq_hz, c.gain_db) for c in out] == [
        (1000, a.center_freq_hz, a.gain_db),
        (2000, b.center_freq_hz, b.gain_db),
    ]
    assert crcs == [zlib.crc32(a.iq), zlib.crc32(b.iq)]
    assert all(isinstance(c.iq, memoryview) and c.iq.readonly for c in out)  # no copy
    # the space stays taken: the reader cannot overwrite the views before the writer is done
    assert ring.used_bytes == 700 and ring.put(_chunk(3, 400)) is False
    with pytest.raises(RuntimeError, match="release_batch"):
        ring.take_batch(10_000, timeout_s=0)
    ring.release_batch()
    assert ring.used_bytes == 0 and ring.put(_chunk(3, 400))
    ring.release_batch()  # nothing taken: a no-op
    assert ring.used_bytes == 400


def test_take_batch_copies_a_chunk_that_wraps_and_its_crc_covers_both_pieces():
    import zlib

    ring = ByteRing(1000)
    assert ring.put(_chunk(1, 600))
    ring.get_batch(10_000, 0)
    assert ring.put(_chunk(2, 300)) and ring.put(_chunk(3, 500))  # offset 0 (empty ring), then 300..800
    ring.get_batch(300, 0)  # (frees 0..300; the next chunk must wrap round the end)
    c4 = _chunk(4, 400)
    assert ring.put(c4)  # 800..1000 then 0..200
    out, crcs = ring.take_batch(10_000, timeout_s=0)
    assert [bytes(c.iq) for c in out] == [_chunk(3, 500).iq, c4.iq]
    assert isinstance(out[0].iq, memoryview) and type(out[1].iq) is bytes  # the wrapped one is a copy
    assert crcs == [zlib.crc32(_chunk(3, 500).iq), zlib.crc32(c4.iq)]
    ring.release_batch()
    assert ring.used_bytes == 0


@pytest.mark.parametrize("use_libdeflate", [True, False])
def test_region_crc_is_zlibs_crc32_whichever_computes_it(use_libdeflate):
    """The ring's CRC-32 (libdeflate where the system has it, else zlib) is the one readers
    check with zlib.crc32, for any offset, length and running value."""
    import mmap
    import os
    import zlib

    from sdr_assets.capture import crc

    if use_libdeflate and crc.implementation() != "libdeflate":
        pytest.skip("no libdeflate.so.0 on this machine: zlib computes every CRC")
    buf = mmap.mmap(-1, 1 << 20)
    data = os.urandom(1 << 20)
    buf[:] = data
    rc = crc.RegionCrc(buf, use_libdeflate=use_libdeflate)
    rng = random.Random(3)
    for _ in range(200):
        off = rng.randrange(0, 1 << 20)
        n = rng.randrange(0, (1 << 20) - off + 1)
        running = rng.randrange(0, 1 << 32)
        assert rc.crc32(off, n, running) == zlib.crc32(data[off : off + n], running)
    assert rc.crc32(0, 0) == 0
    with pytest.raises(ValueError, match="outside the buffer"):
        rc.crc32((1 << 20) - 10, 11)
