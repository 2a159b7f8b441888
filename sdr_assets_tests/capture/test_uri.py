"""Source URIs: every scheme builds the right (unopened) Source; every bad part is named."""

import pytest

from sdr_assets.capture.file import FileSource
from sdr_assets.capture.rtltcp import RtlTcpSource
from sdr_assets.capture.uri import open_source, parse_rtl_tcp_uri, validate_sample_rate_hz
from sdr_assets.capture.usb import RtlSdrSource
from sdr_assets.errors import ConfigError


def test_file_uris_absolute_and_relative(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rec").mkdir()
    (tmp_path / "rec" / "a_433.92M_250k.cu8").write_bytes(b"\x80" * 8)
    rel = open_source("file://rec/a_433.92M_250k.cu8")
    absolute = open_source(f"file://{tmp_path}/rec/a_433.92M_250k.cu8", loop=True)
    assert isinstance(rel, FileSource) and rel.realtime is False
    assert absolute.loop is True
    assert rel.open().meta["path"] == absolute.open().meta["path"]
    assert open_source("file://rec/a_433.92M_250k.cu8", realtime=True).realtime is True


def test_rtl_tcp_uris():
    s = open_source("rtl_tcp://192.168.1.20", sample_rate_hz=250_000, center_freq_hz=868e6, gain_db=30)
    assert isinstance(s, RtlTcpSource)
    assert (s.host, s.port, s.sample_rate_hz, s.center_freq_hz, s.gain_db) == (
        "192.168.1.20",
        1234,
        250_000.0,
        868e6,
        30.0,
    )
    assert parse_rtl_tcp_uri("rtl_tcp://[::1]:7373?ppm=-3") == ("::1", 7373, -3)
    assert parse_rtl_tcp_uri("RTL_TCP://sensor.local:1234/") == ("sensor.local", 1234, None)


def test_rtlsdr_uris():
    assert open_source("rtlsdr://").index == 0
    s = open_source("rtlsdr://2", sample_rate_hz=2.048e6)
    assert isinstance(s, RtlSdrSource) and s.index == 2 and s.sample_rate_hz == 2.048e6


def test_synthetic_uri_builds_a_synthetic_source():
    s = open_source("synthetic://?seed=7", chunk_samples=4096)
    assert type(s).__name__ == "SyntheticSource"
    assert s.seed == 7 and s.realtime is True and s.chunk_samples == 4096
    assert open_source("synthetic://?seed=1", realtime=False).realtime is False


@pytest.mark.parametrize("rate", [225_001, 300_000, 900_001, 2_400_000, 3_200_000])
def test_valid_rtl_sdr_rates(rate):
    assert validate_sample_rate_hz(rate) == rate


@pytest.mark.parametrize("rate", [225_000, 300_001, 500_000, 900_000, 3_200_001, -1, "fast", float("nan"), None])
def test_invalid_rtl_sdr_rates_name_the_ranges(rate):
    with pytest.raises(ConfigError, match="225001-300000 or 900001-3200000 Hz.*2.4 MS/s"):
        validate_sample_rate_hz(rate)


@pytest.mark.parametrize(
    "uri,kwargs,match",
    [
        ("http://x", {}, r"unknown source scheme 'http://'.*rtl_tcp://192\.168\.1\.20:1234"),
        ("just-a-path.cu8", {}, "is not a URI; accepted: synthetic://"),
        ("rtl_tcp://", {}, "names no host"),
        ("rtl_tcp://h:70000", {}, "bad port"),
        ("rtl_tcp://h:12ab", {}, "bad port"),
        ("rtl_tcp://h:0", {}, "port 0"),
        ("rtl_tcp://h:1234?gain=3", {}, "unknown option 'gain'"),
        ("rtl_tcp://h:1234?ppm=x", {}, "ppm='x' must be an integer"),
        ("rtl_tcp://user@h:1234", {}, "only rtl_tcp://HOST:PORT"),
        ("rtl_tcp://h", {"sample_rate_hz": 500_000}, "225001-300000"),
        ("rtl_tcp://h", {"realtime": False}, "always realtime"),
        ("rtl_tcp://h", {"loop": True}, "files only"),
        ("rtl_tcp://h", {"center_freq_hz": -5}, "center_freq_hz -5"),
        ("rtl_tcp://h", {"gain_db": "loud"}, "gain_db 'loud'"),
        ("rtlsdr://first", {}, "small integer"),
        ("rtlsdr://-1", {}, "small integer"),
        ("file://", {}, "names no file"),
        ("synthetic://host?seed=1", {}, "only a query"),
        ("synthetic://[", {}, "only a query"),  # found by the property test
        ("rtl_tcp://[::1", {}, "bad port|names no host|Invalid"),
        ("synthetic://?seed=x", {}, "seed='x'"),
        ("synthetic://?seed=1", {"loop": True}, "never ends"),
        ("synthetic://?rate=2e6", {"sample_rate_hz": 1e6}, "give it once"),
        ("synthetic://?seed=1", {"chunk_samples": 0}, "chunk_samples 0"),
    ],
)
def test_bad_uris_are_config_errors_naming_the_problem(uri, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        open_source(uri, **kwargs)
