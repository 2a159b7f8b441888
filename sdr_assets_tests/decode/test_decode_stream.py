"""decode.stream: a source's events cut into the contiguous runs rtl_433 may see as one signal."""

from sdr_assets.decode.stream import contiguous_runs, parse_live_line
from sdr_assets.records import Annotation, Chunk, Gap, samples_to_ns

FS = 250_000.0


def _chunk(t_ns: int, n: int, fill: int, fc: float = 433.92e6) -> Chunk:
    return Chunk(t_ns, fc, FS, None, bytes([fill]) * (2 * n))


def test_runs_break_at_a_gap_a_time_jump_and_a_retune_only():
    t0 = 1_700_000_000 * 10**9
    a = _chunk(t0, 1000, 1)
    b = _chunk(a.t_end_ns + 1, 500, 2)  # 1 ns off (rounding of the sample clock): same run
    c = _chunk(b.t_end_ns, 700, 3)  # after a Gap record: a new run
    d = _chunk(c.t_end_ns + samples_to_ns(10, FS), 300, 4)  # 10 samples missing: a new run
    e = _chunk(d.t_end_ns, 300, 5, fc=868.3e6)  # retuned: a new run
    ann = Annotation(t0, t0 + 10, 1.0, 2.0, "ook")
    events = [ann, a, b, Gap(b.t_end_ns, 0, FS, "reconnect"), c, d, ann, e]
    runs = [(first, b"".join(chunks)) for first, chunks in contiguous_runs(events)]
    assert [first for first, _ in runs] == [a, c, d, e]
    assert [data for _, data in runs] == [a.iq + b.iq, c.iq, d.iq, e.iq]
    # a run the caller does not read is skipped whole, not mixed into the next
    firsts = [first for first, _ in contiguous_runs(events)]
    assert firsts == [a, c, d, e]


def test_a_live_line_keeps_rtl_433s_fields_and_its_unix_time():
    tm = parse_live_line(
        '{"time" : "1700000000.250001", "model" : "Nexus-TH", "id" : 181, "channel" : 2, '
        '"mod" : "ASK", "freq" : 433.9, "snr" : 12.5}'
    )
    assert tm.t_ns == 1_700_000_000_250_001_000
    m = tm.message
    assert (m.model, m.device_id, m.channel, m.freq_hz, m.snr_db) == ("Nexus-TH", "181", "2", 433.9e6, 12.5)
