"""`sdr-assets decode --source URI`: rtl_433's messages from a recording (streamed through the runner)
and live from a real `sdr-assets serve-rtl-tcp` on loopback (rtl_433 as its rtl_tcp client)."""

import datetime
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sdr_assets_tests.conftest import free_port
from sdr_assets_tests.helpers import assert_one_error_line

BIN = Path(sys.executable).parent
RTL433 = Path(__file__).resolve().parents[3] / "shared" / "data" / "rtl433"
needs_data = pytest.mark.skipif(not (RTL433 / "manifest.json").is_file(), reason=f"{RTL433} is absent")
needs_rtl433 = pytest.mark.skipif(
    shutil.which("rtl_433") is None, reason="needs rtl_433 (sudo apt-get install rtl-433)"
)
LINE = re.compile(
    r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)  (\S+)  id (\S+)  ch (\S+)  ([\d.]+) MHz  SNR (-?[\d.]+) dB$"
)


def _recording(prefix: str) -> dict:
    return next(
        r for r in json.loads((RTL433 / "manifest.json").read_text())["recordings"] if r["file"].startswith(prefix)
    )


def _decode(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "sdr-assets"), "decode", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def _rtl433_says(rec: dict) -> list[tuple[str, str, str]]:
    """(model, id, channel) of each message the real rtl_433 decodes from the file (the runner)."""
    from sdr_assets.decode import decode_cu8

    res = decode_cu8([(RTL433 / rec["file"]).read_bytes()], rec["sample_rate_hz"], rec["center_freq_hz"])
    return [(m.model, m.device_id or "-", m.channel or "-") for m in res.messages]


def _parsed(stdout: str) -> list[re.Match]:
    lines = [x for x in stdout.splitlines() if x.strip()]
    parsed = [LINE.match(x) for x in lines]
    assert all(parsed), lines
    return parsed


@pytest.fixture
def server():
    """Start `sdr-assets serve-rtl-tcp` on a free loopback port; stopped with SIGINT after the test."""
    procs = []

    def start(*args: str) -> int:
        port = free_port()
        proc = subprocess.Popen(
            [str(BIN / "sdr-assets"), "serve-rtl-tcp", "--port", str(port), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # its "listening" line says the socket is bound
            ready, _, _ = select.select([proc.stderr], [], [], 0.5)
            if ready and "listening on" in proc.stderr.readline():
                return port
            assert proc.poll() is None, proc.stderr.read()
        raise AssertionError("serve-rtl-tcp did not start listening within 30 s")

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@needs_rtl433
@needs_data
def test_file_source_prints_what_rtl_433_decodes_at_the_recordings_time(tmp_path, data_root):
    from sdr_assets.sigmf import write_sigmf

    rec = _recording("GT-WT-02")
    expected = _rtl433_says(rec)
    assert len(expected) == rec["rtl_433_decoded_messages"] == 6
    res = _decode("--source", f"file://{RTL433 / rec['file']}")
    assert res.returncode == 0, res.stderr
    got = _parsed(res.stdout)
    assert [(m[2], m[3], m[4]) for m in got] == expected == [("GT-WT02", "52", "1")] * 6
    assert all(abs(float(m[5]) * 1e6 - rec["center_freq_hz"]) < rec["sample_rate_hz"] / 2 for m in got)
    assert "6 messages" in res.stderr and "with rtl_433 " in res.stderr

    # a SigMF copy carries its start time: each message is printed at start + rtl_433's offset
    t0 = datetime.datetime(2025, 3, 1, 12, 0, 0, tzinfo=datetime.UTC)
    write_sigmf(
        tmp_path / "gt",
        (RTL433 / rec["file"]).read_bytes(),
        rec["sample_rate_hz"],
        rec["center_freq_hz"],
        datetime_ns=int(t0.timestamp()) * 10**9,
    )
    res = _decode("--source", f"file://{tmp_path / 'gt.sigmf-meta'}")
    assert res.returncode == 0, res.stderr
    first = _parsed(res.stdout)[0]
    assert first[1] == "2025-03-01T12:00:00.122324Z"  # rtl_433's "@0.122324s" (sample 30581)


@needs_rtl433
@needs_data
def test_live_from_serve_rtl_tcp_on_loopback(server, data_root):
    """rtl_433 connects to the product's rtl_tcp server replaying a recording in real time: the
    models rtl_433 reports for that file, then the end of the stream ends the decode."""
    rec = _recording("GT-WT-02")
    port = server("--source", f"file://{RTL433 / rec['file']}")
    t_before = time.time()
    res = _decode("--source", f"rtl_tcp://127.0.0.1:{port}")
    assert res.returncode == 0, res.stderr
    got = _parsed(res.stdout)
    assert [(m[2], m[3], m[4]) for m in got] == _rtl433_says(rec)
    assert "rtl_tcp connected to 127.0.0.1" in res.stderr
    assert "6 messages; the server closed the connection" in res.stderr
    # live times are rtl_433's wall clock (UTC) while it decoded
    stamps = [
        datetime.datetime.strptime(m[1], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.UTC).timestamp() for m in got
    ]
    assert t_before - 1 <= stamps[0] <= stamps[-1] <= time.time() + 1


@needs_rtl433
@needs_data
def test_live_tunes_the_server_and_stops_on_duration_and_on_ctrl_c(server, data_root):
    rec = _recording("x10_01")  # 310 MHz: rtl_433 sends that tuning, and reports it
    port = server("--source", f"file://{RTL433 / rec['file']}", "--loop")
    res = _decode("--source", f"rtl_tcp://127.0.0.1:{port}", "--center-freq-hz", "310e6", "--duration-s", "3")
    assert res.returncode == 0, res.stderr
    got = _parsed(res.stdout)
    assert {m[2] for m in got} == {model for model, _, _ in _rtl433_says(rec)} == {"X10-RF"}
    assert all(abs(float(m[5]) - 310.0) < 0.125 for m in got)
    assert re.search(r"\d+ messages; --duration-s 3 passed", res.stderr)

    proc = subprocess.Popen(
        [str(BIN / "sdr-assets"), "decode", "--source", f"rtl_tcp://127.0.0.1:{port}", "--center-freq-hz", "310e6"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = proc.stdout.readline()  # blocks until the first message
    assert LINE.match(first.strip()), first
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0 and re.search(r"\d+ messages; stopped", err), err


@needs_rtl433
def test_bad_sources_areassert_one_error_line(tmp_path, data_root):
    port = free_port()  # nothing listens there
    assert_one_error_line(_decode("--source", f"rtl_tcp://127.0.0.1:{port}"), "Connection refused", "serve-rtl-tcp")
    assert_one_error_line(_decode("--source", "rtlsdr://0"), "serve-rtl-tcp --source rtlsdr://0")
    rec = tmp_path / "x_433.92M_250k.cu8"
    rec.write_bytes(b"\x80" * 1000)
    assert_one_error_line(_decode("--source", f"file://{rec}", "--duration-s", "2"), "a file is decoded whole")
    assert_one_error_line(_decode("--source", f"file://{tmp_path / 'missing.cu8'}"), "missing.cu8")
    env = {"PATH": str(BIN), "HOME": str(tmp_path), "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    assert_one_error_line(_decode("--source", f"file://{rec}", env=env), "sudo apt-get install rtl-433")
