"""`sdr-assets capture`, `status`, `stats` through the real command line."""

import json
import socket
import threading

import pytest

from sdr_assets_tests.capture_support import query, run_cli, write_cu8


def _assert_one_line_error(out, hot):
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert out.returncode == 2, out.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert "Traceback" not in out.stderr
    # a refused start stores nothing: no capture row (and no DB at all, here)
    assert not hot.exists() or query(hot, "SELECT count(*) FROM captures")[0][0] == 0
    return lines[0]


@pytest.fixture
def not_rtl_tcp_server():
    """A TCP server that greets every client with b'HELLO WORLD!' (12 bytes, not 'RTL0')."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    stop = threading.Event()

    def serve():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(b"HELLO WORLD!")
                conn.recv(64)  # hold it open until the client gives up

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join(timeout=5)
    srv.close()


def _bad_sources(tmp_path):
    odd = tmp_path / "odd_433.92M_250k.cu8"
    odd.write_bytes(b"\x80" * 1001)
    meta = tmp_path / "bad.sigmf-meta"
    meta.write_text('{"global": {"core:datatype": "cu8", ')  # truncated JSON
    (tmp_path / "bad.sigmf-data").write_bytes(b"\x80" * 1000)
    return {
        "unknown scheme": (["--source", "gopher://radio"], "gopher"),
        "missing file": (["--source", f"file://{tmp_path}/nope_433.92M_250k.cu8"], "nope"),
        "odd-length cu8": (["--source", f"file://{odd}"], "odd number of bytes"),
        "bad SigMF JSON": (["--source", f"file://{meta}"], "bad.sigmf-meta"),
        "rate outside the RTL-SDR ranges": (
            ["--source", "rtl_tcp://127.0.0.1:9", "--sample-rate-hz", "500000"],
            "225001-300000",
        ),
        "cap under one window": (
            ["--source", "synthetic://?seed=1&rate=1024000", "--cap-bytes", "1000000", "--partition-minutes", "5"],
            "two 5-min windows",
        ),
        "both caps": (["--source", "synthetic://?seed=1", "--cap-bytes", "1", "--cap-gb", "1"], "not both"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "unknown scheme",
        "missing file",
        "odd-length cu8",
        "bad SigMF JSON",
        "rate outside the RTL-SDR ranges",
        "cap under one window",
        "both caps",
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_capture_row(case, data_root, tmp_path):
    args, needle = _bad_sources(tmp_path)[case]
    out = run_cli("capture", *args, "--duration-s", "2")
    line = _assert_one_line_error(out, data_root / "hot.db")
    assert needle in line


def test_a_server_that_is_not_rtl_tcp_is_refused(data_root, not_rtl_tcp_server):
    out = run_cli(
        "capture",
        "--source",
        f"rtl_tcp://127.0.0.1:{not_rtl_tcp_server}",
        "--duration-s",
        "2",
        "--partition-minutes",
        "1",
    )
    line = _assert_one_line_error(out, data_root / "hot.db")
    assert "HELLO" in line or "rtl_tcp" in line


def test_a_hot_db_path_that_is_a_folder_is_refused(data_root):
    (data_root / "hot.db").mkdir()
    out = run_cli(
        "capture", "--source", "synthetic://?seed=1&rate=250000", "--duration-s", "2", "--partition-minutes", "1"
    )
    assert out.returncode == 2 and out.stderr.strip().startswith("error: ")
    assert len(out.stderr.strip().splitlines()) == 1 and "folder" in out.stderr


def test_serve_rtl_tcp_on_a_port_in_use_is_one_line(data_root, port):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        out = run_cli("serve-rtl-tcp", "--source", "synthetic://?seed=1", "--port", str(port))
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert out.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert str(port) in lines[0]


# ---- status and stats on a real DB ------------------------------------------------------
def test_status_and_stats_say_so_when_nothing_has_run(data_root):
    out = run_cli("status")
    assert out.returncode == 0 and "No capture has run yet" in out.stdout
    assert not (data_root / "hot.db").exists()  # a read-only command creates nothing
    out = run_cli("stats")
    assert out.returncode == 2 and out.stderr.startswith("error: ") and "does not exist" in out.stderr


def test_capture_then_status_and_stats_show_the_figures(data_root, tmp_path):
    rec = write_cu8(tmp_path / "rec_433.92M_250k.cu8", 2 * 1024 * 1024)
    out = run_cli("capture", "--source", f"file://{rec}", "--realtime", "--partition-minutes", "0.05")
    assert out.returncode == 0, out.stderr
    assert out.stderr.splitlines()[0].startswith("capture 1: file://")  # the start line
    assert "capture 1 ended (eof)" in out.stderr and "received 1048576 samples, stored 1048576" in out.stderr
    hot = data_root / "hot.db"
    assert query(hot, "SELECT sum(n_samples) FROM chunks")[0][0] == 1048576

    st = run_cli("status")
    assert st.returncode == 0, st.stderr
    for needle in (
        "capture 1: stopped (eof)",
        "rec_433.92M_250k.cu8",
        "433.92 MHz, 0.25 MS/s",
        "samples received",
        "1,048,576",
        "ring fill",
        "commit ms",
        "hot DB size",
    ):
        assert needle in st.stdout, (needle, st.stdout)

    by_capture = run_cli("stats")
    assert by_capture.returncode == 0, by_capture.stderr
    rows = [ln for ln in by_capture.stdout.splitlines() if "rss_mb" in ln]
    assert len(rows) == 1 and rows[0].split("│")[1].strip() == "1"  # key = capture 1
    n_tel = query(hot, "SELECT count(*) FROM telemetry WHERE metric = 'rss_mb'")[0][0]
    assert rows[0].split("│")[3].strip() == str(n_tel)  # the count column
    assert "rows in chunks" in by_capture.stdout and "page_size" in by_capture.stdout

    by_hour = run_cli("stats", "--by", "hour", "--metric", "samples_stored")
    assert by_hour.returncode == 0
    lines = [ln for ln in by_hour.stdout.splitlines() if "samples_stored" in ln]
    assert len(lines) == 1 and "Z" in lines[0] and "1.049e+06" in lines[0]
    assert "rss_mb" not in by_hour.stdout

    unknown = run_cli("stats", "--metric", "no_such_metric")
    assert unknown.returncode == 2 and "known:" in unknown.stderr


def test_status_of_a_killed_capture_says_it_is_not_running(data_root):
    """A capture row with no end and no recent telemetry: the process died."""
    from sdr_assets.records import SourceInfo
    from sdr_assets.store.hot import HotWriter

    with HotWriter(data_root / "hot.db") as hot:
        hot.begin_capture(SourceInfo("synthetic://?seed=1", "synthetic", 433.92e6, 1.024e6), 1_000_000_000)
    out = run_cli("status")
    assert out.returncode == 0 and "not running (no end recorded" in out.stdout


def test_capture_help_lists_every_flag():
    out = run_cli("capture", "--help")
    for flag in (
        "--source",
        "--center-freq-hz",
        "--sample-rate-hz",
        "--gain-db",
        "--realtime",
        "--loop",
        "--ring-mb",
        "--cap-bytes",
        "--cap-gb",
        "--max-age-s",
        "--synchronous",
        "--duration-s",
        "--partition-minutes",
    ):
        assert flag in out.stdout
    assert json.dumps("--writer-delay-s") not in out.stdout  # the test hook stays hidden


def test_a_second_capture_on_the_same_hot_db_is_refused(data_root, tmp_path):
    """The hot DB has exactly one writer: a second capture names the first one's pid."""
    from sdr_assets_tests.capture_support import chunks_of_newest_capture, start_cli, wait_until

    hot = data_root / "hot.db"
    first = start_cli(
        "capture",
        "--source",
        "synthetic://?seed=1&rate=250000",
        "--partition-minutes",
        "1",
        stderr_path=tmp_path / "first.log",
    )
    try:
        wait_until(lambda: chunks_of_newest_capture(hot) >= 1, 60, "the first capture", first)
        out = run_cli(
            "capture", "--source", "synthetic://?seed=2&rate=250000", "--partition-minutes", "1", "--duration-s", "2"
        )
        lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
        assert out.returncode == 2 and len(lines) == 1, out.stderr
        assert lines[0].startswith("error: another capture") and f"pid {first.pid}" in lines[0]
        assert query(hot, "SELECT count(*) FROM captures")[0][0] == 1
    finally:
        first.send_signal(2)
        first.wait(timeout=30)
    assert first.returncode == 0


def test_a_second_capture_through_the_same_rtl_tcp_server_names_the_first(data_root, tmp_path, port):
    """rtl_tcp serves one client at a time: the second capture hears about the first one's
    lock at once (it is taken before the source opens), not "no rtl_tcp header within 3 s"."""
    from sdr_assets.capture.rtltcp_server import RtlTcpServer
    from sdr_assets.capture.synthetic import SyntheticSource
    from sdr_assets_tests.capture_support import chunks_of_newest_capture, start_cli, wait_until

    hot = data_root / "hot.db"
    source = ["--source", f"rtl_tcp://127.0.0.1:{port}", "--sample-rate-hz", "250000", "--partition-minutes", "1"]
    with RtlTcpServer(SyntheticSource(seed=1, sample_rate_hz=250_000), port=port) as server:
        first = start_cli("capture", *source, stderr_path=tmp_path / "first.log")
        try:
            wait_until(lambda: chunks_of_newest_capture(hot) >= 1, 60, "the first capture", first)
            out = run_cli("capture", *source, "--duration-s", "2")
            lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
            assert out.returncode == 2 and len(lines) == 1, out.stderr
            assert lines[0].startswith("error: another capture") and f"pid {first.pid}" in lines[0]
            assert server.clients_served == 1  # the second never connected
        finally:
            first.send_signal(2)
            first.wait(timeout=30)
    assert first.returncode == 0
    assert query(hot, "SELECT count(*) FROM captures")[0][0] == 1
