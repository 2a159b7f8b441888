"""File replay: raw cu8 and SigMF recordings, read back byte-exact, with their errors."""

import hashlib
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from sdr_assets.capture.file import FileSource, parse_rtl433_filename
from sdr_assets.capture.uri import open_source
from sdr_assets.errors import ConfigError, SourceError
from sdr_assets.records import Annotation, Chunk, Gap
from sdr_assets.sigmf import SIGMF_VERSION, format_datetime_ns, parse_datetime_ns, write_sigmf

RTL433 = Path(__file__).resolve().parents[3] / "shared" / "data" / "rtl433"
T0_NS = 1_714_564_800_123_456_789  # 2024-05-01T12:00:00.123456789Z


def _events(src) -> list:
    with src:
        return list(src.events())


def _chunks(events) -> list[Chunk]:
    return [e for e in events if isinstance(e, Chunk)]


def _cu8(n_samples: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, 2 * n_samples, dtype=np.uint8).tobytes()


def test_cu8_file_reads_back_byte_exact_with_sample_clock_times(tmp_path):
    data = _cu8(100_003)
    path = tmp_path / "rec_433.92M_250k.cu8"
    path.write_bytes(data)
    src = FileSource(path, chunk_samples=4096)
    before = time.time_ns()
    info = src.open()
    after = time.time_ns()
    events = list(src.events())
    src.close()
    chunks = _chunks(events)
    assert info.kind == "file" and info.realtime is False
    assert (info.center_freq_hz, info.sample_rate_hz) == (433.92e6, 250e3)
    assert hashlib.sha256(b"".join(c.iq for c in chunks)).hexdigest() == hashlib.sha256(data).hexdigest()
    assert [c.n_samples for c in chunks[:-1]] == [4096] * (len(chunks) - 1)
    for a, b in zip(chunks, chunks[1:]):
        assert b.t_start_ns == a.t_end_ns  # contiguous on the sample clock
    assert chunks[-1].t_end_ns - chunks[0].t_start_ns == round(100_003 / 250e3 * 1e9)
    # an unpaced raw cu8 replay ends at the open time: never in the future of the wall clock
    assert before <= chunks[-1].t_end_ns <= after


def test_raw_cu8_start_times_real_time_from_open_and_a_given_start(tmp_path):
    path = tmp_path / "rec_433.92M_250k.cu8"
    path.write_bytes(_cu8(25_000))
    before = time.time_ns()
    paced = _chunks(_events(FileSource(path, realtime=True)))
    assert before <= paced[0].t_start_ns <= paced[-1].t_end_ns <= time.time_ns()
    start_ns = before - 3_600 * 10**9
    given = _chunks(_events(open_source(f"file://{path}?start={format_datetime_ns(start_ns)}")))
    assert given[0].t_start_ns == start_ns
    with pytest.raises(ConfigError, match="takes only .start=ISO-TIME"):
        open_source(f"file://{path}?speed=2")


def test_flags_override_the_file_name_and_a_rate_is_required(tmp_path):
    path = tmp_path / "plain.cu8"
    path.write_bytes(_cu8(10))
    info = FileSource(path, sample_rate_hz=1e6, center_freq_hz=868e6).open()
    assert (info.center_freq_hz, info.sample_rate_hz) == (868e6, 1e6)
    with pytest.raises(ConfigError, match="--sample-rate-hz"):
        FileSource(path).open()


def test_odd_length_cu8_is_refused_at_open(tmp_path):
    path = tmp_path / "odd_433.92M_250k.cu8"
    path.write_bytes(b"\x80" * 1001)
    src = FileSource(path)
    with pytest.raises(SourceError, match="odd number of bytes"):
        src.open()
    assert src._file is None  # nothing acquired


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(SourceError, match="not found"):
        FileSource(tmp_path / "nope_433.92M_250k.cu8").open()


def test_loop_continues_the_sample_clock(tmp_path):
    data = _cu8(1000)
    path = tmp_path / "x_433.92M_250k.cu8"
    path.write_bytes(data)
    src = open_source(f"file://{path}", loop=True, chunk_samples=300)
    src.open()
    chunks = []
    for ev in src.events():
        chunks.append(ev)
        if len(chunks) == 12:
            break
    src.close()
    assert b"".join(c.iq for c in chunks).startswith(data + data)
    for a, b in zip(chunks, chunks[1:]):
        assert b.t_start_ns == a.t_end_ns


def test_realtime_paces_by_the_sample_clock_and_stops(tmp_path):
    path = tmp_path / "x_433.92M_250k.cu8"
    path.write_bytes(_cu8(250_000))  # 1 s at 250 kS/s
    src = FileSource(path, realtime=True, chunk_samples=12_500)  # 50 ms chunks
    src.open()
    threading.Timer(0.3, src.stop).start()
    got = list(src.events())
    src.close()
    assert 2 <= len(got) < 20  # stopped well before the 20 chunks of the whole file


@pytest.mark.parametrize(
    "name,center,rate",
    [
        ("NAME_433.92M_250k.cu8", 433.92e6, 250e3),
        ("dev_01_gfile001_868.3M_1024k.cu8", 868.3e6, 1024e3),
        ("wide_100M_2.4M.cu8", 100e6, 2.4e6),
        ("x_2.4M.cu8", 2.4e6, None),
        ("x_250k.cu8", None, 250e3),
        ("x_433920000Hz_2400000sps.cu8", 433.92e6, 2.4e6),
        ("noinfo_01.cu8", None, None),
    ],
)
def test_rtl433_file_name_convention(name, center, rate):
    assert parse_rtl433_filename(name) == (center, rate)


def test_real_rtl433_recordings_match_their_manifest():
    if not (RTL433 / "manifest.json").exists():
        pytest.skip(f"{RTL433} is absent")
    manifest = json.loads((RTL433 / "manifest.json").read_text())
    for rec in manifest["recordings"]:
        center, rate = parse_rtl433_filename(rec["file"])
        assert (center, rate) == (rec["center_freq_hz"], rec["sample_rate_hz"]), rec["file"]
    rec = manifest["recordings"][0]
    src = open_source(f"file://{RTL433 / rec['file']}")
    chunks = _chunks(_events(src))
    assert hashlib.sha256(b"".join(c.iq for c in chunks)).hexdigest() == rec["sha256"]
    assert sum(c.n_samples for c in chunks) == rec["n_samples"]


# ---- SigMF -----------------------------------------------------------------------------------


def _annotations():
    return [
        Annotation(T0_NS + 4_000_000, T0_NS + 6_000_000, 433.90e6, 433.94e6, "ook"),
        Annotation(T0_NS + 100_000, T0_NS + 300_000, 433.80e6, 433.85e6, "fsk"),
    ]


def test_sigmf_cu8_roundtrip_byte_exact_with_annotations(tmp_path):
    data = _cu8(50_000, seed=1)
    meta_path, data_path = write_sigmf(tmp_path / "rec", data, 1e6, 433.92e6, _annotations(), datetime_ns=T0_NS)
    meta = json.loads(meta_path.read_text())
    assert meta["global"]["core:version"] == SIGMF_VERSION == "1.2.0"  # the version the export writes too
    assert meta["global"]["core:datatype"] == "cu8"
    assert meta["captures"][0]["core:datetime"] == "2024-05-01T12:00:00.123456789Z"
    for given in (meta_path, data_path, tmp_path / "rec"):
        events = _events(FileSource(given, chunk_samples=8192))
        chunks = _chunks(events)
        assert b"".join(c.iq for c in chunks) == data
        assert chunks[0].t_start_ns == T0_NS
        anns = [e for e in events if isinstance(e, Annotation)]
        assert [a.label for a in anns] == ["fsk", "ook"]  # in time order
        assert all(a.origin == "sigmf" for a in anns)
        assert (anns[0].t_start_ns, anns[0].t_end_ns) == (T0_NS + 100_000, T0_NS + 300_000)
        assert (anns[1].freq_lower_hz, anns[1].freq_upper_hz) == (433.90e6, 433.94e6)
        # each annotation comes before the chunk holding its first sample
        i_ook = events.index(anns[1])
        nxt = next(e for e in events[i_ook:] if isinstance(e, Chunk))
        assert nxt.t_start_ns <= anns[1].t_start_ns < nxt.t_end_ns


def _write_meta(base: Path, glob: dict, captures=None, annotations=None) -> Path:
    doc = {
        "global": glob,
        "captures": captures
        if captures is not None
        else [{"core:sample_start": 0, "core:frequency": 915e6, "core:datetime": "2024-05-01T12:00:00.5Z"}],
        "annotations": annotations or [],
    }
    p = base.with_name(base.name + ".sigmf-meta")
    p.write_text(json.dumps(doc))
    return p


def test_sigmf_ci16_is_converted_to_cu8_and_annotations_cover_the_band(tmp_path):
    values = np.array([-32768, 32767, 0, 0, 16384, -16384, 256, -256] * 1000, dtype="<i2")
    (tmp_path / "c16.sigmf-data").write_bytes(values.tobytes())
    _write_meta(
        tmp_path / "c16",
        {"core:datatype": "ci16_le", "core:sample_rate": 2e6, "core:version": "1.0.0"},
        annotations=[{"core:sample_start": 2000, "core:sample_count": 1000, "core:label": "burst"}],
    )
    src = FileSource(tmp_path / "c16.sigmf-meta", chunk_samples=1500)
    info = src.open()
    events = list(src.events())
    src.close()
    cu8 = np.frombuffer(b"".join(c.iq for c in _chunks(events)), dtype=np.uint8)
    assert cu8.size == values.size
    assert list(cu8[:8]) == [0, 255, 128, 128, 191, 64, 128, 127]
    assert info.meta["converted_from"] == "ci16_le" and "32768" in info.meta["conversion"]
    assert info.center_freq_hz == 915e6
    t0 = parse_datetime_ns("2024-05-01T12:00:00.5Z")
    assert _chunks(events)[0].t_start_ns == t0
    (ann,) = [e for e in events if isinstance(e, Annotation)]
    assert ann.t_start_ns == t0 + 1_000_000 and ann.t_end_ns == t0 + 1_500_000
    assert (ann.freq_lower_hz, ann.freq_upper_hz) == (914e6, 916e6)  # neither edge: full band


def test_sigmf_captures_retune_and_datetime_jumps_become_gaps(tmp_path):
    (tmp_path / "r.sigmf-data").write_bytes(_cu8(3000))
    _write_meta(
        tmp_path / "r",
        {"core:datatype": "cu8", "core:sample_rate": 1e6},
        captures=[
            {"core:sample_start": 0, "core:frequency": 100e6, "core:datetime": "2024-01-01T00:00:00Z"},
            {"core:sample_start": 1000, "core:frequency": 200e6},
            {"core:sample_start": 2000, "core:frequency": 300e6, "core:datetime": "2024-01-01T00:00:01Z"},
        ],
    )
    events = _events(FileSource(tmp_path / "r", chunk_samples=700))
    t0 = parse_datetime_ns("2024-01-01T00:00:00Z")
    chunks = _chunks(events)
    assert {c.center_freq_hz for c in chunks} == {100e6, 200e6, 300e6}
    assert all(len({c.center_freq_hz}) == 1 for c in chunks)
    (gap,) = [e for e in events if isinstance(e, Gap)]
    assert gap.cause == "recording_gap" and gap.t_start_ns == t0 + 2_000_000
    assert gap.n_samples_lost == 1_000_000 - 2000
    assert [c for c in chunks if c.center_freq_hz == 300e6][0].t_start_ns == t0 + 1_000_000_000


def test_sigmf_without_datetime_starts_at_open_time(tmp_path):
    (tmp_path / "n.sigmf-data").write_bytes(_cu8(10))
    _write_meta(tmp_path / "n", {"core:datatype": "cu8", "core:sample_rate": 1e6}, captures=[])
    before = time.time_ns()
    chunks = _chunks(_events(FileSource(tmp_path / "n.sigmf-data")))
    assert before <= chunks[0].t_start_ns <= time.time_ns()


@pytest.mark.parametrize(
    "meta_text,match",
    [
        ("{not json", "invalid JSON"),
        (json.dumps({"global": {"core:sample_rate": 1e6}}), "core:datatype is missing"),
        (json.dumps({"global": {"core:datatype": "cu8"}}), "core:sample_rate is missing"),
        (json.dumps({"global": {"core:datatype": "rf32_le", "core:sample_rate": 1e6}}), "not supported"),
        (
            json.dumps({"global": {"core:datatype": "cu8", "core:sample_rate": "fast"}}),
            "core:sample_rate must be a number",
        ),
        (
            json.dumps(
                {
                    "global": {"core:datatype": "cu8", "core:sample_rate": 1e6},
                    "annotations": [{"core:sample_start": 0, "core:freq_lower_edge": 1.0}],
                }
            ),
            "go together",
        ),
        (
            json.dumps(
                {
                    "global": {"core:datatype": "cu8", "core:sample_rate": 1e6},
                    "captures": [{"core:datetime": "yesterday"}],
                }
            ),
            "ISO 8601",
        ),
    ],
)
def test_bad_sigmf_metadata_is_one_clear_error(tmp_path, meta_text, match):
    (tmp_path / "b.sigmf-data").write_bytes(b"\x80" * 64)
    (tmp_path / "b.sigmf-meta").write_text(meta_text)
    with pytest.raises(SourceError, match=match):
        FileSource(tmp_path / "b.sigmf-meta").open()


def test_sigmf_data_problems(tmp_path):
    _write_meta(tmp_path / "d", {"core:datatype": "ci16_le", "core:sample_rate": 1e6})
    with pytest.raises(SourceError, match="data file .* is missing"):
        FileSource(tmp_path / "d.sigmf-meta").open()
    (tmp_path / "d.sigmf-data").write_bytes(b"\x00" * 10)  # not a multiple of 4 bytes
    with pytest.raises(SourceError, match="not a multiple of the 4-byte ci16_le sample"):
        FileSource(tmp_path / "d").open()
    with pytest.raises(SourceError, match="not found"):
        FileSource(tmp_path / "absent.sigmf-meta").open()


def test_flag_contradicting_sigmf_metadata_is_refused(tmp_path):
    write_sigmf(tmp_path / "r", b"\x80" * 20, 1e6, 433.92e6)
    with pytest.raises(ConfigError, match="contradicts"):
        FileSource(tmp_path / "r", sample_rate_hz=2e6).open()


def test_datetime_format_roundtrip():
    assert format_datetime_ns(T0_NS) == "2024-05-01T12:00:00.123456789Z"
    assert parse_datetime_ns(format_datetime_ns(T0_NS)) == T0_NS
    assert parse_datetime_ns("2024-05-01T14:00:00.123456789+02:00") == T0_NS


def test_file_source_throughput_is_not_pathological(tmp_path):
    """Smoke only (no timing assert): 64 MB unpaced goes through in one pass."""
    path = tmp_path / "big_433.92M_250k.cu8"
    with open(path, "wb") as f:
        f.write(os.urandom(1 << 20) * 64)
    n = sum(c.n_samples for c in _chunks(_events(FileSource(path))))
    assert n == 32 << 20
