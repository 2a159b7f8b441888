"""The rtl_433 runner: the real Debian binary over real recordings streamed on its stdin."""

import json
import re
import shutil
from pathlib import Path

import pytest

from sdr_assets.decode import decode_cu8, find_rtl433, rtl433_version
from sdr_assets.decode.rtl433 import AnalysisParser, parse_message
from sdr_assets.errors import DecodeError

RTL433 = Path(__file__).resolve().parents[3] / "shared" / "data" / "rtl433"
needs_binary = pytest.mark.skipif(
    shutil.which("rtl_433") is None, reason="needs rtl_433 (sudo apt-get install rtl-433)"
)
needs_data = pytest.mark.skipif(
    not (RTL433 / "manifest.json").exists(), reason="needs ../shared/data/rtl433 (real recordings)"
)


def recordings() -> list[dict]:
    return json.loads((RTL433 / "manifest.json").read_text())["recordings"]


def chunked(data: bytes, size: int):
    return (data[i : i + size] for i in range(0, len(data), size))


def test_missing_binary_names_the_debian_package(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DecodeError, match=re.escape("sudo apt-get install rtl-433")):
        find_rtl433()
    with pytest.raises(DecodeError, match="rtl_433 not found"):
        decode_cu8([b"\x80\x80"], 250_000, 433.92e6)


@needs_binary
def test_version_is_what_rtl_433_prints():
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?(-\S+)?", rtl433_version())


@needs_binary
@needs_data
def test_every_recording_gives_its_manifest_packages_and_messages():
    """The packages' starts and the message count of rtl_433 22.11 on each file (manifest),
    streamed in odd-sized chunks, including the 868 MHz one (-f before -s) and packages that end
    near the end of the file (the end-of-input padding)."""
    for rec in recordings():
        data = (RTL433 / rec["file"]).read_bytes()
        res = decode_cu8(chunked(data, 10_001 * 2 + 1), rec["sample_rate_hz"], rec["center_freq_hz"])
        assert res.n_samples == len(data) // 2
        assert [p.start_samples for p in res.packages] == [b["start_sample"] for b in rec["rtl_433_bursts"]], rec[
            "file"
        ]
        assert len(res.messages) == rec["rtl_433_decoded_messages"], rec["file"]
        for p in res.packages:
            assert 0 < p.length_samples and p.end_samples <= res.n_samples
            assert p.modulation in ("OOK", "FSK")
        for m in res.messages:  # each message lies on a package, inside the input
            assert res.package_at(m.offset_samples) is not None
            assert m.end_samples <= res.n_samples
            assert abs(m.freq_hz - rec["center_freq_hz"]) < rec["sample_rate_hz"] / 2


@needs_binary
@needs_data
def test_a_message_carries_its_fields_and_levels():
    rec = next(r for r in recordings() if r["file"].startswith("GT-WT-02"))
    res = decode_cu8([(RTL433 / rec["file"]).read_bytes()], rec["sample_rate_hz"], rec["center_freq_hz"])
    m = res.messages[0]
    assert (m.model, m.device_id, m.channel, m.modulation) == ("GT-WT02", "52", "1", "ASK")
    assert m.offset_samples == 30581 and m.offset_s == pytest.approx(30581 / 250_000)
    assert m.length_samples == 50890  # "Total count: 38, width: 203.56 ms (50890 S)"
    assert m.fields["temperature_C"] == pytest.approx(22.2)
    assert m.snr_db > 0 > m.noise_db
    p = res.package_at(m.offset_samples)
    assert p.n_pulses == 38 and p.freq2_offset_hz is None
    assert m.freq_hz - rec["center_freq_hz"] == pytest.approx(p.freq1_offset_hz, abs=2e3)


@needs_binary
@needs_data
def test_an_fsk_message_has_both_frequencies():
    rec = next(r for r in recordings() if r["file"].startswith("danfoss"))
    res = decode_cu8([(RTL433 / rec["file"]).read_bytes()], rec["sample_rate_hz"], rec["center_freq_hz"])
    (m,) = res.messages
    assert m.modulation == "FSK" and m.freq2_hz is not None and m.freq_hz != m.freq2_hz
    assert res.packages[0].modulation == "FSK" and res.packages[0].freq2_offset_hz is not None


@needs_binary
def test_an_error_in_the_input_is_raised_and_rtl_433_stopped():
    def chunks():
        yield b"\x80" * 20_000
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        decode_cu8(chunks(), 250_000, 433.92e6)


@needs_binary
def test_rtl_433_refusing_its_options_is_a_decode_error():
    with pytest.raises(DecodeError, match="exited with code"):
        decode_cu8([b"\x80" * 1000], 250_000, 433.92e6, extra_args=["-Q"])


def test_analysis_parser_reads_rtl_433s_stderr():
    text = (
        "Detected OOK package\t@0.122324s\nAnalyzing pulses...\n"
        "Total count:   38,  width: 203.56 ms\t\t(50890 S)\n"
        " [ 0] count:   38,  width:  812 us [748;836]\t( 203 S)\n"
        "RSSI: -2.0 dB SNR: 4.4 dB Noise: -6.5 dB\n"
        "Frequency offsets [F1, F2]:   -7361,      0\t(-28.1 kHz, +0.0 kHz)\n"
        "Detected FSK package\t@0.196696s\n"
        "Total count:  106,  width: 25.44 ms\t\t( 6359 S)\n"
        "Frequency offsets [F1, F2]:     494,  -9348\t(+1.9 kHz, -35.7 kHz)\n"
        "something went wrong\n"
    )
    parser = AnalysisParser(250_000)
    for line in text.splitlines(keepends=True):
        parser.feed(line)
    ook, fsk = parser.close()
    assert (ook.start_samples, ook.length_samples, ook.n_pulses) == (30581, 50890, 38)
    assert (ook.rssi_db, ook.snr_db, ook.noise_db) == (-2.0, 4.4, -6.5)
    assert ook.freq1_offset_hz == pytest.approx(-28.1e3, abs=50) and ook.freq2_offset_hz is None
    assert fsk.modulation == "FSK" and fsk.freq2_offset_hz == pytest.approx(-35.7e3, abs=50)
    assert list(parser.tail)[-1] == "something went wrong"


def test_a_line_that_is_not_json_is_a_decode_error():
    with pytest.raises(DecodeError, match="not JSON"):
        parse_message("Segmentation fault", 250_000)
    with pytest.raises(DecodeError, match="time:rel"):
        parse_message('{"model": "X", "time": "2024-01-01 00:00:00"}', 250_000)


@needs_binary
def test_an_odd_number_of_bytes_is_a_decode_error():
    with pytest.raises(DecodeError, match="not whole cu8 I/Q pairs"):
        decode_cu8([b"\x80" * 1001], 250_000, 433.92e6)
