"""RtlTcpServer defends itself: hostile or broken clients over real sockets.

Each test reproduces one way a single client used to crash, flood or wedge `serve-rtl-tcp`
(issue 12): the command is now checked against what an RTL-SDR accepts, logged and ignored;
the command log is bounded; a client that stops reading or never hangs up loses the slot.
"""

import logging
import signal
import socket
import subprocess
import time

import numpy as np
import pytest

from sdr_assets.capture.file import FileSource
from sdr_assets.capture.rtltcp import (
    CMD_SET_FREQ,
    CMD_SET_GAIN,
    CMD_SET_GAIN_MODE,
    CMD_SET_SAMPLE_RATE,
    HEADER_LEN,
    RtlTcpSource,
    encode_command,
    parse_header,
)
from sdr_assets.capture.rtltcp_server import COMMAND_LOG_LEN, RtlTcpServer, command_problem
from sdr_assets.capture.synthetic import SyntheticSource
from sdr_assets.records import Chunk
from sdr_assets_tests.capture_support import run_cli, start_cli, wait_until

RATE_HZ = 250_000


def _synthetic(**kw) -> SyntheticSource:
    kw = {"seed": 1, "sample_rate_hz": RATE_HZ, "chunk_samples": 4096, **kw}
    return SyntheticSource(**kw)


def _connect(server: RtlTcpServer, timeout_s: float = 10.0) -> socket.socket:
    sock = socket.create_connection(server.address, timeout=timeout_s)
    header = b""
    while len(header) < HEADER_LEN:
        more = sock.recv(HEADER_LEN - len(header))
        assert more, "the server closed the connection before the header"
        header += more
    parse_header(header)
    return sock


def _read_for(sock: socket.socket, duration_s: float) -> int:
    """Bytes received in duration_s (0 on EOF)."""
    n, deadline = 0, time.monotonic() + duration_s
    while time.monotonic() < deadline:
        try:
            data = sock.recv(1 << 16)
        except TimeoutError:
            break
        if not data:
            break
        n += len(data)
    return n


def _left(server: RtlTcpServer, n_clients: int) -> None:
    wait_until(lambda: server.clients_left >= n_clients, 15, f"client {n_clients} to leave")


@pytest.mark.parametrize("rate_hz", [0, 1, 100, 300_001, 0xFFFFFFFF])
def test_a_sample_rate_no_rtl_sdr_runs_at_is_rejected_and_the_stream_goes_on(rate_hz, caplog):
    """Before: 1 and 100 crashed the server (numpy 'high - low < 0'), 0 was taken silently,
    0xFFFFFFFF made it push 326 MB in 1.5 s."""
    caplog.set_level(logging.INFO, logger="sdr_assets.capture")
    src = _synthetic()
    with RtlTcpServer(src, port=0) as server:
        t0 = time.monotonic()
        sock = _connect(server)
        sock.sendall(encode_command(CMD_SET_SAMPLE_RATE, rate_hz))
        got = _read_for(sock, 0.6)
        elapsed_s = time.monotonic() - t0
        sock.close()
        again = _connect(server)  # the server is alive and serves the next client
        assert _read_for(again, 0.3) > 0
        again.close()
        _left(server, 2)
        assert server.error is None
    assert src.sample_rate_hz == RATE_HZ
    assert 0 < got <= 2 * RATE_HZ * (elapsed_s + 0.1)  # paced at the old rate, never faster
    assert (
        f"sample rate (0x02) {rate_hz} rejected: sample rate {rate_hz} Hz is not one an "
        "RTL-SDR can run at" in caplog.text
    )
    assert "1 commands: 0 applied, 0 ignored, 1 rejected" in caplog.text


def test_commands_outside_rtl_sdr_ranges_or_unknown_are_logged_and_never_applied(caplog):
    caplog.set_level(logging.INFO, logger="sdr_assets.capture")
    src = _synthetic(center_freq_hz=433.92e6, gain_db=20.0)
    bad = [
        (CMD_SET_FREQ, 10),
        (CMD_SET_FREQ, 0xFFFFFFFF),
        (CMD_SET_FREQ, 1_766_000_001),
        (CMD_SET_GAIN, 0xFFFFFFFF),
        (CMD_SET_GAIN, 5000),
        (0x05, 1_000_000),
        (0x08, 2),
        (CMD_SET_GAIN_MODE, 7),
        (0x0E, 0xFFFFFFFF),
        (0xFF, 7),
        (0x00, 0),
    ]
    unsupported = [(0x09, 1), (0x0A, 1), (0x0D, 5)]  # direct sampling, offset tuning, gain index
    good = [(CMD_SET_FREQ, 868_300_000), (CMD_SET_GAIN, 402)]
    with RtlTcpServer(src, port=0) as server:
        sock = _connect(server)
        sock.sendall(b"".join(encode_command(c, p) for c, p in bad + unsupported + good))
        wait_until(
            lambda: server.commands_received == len(bad + unsupported + good), 10, "the server to read every command"
        )
        sock.close()
        _left(server, 1)
        report = server.last_client
    assert (report.commands, report.rejected, report.ignored, report.applied) == (16, 11, 3, 2)
    assert src.center_freq_hz == 868.3e6 and src.gain_db == 40.2
    assert "centre frequency (0x01) 10 rejected: 10 Hz is outside the R820T's 24-1766 MHz" in caplog.text
    assert "gain (0x04) 4294967295 rejected: -0.1 dB is outside the tuner's 0-49.6 dB" in caplog.text
    assert "command (0xff) 7 rejected: 0xff is not an rtl_tcp command code" in caplog.text
    assert "further commands are counted, not logged" in caplog.text
    assert (
        f"client {report.peer} left after" in caplog.text
        and "16 commands: 2 applied, 3 ignored, 11 rejected" in caplog.text
    )


def test_command_ranges():
    assert command_problem(CMD_SET_SAMPLE_RATE, 225_001) is None
    assert command_problem(CMD_SET_SAMPLE_RATE, 3_200_000) is None
    assert command_problem(CMD_SET_SAMPLE_RATE, 300_001) is not None
    assert command_problem(CMD_SET_FREQ, 24_000_000) is None
    assert command_problem(CMD_SET_FREQ, 23_999_999) is not None
    assert command_problem(CMD_SET_GAIN, 496) is None and command_problem(CMD_SET_GAIN, 497)
    assert command_problem(0x05, (-50) & 0xFFFFFFFF) is None  # ppm is signed
    assert command_problem(0x0D, 3) is None  # known to rtl_tcp: ignored, not rejected


def test_the_command_log_is_bounded():
    """Before: ``commands`` kept every command of every client (10 MB of commands: +140 MB)."""
    n, last = 60_000, (CMD_SET_GAIN, 402)
    with RtlTcpServer(_synthetic(), port=0) as server:
        sock = _connect(server)
        sock.sendall(b"".join(encode_command(CMD_SET_GAIN_MODE, i % 2) for i in range(n)) + encode_command(*last))
        wait_until(lambda: server.commands[-1:] == [last], 30, "the server to read them all")
        assert len(server.commands) == COMMAND_LOG_LEN
        sock.close()
        _left(server, 1)
        assert server.last_client.commands == server.commands_received == n + 1


def test_a_client_that_never_reads_is_dropped_and_the_next_one_is_served():
    """Before: it held the only slot forever (no send timeout)."""
    src = _synthetic(realtime=False, chunk_samples=65_536)
    with RtlTcpServer(src, port=0, send_timeout_s=0.5) as server:
        idle = socket.socket()
        idle.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills at once
        idle.connect(server.address)
        t0 = time.monotonic()
        nxt = _connect(server, timeout_s=20)  # waits in the backlog until the slot frees
        waited_s = time.monotonic() - t0
        assert _read_for(nxt, 0.3) > 0
        nxt.close()
        idle.close()
        _left(server, 2)
    assert waited_s < 10
    assert server.clients_served == 2


def test_a_client_that_never_hangs_up_after_the_end_is_closed(tmp_path):
    path = tmp_path / "s_433.92M_250k.cu8"
    path.write_bytes(bytes(range(256)) * 40)
    with RtlTcpServer(FileSource(path), port=0, idle_timeout_s=0.5) as server:
        stays = _connect(server)
        got = b""
        while data := stays.recv(1 << 16):
            got += data
        assert got == bytes(range(256)) * 40  # then EOF; it keeps its own end open
        t0 = time.monotonic()
        nxt = _connect(server)
        waited_s = time.monotonic() - t0
        nxt.close()
        stays.close()
        _left(server, 2)
    assert waited_s < 3
    assert server.clients_served == 2


@pytest.mark.parametrize("port", ["106546", "65536", "-1"])
def test_cli_refuses_a_port_outside_the_tcp_range(port):
    """Before: 106546 wrapped to 41010 and served there; -1 said 'cannot resolve host'."""
    try:
        out = run_cli("serve-rtl-tcp", "--source", "synthetic://?seed=1", "--port", port, timeout_s=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"--port {port} was accepted: the server kept serving")
    assert out.returncode == 2, out.stderr
    assert out.stderr.splitlines() == [
        f"error: port {port} is not a TCP port; use 1-65535 (e.g. --port 1234), or 0 for any free port"
    ]


# ---- the real `sdr-assets serve-rtl-tcp` under random commands --------------------------------
FUZZ_BYTES_PER_CLIENT = 1_500_000  # 300 000 commands
FUZZ_RSS_BOUND_MB = 20.0  # before the fix each such client added ~40 MB (the command list)
_CMD = np.dtype([("code", "u1"), ("param", ">u4")])  # 5 bytes, as on the wire
_EDGES = np.array(
    [
        0,
        1,
        2,
        100,
        225_000,
        225_001,
        300_000,
        300_001,
        900_000,
        900_001,
        3_200_000,
        3_200_001,
        23_999_999,
        24_000_000,
        1_766_000_000,
        1_766_000_001,
        496,
        497,
        0x7FFFFFFF,
        0x80000000,
        0xFFFFFFFF,
    ],
    np.uint32,
)


def _random_commands(rng: np.random.Generator, n: int) -> bytes:
    """n commands: mostly codes rtl_tcp knows, any code otherwise; parameters uniform, tiny,
    range edges or valid (so the source is retuned too); ends back at RATE_HZ."""
    cmds = np.empty(n, _CMD)
    known = np.array([0x01, 0x02, 0x03, 0x04, 0x05, 0x08, 0x09, 0x0A, 0x0D, 0x0E], np.uint8)
    cmds["code"] = np.where(rng.random(n) < 0.7, rng.choice(known, n), rng.integers(0, 256, n, dtype=np.uint8))
    pick = rng.integers(0, 5, n)
    choices = [
        rng.integers(0, 1 << 32, n, dtype=np.uint64),
        rng.integers(0, 4, n),
        rng.choice(_EDGES, n),
        rng.integers(225_001, 300_001, n),
        rng.integers(24_000_000, 1_766_000_001, n),
    ]
    cmds["param"] = np.choose(pick, choices).astype(np.uint32)
    return cmds.tobytes() + encode_command(CMD_SET_SAMPLE_RATE, RATE_HZ)


def _fuzz_client(address, payload: bytes, reads: bool, until_gone) -> int:
    """Send payload; a reader drains the stream to EOF, or (reads=False) nothing reads it
    and the socket stays open until ``until_gone()`` (the server dropped it). Bytes received."""
    sock = socket.socket()
    if not reads:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(20)
    sock.connect(address)
    got = 0
    try:
        for i in range(0, len(payload), 1 << 16):
            sock.sendall(payload[i : i + (1 << 16)])
        if not reads:
            wait_until(until_gone, 60, "the server to drop a client that does not read")
            return 0
        sock.shutdown(socket.SHUT_WR)  # the server reads every command, then sees EOF
        while data := sock.recv(1 << 16):
            got += len(data)
    finally:
        sock.close()
    return got


def test_random_commands_from_several_clients_leave_the_real_server_alive_with_flat_rss(tmp_path, port):
    """A few MB of random commands from 4 clients (one never reads) against the real
    `sdr-assets serve-rtl-tcp`: it serves a normal client afterwards, logs one leave line per
    client, never a traceback, and its RSS after the first client stays within the bound."""
    import psutil

    log_path, rng = tmp_path / "server.log", np.random.default_rng(12)
    proc = start_cli(
        "serve-rtl-tcp",
        "--source",
        f"synthetic://?seed=1&rate={RATE_HZ}",
        "--port",
        str(port),
        "--send-timeout-s",
        "1",
        stderr_path=log_path,
    )
    try:
        wait_until(lambda: "listening on" in log_path.read_text(), 60, "the server", proc)
        ps, rss_mb = psutil.Process(proc.pid), []
        n = FUZZ_BYTES_PER_CLIENT // 5
        for k, reads in enumerate([True, True, False, True]):  # the first one warms up

            def gone(k=k):
                return log_path.read_text().count(" left after ") == k + 1

            got = _fuzz_client(("127.0.0.1", port), _random_commands(rng, n), reads, gone)
            assert got > 0 or not reads
            wait_until(gone, 60, f"client {k + 1} to leave", proc)
            rss_mb.append(ps.memory_info().rss / 1e6)
        client = RtlTcpSource(
            "127.0.0.1", port, center_freq_hz=433.92e6, sample_rate_hz=RATE_HZ, chunk_samples=4096, max_reconnects=0
        )
        client.open()
        first = next(e for e in client.events() if isinstance(e, Chunk))
        client.close()
        assert len(first.iq) == 8192 and proc.poll() is None
    finally:
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=30)
    text = log_path.read_text()
    print("RSS after each client (MB):", [round(r, 1) for r in rss_mb])
    assert rc == 0 and "Traceback" not in text, text[-3000:]
    lefts = [line for line in text.splitlines() if " left after " in line]
    assert len(lefts) == 5 and "not reading; dropped to free the slot" in lefts[2]
    assert all(f"{n + 1} commands" in line for line in lefts[:4]), lefts
    assert max(rss_mb[1:]) - rss_mb[0] <= FUZZ_RSS_BOUND_MB, rss_mb
