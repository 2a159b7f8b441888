"""Property tests: parsers of untrusted input raise only documented errors, and never hang.

rtl_tcp header and streams, SigMF metadata, cu8 file names and source URIs. Every example
either succeeds or raises an SdrAssetsError subclass; anything else fails the test.
"""

import json
import math
import os
import socket
import tempfile
import threading
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sdr_assets.capture.file import FileSource, parse_rtl433_filename
from sdr_assets.capture.rtltcp import HEADER_LEN, MAGIC, RtlTcpSource, parse_header
from sdr_assets.capture.sigmf import parse_sigmf_meta
from sdr_assets.capture.uri import open_source
from sdr_assets.errors import SdrAssetsError, SourceError
from sdr_assets.records import Chunk

# SDR_ASSETS_FUZZ_SCALE=20 runs 20x the examples (a deeper local run; the suite stays fast).
SCALE = max(1, int(os.environ.get("SDR_ASSETS_FUZZ_SCALE", "1")))
FAST = settings(max_examples=150 * SCALE, deadline=1000,
                suppress_health_check=[HealthCheck.too_slow])
NET = settings(max_examples=25 * SCALE, deadline=5000, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.one_of(st.binary(max_size=20), st.binary(max_size=8).map(lambda b: MAGIC + b)))
def test_header_parser_accepts_only_rtl0(data):
    try:
        tuner, gains = parse_header(data, "fuzz:1")
    except SourceError as exc:
        assert "is not an rtl_tcp server" in str(exc)
        assert not (len(data) == HEADER_LEN and data.startswith(MAGIC))
    else:
        assert len(data) == HEADER_LEN and data.startswith(MAGIC)
        assert 0 <= tuner < 2**32 and 0 <= gains < 2**32


def _serve_once(payload: bytes) -> int:
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    lsock.settimeout(5)

    def serve():
        try:
            conn, _ = lsock.accept()
            conn.sendall(payload)
            conn.close()
        finally:
            lsock.close()

    threading.Thread(target=serve, daemon=True).start()
    return lsock.getsockname()[1]


@NET
@given(st.one_of(st.binary(max_size=64),
                 st.tuples(st.binary(min_size=8, max_size=8), st.binary(max_size=3000))
                 .map(lambda t: MAGIC + t[0] + t[1])))
def test_client_on_arbitrary_streams_stores_every_byte_or_fails_cleanly(payload):
    port = _serve_once(payload)
    client = RtlTcpSource("127.0.0.1", port, center_freq_hz=433.92e6, sample_rate_hz=250e3,
                          chunk_samples=100, stall_timeout_s=1.0, max_reconnects=0)
    got = bytearray()
    watchdog = threading.Timer(4.0, client.stop)
    watchdog.start()
    try:
        client.open()
        for ev in client.events():
            assert isinstance(ev, Chunk)
            got += ev.iq
    except SdrAssetsError:
        pass  # documented: a bad header, or the stream ended and no reconnect was allowed
    finally:
        watchdog.cancel()
        client.close()
    if payload.startswith(MAGIC) and len(payload) >= HEADER_LEN:
        body = payload[HEADER_LEN:]
        assert bytes(got) == body[:len(body) // 2 * 2]  # every whole I/Q pair, exactly
    else:
        assert not got


_CORE_KEYS = ["global", "captures", "annotations", "core:datatype", "core:sample_rate",
              "core:version", "core:sample_start", "core:sample_count", "core:frequency",
              "core:datetime", "core:freq_lower_edge", "core:freq_upper_edge", "core:label",
              "core:num_channels", "core:dataset", "core:header_bytes", "core:metadata_only"]
_leaves = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                    st.sampled_from(["cu8", "ci16_le", "cf32_be", "ri8", "cu16", "c",
                                     "2024-05-01T12:00:00Z", "2024-13-45T99:99:99Z"]))
_json = st.recursive(_leaves, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.one_of(st.sampled_from(_CORE_KEYS), st.text(max_size=6)), inner,
                    max_size=5)), max_leaves=25)


_VALUES = {  # mostly plausible values, sometimes anything
    "core:datatype": st.sampled_from(["cu8", "ci8", "ci16_le", "cu16_be", "cf32_le",
                                      "cf64_be", "ci32_le"]),
    "core:sample_rate": st.one_of(st.integers(1, 10_000_000), st.floats(0, 1e7)),
    "core:sample_start": st.integers(0, 80),
    "core:sample_count": st.integers(0, 80),
    "core:frequency": st.floats(-1e10, 1e10),
    "core:datetime": st.sampled_from(["2024-05-01T12:00:00Z", "2024-05-01T12:00:00.000001Z",
                                      "2024-05-01T11:59:59+01:00", "1970-01-01T00:00:00Z"]),
    "core:freq_lower_edge": st.floats(4e8, 5e8),
    "core:freq_upper_edge": st.floats(4e8, 5e8),
    "core:label": st.text(max_size=5),
}


def _mostly(plausible: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(plausible, plausible, plausible, _leaves)


def _obj(keys) -> st.SearchStrategy:
    return st.dictionaries(st.sampled_from(keys), st.just(None), max_size=len(keys)).flatmap(
        lambda d: st.fixed_dictionaries({k: _mostly(_VALUES[k]) if k in _VALUES
                                         else _leaves for k in d}))


def _valid_like() -> st.SearchStrategy:
    return st.fixed_dictionaries({
        "global": st.fixed_dictionaries({"core:datatype": _mostly(
            _VALUES["core:datatype"]), "core:sample_rate": _VALUES["core:sample_rate"]}),
        "captures": st.lists(_obj(_CORE_KEYS[6:10]), max_size=3),
        "annotations": st.lists(_obj(_CORE_KEYS[6:13]), max_size=3)})


@FAST
@given(st.one_of(st.text(max_size=80), _json.map(json.dumps), _valid_like().map(
    lambda d: json.dumps(d, allow_nan=True))))
def test_sigmf_metadata_parser_raises_only_source_errors(text):
    try:
        meta = parse_sigmf_meta(text, "fuzz.sigmf-meta")
    except SourceError:
        return
    assert meta.sample_rate_hz > 0 and meta.captures[0].sample_start == 0


@settings(max_examples=80 * SCALE, deadline=3000, suppress_health_check=[HealthCheck.too_slow])
@given(_valid_like().map(lambda d: json.dumps(d, allow_nan=True)),
       st.binary(max_size=400).map(lambda b: b[:len(b) // 16 * 16] if len(b) % 5 else b))
def test_sigmf_recordings_open_and_replay_or_fail_cleanly(meta_text, data):
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "r.sigmf-meta").write_text(meta_text)
        (Path(d) / "r.sigmf-data").write_bytes(data)
        src = FileSource(Path(d) / "r", chunk_samples=7)
        try:
            src.open()
            events = list(src.events())
        except SdrAssetsError:
            event("refused")
            return
        finally:
            src.close()
        event("replayed")
        assert sum(e.n_samples for e in events if isinstance(e, Chunk)) == src._n_samples


@FAST
@given(st.one_of(st.text(max_size=60), st.lists(st.one_of(
    st.text(alphabet="0123456789.kKMGmgHzsp", max_size=10), st.text(max_size=5)),
    max_size=5).map(lambda parts: "_".join(parts) + ".cu8")))
def test_cu8_file_name_parser_never_raises(name):
    center, rate = parse_rtl433_filename(name)
    for v in (center, rate):
        assert v is None or (math.isfinite(v) and v >= 0)


@FAST
@given(st.tuples(st.text(max_size=300), st.sampled_from(["", ".cu8", ".sigmf-meta",
                                                          ".sigmf-data", ".cs16", "_1M_250k.cu8"]))
       .map("".join))
def test_file_source_on_arbitrary_paths_raises_only_documented_errors(name):
    src = FileSource(name)
    try:
        src.open()
    except SdrAssetsError:
        pass  # documented: not found, no rate, bad name
    finally:
        src.close()


_SCHEMES = st.sampled_from(["synthetic://", "file://", "rtl_tcp://", "rtlsdr://", "RTL_TCP://",
                            "http://", "", "://", "synthetic://?", "rtl_tcp://[", "rtlsdr://0"])


@FAST
@given(st.one_of(st.text(max_size=40), st.tuples(_SCHEMES, st.text(max_size=30)).map("".join)),
       st.one_of(st.none(), st.floats(), st.integers(-10, 4_000_000)))
def test_source_uris_raise_only_config_errors(uri, rate):
    try:
        open_source(uri, sample_rate_hz=rate)
    except SdrAssetsError:
        pass  # documented
