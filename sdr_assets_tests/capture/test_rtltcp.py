"""The rtl_tcp client against RtlTcpServer (and a few hostile servers) over real sockets."""

import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from sdr_assets.capture.file import FileSource
from sdr_assets.capture.rtltcp import (
    CMD_SET_FREQ,
    CMD_SET_GAIN,
    CMD_SET_GAIN_MODE,
    CMD_SET_SAMPLE_RATE,
    RtlTcpSource,
    encode_command,
    parse_header,
)
from sdr_assets.capture.rtltcp_server import R820T_GAINS_TENTH_DB, RtlTcpServer
from sdr_assets.capture.uri import open_source
from sdr_assets.errors import ConfigError, SourceError
from sdr_assets.records import Chunk, Gap


def _cu8_file(tmp_path, n_samples: int, seed: int = 0):
    data = np.random.default_rng(seed).integers(0, 256, 2 * n_samples, dtype=np.uint8).tobytes()
    path = tmp_path / "src_433.92M_250k.cu8"
    path.write_bytes(data)
    return path, data


def _collect(client, n_bytes: int, timeout_s: float = 20.0) -> tuple[bytes, list]:
    """Iterate until n_bytes of chunks arrived (a watchdog stops a hung stream)."""
    watchdog = threading.Timer(timeout_s, client.stop)
    watchdog.start()
    got, events = bytearray(), []
    try:
        for ev in client.events():
            events.append(ev)
            if isinstance(ev, Chunk):
                got += ev.iq
                if len(got) >= n_bytes:
                    break
    finally:
        watchdog.cancel()
    return bytes(got), events


def _wait_for(predicate, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_client_reads_server_byte_exact_and_sends_tuning(tmp_path, port):
    path, data = _cu8_file(tmp_path, 300_000)  # 0.29 s at the server's (and client's) rate
    server = RtlTcpServer(
        FileSource(path, sample_rate_hz=1_024_000, realtime=True, chunk_samples=50_000), port=port
    ).start()
    client = open_source(
        f"rtl_tcp://127.0.0.1:{port}",
        center_freq_hz=868.3e6,
        sample_rate_hz=1_024_000,
        gain_db=40.2,
        chunk_samples=16_384,
    )
    try:
        info = client.open()
        got, events = _collect(client, len(data))
        _wait_for(lambda: len(server.commands) >= 4)  # the server reads them in a thread
    finally:
        client.close()
        server.stop()
    assert info.kind == "rtl_tcp" and info.meta["tuner"] == "R820T"
    assert info.meta["gain_count"] == len(R820T_GAINS_TENTH_DB)
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    chunks = [e for e in events if isinstance(e, Chunk)]
    assert all(c.n_samples == 16_384 for c in chunks[:-1])
    assert all(c.center_freq_hz == 868.3e6 and c.gain_db == 40.2 for c in chunks)
    for a, b in zip(chunks, chunks[1:]):
        assert b.t_start_ns == a.t_end_ns
    assert server.commands[:4] == [
        (CMD_SET_SAMPLE_RATE, 1_024_000),
        (CMD_SET_FREQ, 868_300_000),
        (CMD_SET_GAIN_MODE, 1),
        (CMD_SET_GAIN, 402),
    ]


def test_auto_gain_and_retune_reach_the_source(tmp_path, port):
    path, _ = _cu8_file(tmp_path, 10_000)
    src = FileSource(path, loop=True, realtime=True, chunk_samples=2_500)
    tuned = []
    src.set_center_freq_hz = lambda f: tuned.append(f) or False  # record what the server applies
    with RtlTcpServer(src, port=port) as server:
        client = RtlTcpSource("127.0.0.1", port, center_freq_hz=433.92e6, sample_rate_hz=250e3)
        client.open()
        client.set_center_freq_hz(434.5e6)
        _wait_for(lambda: len(server.commands) >= 4)
        client.close()
    assert (CMD_SET_GAIN_MODE, 0) in server.commands
    assert server.commands[-1] == (CMD_SET_FREQ, 434_500_000)
    assert tuned == [433.92e6, 434.5e6]


def test_retune_mid_stream_ends_the_chunk_and_keeps_the_clock(tmp_path, port):
    path, _ = _cu8_file(tmp_path, 20_000)
    src = FileSource(path, loop=True, realtime=True, chunk_samples=2_000)
    with RtlTcpServer(src, port=port) as server:
        client = RtlTcpSource("127.0.0.1", port, center_freq_hz=433.92e6, sample_rate_hz=250e3, chunk_samples=1_500)
        client.open()
        chunks = []
        for ev in client.events():
            chunks.append(ev)
            if len(chunks) == 3:
                client.set_center_freq_hz(434.5e6)
                client.set_sample_rate_hz(1.024e6)
            if sum(c.sample_rate_hz == 1.024e6 for c in chunks) == 3:
                break
        client.close()
        _wait_for(lambda: len(server.commands) >= 5)  # rate, freq, auto gain + 2 retunes
    # bytes received before the retune keep the old tuning (a few ms may still be buffered)
    n_old = sum(c.center_freq_hz == 433.92e6 for c in chunks)
    assert n_old >= 3 and [c.center_freq_hz for c in chunks] == [433.92e6] * n_old + [434.5e6] * 3
    assert [c.sample_rate_hz for c in chunks] == [250e3] * n_old + [1.024e6] * 3
    for a, b in zip(chunks, chunks[1:]):
        assert b.t_start_ns == a.t_end_ns
    assert server.commands[-2:] == [(CMD_SET_FREQ, 434_500_000), (CMD_SET_SAMPLE_RATE, 1_024_000)]


def test_drop_mid_stream_yields_a_reconnect_gap_and_the_stream_goes_on(tmp_path, port):
    path, data = _cu8_file(tmp_path, 25_000)  # 0.1 s at 250 kS/s, looped in realtime
    src = FileSource(path, loop=True, realtime=True, chunk_samples=2_500)
    with RtlTcpServer(src, port=port, drop_after_bytes=20_001) as server:
        client = RtlTcpSource(
            "127.0.0.1", port, center_freq_hz=433.92e6, sample_rate_hz=250e3, chunk_samples=1_000, backoff_initial_s=0.1
        )
        client.open()
        got, events = _collect(client, 60_000)
        client.close()
    gaps = [e for e in events if isinstance(e, Gap)]
    assert len(gaps) == 1 and gaps[0].cause == "reconnect"
    assert gaps[0].n_samples_lost > 0  # the 0.1 s backoff alone is 25 000 samples
    assert "half an I/Q pair" in gaps[0].detail  # 20 001 bytes: the odd byte is not stored
    i = events.index(gaps[0])
    before = [e for e in events[:i] if isinstance(e, Chunk)]
    after = [e for e in events[i:] if isinstance(e, Chunk)]
    assert b"".join(c.iq for c in before) == (data * 2)[:20_000]
    assert sum(c.n_samples for c in after) > 0
    assert gaps[0].t_start_ns == before[-1].t_end_ns
    assert after[0].t_start_ns >= gaps[0].t_end_ns
    assert server.clients_served == 2 and client.reconnects == 1


def test_each_client_gets_the_file_from_its_start_then_eof(tmp_path, port):
    path, data = _cu8_file(tmp_path, 30_000)
    with RtlTcpServer(FileSource(path, realtime=True, chunk_samples=7_000), port=port) as server:
        for _ in range(2):
            client = RtlTcpSource(
                "127.0.0.1", port, center_freq_hz=433.92e6, sample_rate_hz=250e3, chunk_samples=4_096, max_reconnects=0
            )
            client.open()
            events = []
            with pytest.raises(SourceError, match="server closed the connection"):
                for ev in client.events():
                    events.append(ev)
            client.close()
            assert [e for e in events if not isinstance(e, Chunk)] == []
            assert b"".join(e.iq for e in events) == data
        assert server.clients_served == 2 and server.source_ended


def _one_shot_server(port: int, payload: bytes, hold_s: float = 0.0):
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", port))
    lsock.listen(1)

    def serve():
        conn, _ = lsock.accept()
        conn.sendall(payload)
        time.sleep(hold_s)
        conn.close()
        lsock.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return t


def test_a_server_with_a_bad_header_is_refused_without_retry(port):
    _one_shot_server(port, b"HTTP/1.1 400 Bad Request\r\n\r\n", hold_s=0.5)
    client = RtlTcpSource("127.0.0.1", port, center_freq_hz=433.92e6, sample_rate_hz=250e3)
    with pytest.raises(SourceError, match=rf"127.0.0.1:{port} is not an rtl_tcp server"):
        client.open()
    assert client.reconnects == 0


def test_connection_refused_at_first_open(port):
    client = RtlTcpSource("127.0.0.1", port, center_freq_hz=433.92e6, sample_rate_hz=250e3)
    with pytest.raises(SourceError, match="cannot connect to .*start rtl_tcp there"):
        client.open()


def test_a_silent_server_is_a_clear_error(port):
    _one_shot_server(port, b"", hold_s=2.0)
    client = RtlTcpSource("127.0.0.1", port, center_freq_hz=433.92e6, sample_rate_hz=250e3, stall_timeout_s=0.3)
    with pytest.raises(SourceError, match="no rtl_tcp header"):
        client.open()


def test_a_stall_after_the_header_reconnects_then_gives_up_when_told(port):
    _one_shot_server(port, b"RTL0" + bytes(8) + b"\x80" * 100, hold_s=2.0)
    client = RtlTcpSource(
        "127.0.0.1",
        port,
        center_freq_hz=433.92e6,
        sample_rate_hz=250e3,
        stall_timeout_s=0.3,
        max_reconnects=1,
        backoff_initial_s=0.05,
    )
    client.open()
    chunks = []
    with pytest.raises(SourceError, match="lost rtl_tcp .*no data for 0.3 s"):
        for ev in client.events():
            chunks.append(ev)
    client.close()
    assert b"".join(c.iq for c in chunks) == b"\x80" * 100  # flushed before reconnecting


def test_header_parser():
    assert parse_header(b"RTL0" + (5).to_bytes(4, "big") + (29).to_bytes(4, "big")) == (5, 29)
    with pytest.raises(SourceError, match="not an rtl_tcp server"):
        parse_header(b"RTL1" + bytes(8), "h:1")
    assert encode_command(CMD_SET_GAIN, -10) == b"\x04\xff\xff\xff\xf6"


def test_port_in_use_is_a_clear_error(tmp_path, port):
    path, _ = _cu8_file(tmp_path, 10)
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen(1)
        server = RtlTcpServer(FileSource(path), port=port)
        with pytest.raises(ConfigError, match=f"port {port} is in use on 127.0.0.1; pick another with --port"):
            server.start()


def test_cli_serve_rtl_tcp_serves_a_file_until_sigint(tmp_path, port):
    path, data = _cu8_file(tmp_path, 50_000)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sdr_assets.cli",
            "serve-rtl-tcp",
            "--source",
            f"file://{path}",
            "--port",
            str(port),
            "--loop",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    try:
        line = proc.stderr.readline()
        assert f"listening on 127.0.0.1:{port}" in line
        client = RtlTcpSource("127.0.0.1", port, center_freq_hz=433.92e6, sample_rate_hz=250e3, chunk_samples=5_000)
        client.open()
        got, _ = _collect(client, 20_000)
        client.close()
        assert got[:20_000] == data[:20_000]
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0


def test_cli_serve_rtl_tcp_reports_a_busy_port(tmp_path, port):
    path, _ = _cu8_file(tmp_path, 10)
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen(1)
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "sdr_assets.cli",
                "serve-rtl-tcp",
                "--source",
                f"file://{path}",
                "--port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert out.returncode == 2
    assert f"port {port} is in use" in out.stderr and "Traceback" not in out.stderr
