"""Property tests: parsers of untrusted input raise only documented errors, and never hang.

rtl_tcp header and streams (client side) and command bytes (server side), SigMF metadata, cu8
file names, source URIs, CLI values (capture flags, backfill keys) and partition settings from
the environment. Every example either succeeds or raises an SdrAssetsError subclass (through
the CLI: exit 2 with one line, or a click usage error); anything else fails the test.
"""

import atexit
import functools
import json
import math
import os
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sdr_assets.capture.file import FileSource, parse_rtl433_filename
from sdr_assets.capture.rtltcp import HEADER_LEN, MAGIC, RtlTcpSource, parse_header
from sdr_assets.capture.uri import open_source
from sdr_assets.errors import SdrAssetsError, SourceError
from sdr_assets.records import Chunk
from sdr_assets.sigmf import parse_sigmf_meta
from sdr_assets_tests.capture_support import CLI, REPO

# SDR_ASSETS_FUZZ_SCALE=20 runs 20x the examples (a deeper local run; the suite stays fast).
SCALE = max(1, int(os.environ.get("SDR_ASSETS_FUZZ_SCALE", "1")))
FAST = settings(max_examples=150 * SCALE, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
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
@given(
    st.one_of(
        st.binary(max_size=64),
        st.tuples(st.binary(min_size=8, max_size=8), st.binary(max_size=3000)).map(lambda t: MAGIC + t[0] + t[1]),
    )
)
def test_client_on_arbitrary_streams_stores_every_byte_or_fails_cleanly(payload):
    port = _serve_once(payload)
    client = RtlTcpSource(
        "127.0.0.1",
        port,
        center_freq_hz=433.92e6,
        sample_rate_hz=250e3,
        chunk_samples=100,
        stall_timeout_s=1.0,
        max_reconnects=0,
    )
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
        assert bytes(got) == body[: len(body) // 2 * 2]  # every whole I/Q pair, exactly
    else:
        assert not got


_CORE_KEYS = [
    "global",
    "captures",
    "annotations",
    "core:datatype",
    "core:sample_rate",
    "core:version",
    "core:sample_start",
    "core:sample_count",
    "core:frequency",
    "core:datetime",
    "core:freq_lower_edge",
    "core:freq_upper_edge",
    "core:label",
    "core:num_channels",
    "core:dataset",
    "core:header_bytes",
    "core:metadata_only",
]
_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["cu8", "ci16_le", "cf32_be", "ri8", "cu16", "c", "2024-05-01T12:00:00Z", "2024-13-45T99:99:99Z"]),
)
_json = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(_CORE_KEYS), st.text(max_size=6)), inner, max_size=5),
    ),
    max_leaves=25,
)


_VALUES = {  # mostly plausible values, sometimes anything
    "core:datatype": st.sampled_from(["cu8", "ci8", "ci16_le", "cu16_be", "cf32_le", "cf64_be", "ci32_le"]),
    "core:sample_rate": st.one_of(st.integers(1, 10_000_000), st.floats(0, 1e7)),
    "core:sample_start": st.integers(0, 80),
    "core:sample_count": st.integers(0, 80),
    "core:frequency": st.floats(-1e10, 1e10),
    "core:datetime": st.sampled_from(
        ["2024-05-01T12:00:00Z", "2024-05-01T12:00:00.000001Z", "2024-05-01T11:59:59+01:00", "1970-01-01T00:00:00Z"]
    ),
    "core:freq_lower_edge": st.floats(4e8, 5e8),
    "core:freq_upper_edge": st.floats(4e8, 5e8),
    "core:label": st.text(max_size=5),
}


def _mostly(plausible: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(plausible, plausible, plausible, _leaves)


def _obj(keys) -> st.SearchStrategy:
    return st.dictionaries(st.sampled_from(keys), st.just(None), max_size=len(keys)).flatmap(
        lambda d: st.fixed_dictionaries({k: _mostly(_VALUES[k]) if k in _VALUES else _leaves for k in d})
    )


def _valid_like() -> st.SearchStrategy:
    return st.fixed_dictionaries(
        {
            "global": st.fixed_dictionaries(
                {"core:datatype": _mostly(_VALUES["core:datatype"]), "core:sample_rate": _VALUES["core:sample_rate"]}
            ),
            "captures": st.lists(_obj(_CORE_KEYS[6:10]), max_size=3),
            "annotations": st.lists(_obj(_CORE_KEYS[6:13]), max_size=3),
        }
    )


@FAST
@given(
    st.one_of(st.text(max_size=80), _json.map(json.dumps), _valid_like().map(lambda d: json.dumps(d, allow_nan=True)))
)
def test_sigmf_metadata_parser_raises_only_source_errors(text):
    try:
        meta = parse_sigmf_meta(text, "fuzz.sigmf-meta")
    except SourceError:
        return
    assert meta.sample_rate_hz > 0 and meta.captures[0].sample_start == 0


@settings(max_examples=80 * SCALE, deadline=3000, suppress_health_check=[HealthCheck.too_slow])
@given(
    _valid_like().map(lambda d: json.dumps(d, allow_nan=True)),
    st.binary(max_size=400).map(lambda b: b[: len(b) // 16 * 16] if len(b) % 5 else b),
)
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
@given(
    st.one_of(
        st.text(max_size=60),
        st.lists(
            st.one_of(st.text(alphabet="0123456789.kKMGmgHzsp", max_size=10), st.text(max_size=5)), max_size=5
        ).map(lambda parts: "_".join(parts) + ".cu8"),
    )
)
def test_cu8_file_name_parser_never_raises(name):
    center, rate = parse_rtl433_filename(name)
    for v in (center, rate):
        assert v is None or (math.isfinite(v) and v >= 0)


@FAST
@given(
    st.tuples(
        st.text(max_size=300), st.sampled_from(["", ".cu8", ".sigmf-meta", ".sigmf-data", ".cs16", "_1M_250k.cu8"])
    ).map("".join)
)
def test_file_source_on_arbitrary_paths_raises_only_documented_errors(name):
    src = FileSource(name)
    try:
        src.open()
    except SdrAssetsError:
        pass  # documented: not found, no rate, bad name
    finally:
        src.close()


_SCHEMES = st.sampled_from(
    [
        "synthetic://",
        "file://",
        "rtl_tcp://",
        "rtlsdr://",
        "RTL_TCP://",
        "http://",
        "",
        "://",
        "synthetic://?",
        "rtl_tcp://[",
        "rtlsdr://0",
    ]
)


@FAST
@given(
    st.one_of(st.text(max_size=40), st.tuples(_SCHEMES, st.text(max_size=30)).map("".join)),
    st.one_of(st.none(), st.floats(), st.integers(-10, 4_000_000)),
)
def test_source_uris_raise_only_config_errors(uri, rate):
    try:
        open_source(uri, sample_rate_hz=rate)
    except SdrAssetsError:
        pass  # documented


# ---- CLI values (click commands in-process; a few through the real executable) -------------
_SPECIAL = st.sampled_from(
    [
        "nan",
        "inf",
        "-inf",
        "1e300",
        "1e309",
        "-0",
        "0",
        "0.0",
        "1e-300",
        "-1",
        "250000",
        "3.2e6",
        "2.4e6",
        "1",
        "0.01",
        "60",
        "0x10",
        "1_000",
        " 5",
        "",
        "five",
        "1,5",
        "9" * 25,
    ]
)
_NUMBERS = st.one_of(
    _SPECIAL,
    _SPECIAL,
    _SPECIAL,
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(2**70), 2**70).map(str),
    st.text(max_size=8),
)
_CAPTURE_FLAGS = [
    "--sample-rate-hz",
    "--center-freq-hz",
    "--gain-db",
    "--cap-gb",
    "--cap-bytes",
    "--partition-minutes",
    "--ring-mb",
    "--duration-s",
    "--max-age-s",
]


def _tiny_recording() -> Path:
    path = Path(tempfile.gettempdir()) / f"sdr_fuzz_{os.getpid()}_433.92M_250k.cu8"
    if not path.exists():
        path.write_bytes(bytes(range(256)) * 64)  # 8192 samples: a capture of it ends at once
        atexit.register(path.unlink, missing_ok=True)
    return path


def _invoke(args: list[str], home: str):
    from click.testing import CliRunner

    from sdr_assets.cli import main

    return CliRunner().invoke(main, args, env={"SDR_ASSETS_HOME": home}, catch_exceptions=True)


def _documented(result) -> bool:
    """exit 0, or exit 2 by our one-line error or a click usage error: nothing else."""
    if result.exit_code == 0:
        return result.exception is None
    return result.exit_code == 2 and isinstance(result.exception, SystemExit) and "Traceback" not in result.output


@settings(max_examples=60 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(_CAPTURE_FLAGS), _NUMBERS), min_size=1, max_size=4))
def test_capture_flags_give_a_capture_or_one_clear_error(flags):
    args = ["capture", "--source", f"file://{_tiny_recording()}"]
    for flag, value in flags:
        args += [flag, value]
    with tempfile.TemporaryDirectory() as home:
        result = _invoke(args, home)
    assert _documented(result), (args, result.exit_code, result.output[-800:], result.exception)


def _key_like() -> st.SearchStrategy:
    digits = st.integers(0, 9999).map(str)
    return st.one_of(
        st.text(max_size=20),
        st.tuples(digits, digits, digits, digits, digits).map(lambda t: f"{t[0]}-{t[1]}-{t[2]}-{t[3]}:{t[4]}"),
        st.sampled_from(["2026-11-23-00:00", "1970-01-01-00:00", "9999-12-31-23:59", "2026-02-30-00:00", "-", ""]),
    )


@functools.cache
def _closed_keys() -> frozenset:
    from sdr_assets.defs.partitions import TIME_PARTITIONS

    return frozenset(TIME_PARTITIONS.get_partition_keys())


# Listing 7 days of 1-minute partitions takes ~0.4 s a call here: few examples, no deadline
# (a hang still trips pytest's timeout).
@settings(max_examples=15 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_key_like(), _key_like(), st.one_of(st.none(), st.text(max_size=30)))
def test_backfill_keys_are_refused_with_one_clear_error(first, last, select):
    from hypothesis import assume

    assume(not (first in _closed_keys() and last in _closed_keys()))  # a valid range would run
    args = ["backfill", "--from", first, "--to", last] + ([] if select is None else ["--select", select])
    with tempfile.TemporaryDirectory() as home:
        result = _invoke(args, home)
    assert result.exit_code == 2 and _documented(result), (args, result.output[-800:], result.exception)


@FAST
@given(st.one_of(st.text(max_size=12), _NUMBERS))
def test_partition_settings_from_the_environment_raise_only_config_errors(raw):
    from sdr_assets.cli import partition_minutes_from_env
    from sdr_assets.defs import partitions

    old = {k: os.environ.get(k) for k in ("SDR_ASSETS_PARTITION_MINUTES", "SDR_ASSETS_PARTITION_START")}
    try:
        if "\0" in raw:
            return  # an environment value cannot hold NUL
        os.environ["SDR_ASSETS_PARTITION_MINUTES"] = raw
        os.environ["SDR_ASSETS_PARTITION_START"] = raw
        for fn in (partitions.partition_minutes, partition_minutes_from_env, partitions.partition_start):
            try:
                fn()
            except SdrAssetsError:
                pass
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# Values the fuzzer found crashing or failing late (exit 1 with a traceback, or a capture that
# started and then died in its writer): now refused up front, one line, exit 2, nothing stored.
@pytest.mark.parametrize(
    "flags",
    [
        ["--cap-gb", "inf"],
        ["--cap-gb", "nan"],
        ["--ring-mb", "inf"],
        ["--ring-mb", "1e300"],
        ["--max-age-s", "nan", "--partition-minutes", "1"],
        ["--max-age-s", "1e300", "--partition-minutes", "1"],
        ["--sample-rate-hz", "nan"],
        ["--partition-minutes", "-1"],
        ["--cap-bytes", "0"],
    ],
)
def test_bad_capture_values_are_one_line_exit_2_through_the_real_executable(flags, data_root):
    out = subprocess.run(
        [CLI, "capture", "--source", f"file://{_tiny_recording()}", *flags],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert out.stderr.startswith("error: ") and not (data_root / "hot.db").exists()


@NET
@given(st.binary(max_size=64))
def test_rtl_tcp_server_survives_any_client_bytes(data):
    """A client sending arbitrary command bytes never stops the server: the next client is served."""
    from sdr_assets.capture.rtltcp_server import RtlTcpServer
    from sdr_assets.capture.synthetic import SyntheticSource

    server = RtlTcpServer(SyntheticSource(seed=1, sample_rate_hz=250_000, chunk_samples=4096), port=0).start()
    try:
        with socket.create_connection(server.address, timeout=5) as bad:
            bad.recv(HEADER_LEN)
            bad.sendall(data)
        client = RtlTcpSource(
            "127.0.0.1",
            server.port,
            center_freq_hz=433.92e6,
            sample_rate_hz=250e3,
            chunk_samples=1024,
            max_reconnects=0,
        )
        try:
            client.open()
            first = next(iter(client.events()))
            assert isinstance(first, Chunk) and len(first.iq) == 2048
        finally:
            client.close()
        assert server.error is None
    finally:
        server.stop()
