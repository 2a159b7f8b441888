"""`sdr-assets capture` as a real process: SIGKILL (5 kills here, 20 under `make soak`),
SIGTERM/SIGINT, retention, imports."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from sdr_assets_tests.capture_support import (
    REPO,
    capture_ids,
    chunks_of_newest_capture,
    latest_metrics,
    query,
    run_cli,
    start_cli,
    wait_until,
    write_cu8,
)
from sdr_assets_tests.reliability_faults import kill_restart_cycles

SUMMARY_RE = re.compile(r"received (\d+) samples, stored (\d+) \(.*\), lost (\d+)")


@pytest.mark.parametrize("n_kills", [5, pytest.param(20, marks=pytest.mark.soak)])
def test_sigkill_at_random_moments_leaves_an_intact_db_with_every_hole_explained(data_root, tmp_path, n_kills):
    """SIGKILL at random moments (some before the first commit), a restart after each: the DB
    stays intact, every hole is a recorded gap, each restart records its dead time."""
    hot = data_root / "hot.db"
    seen_status = []

    def after_kill(k: int) -> None:
        if (
            not seen_status
            and hot.exists()
            and capture_ids(hot)
            and query(hot, "SELECT ended_ns FROM captures ORDER BY capture_id DESC LIMIT 1") == [(None,)]
        ):
            # its pid is still in hot.db.lock, but the process is gone: status says so
            assert "not running (no end recorded" in run_cli("status").stdout
            seen_status.append(k)

    rep = kill_restart_cycles(hot, n_kills, tmp_path / "logs", on_kill=after_kill)
    print(rep)
    assert rep.problems == []
    assert rep.kills == n_kills and seen_status
    assert rep.restart_gaps >= n_kills - rep.early_kills and rep.restart_lost_samples > 0
    assert rep.final_exit == 0 and rep.final_end_reason == "duration"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_drains_the_ring_and_stores_every_received_sample(data_root, tmp_path, sig):
    hot = data_root / "hot.db"
    log = tmp_path / "capture.log"
    # A writer slowed on purpose keeps a backlog in the ring when the signal lands.
    proc = start_cli(
        "capture",
        "--source",
        "synthetic://?seed=1&rate=1024000",
        "--partition-minutes",
        "1",
        "--writer-delay-s",
        "0.7",
        stderr_path=log,
    )
    try:
        wait_until(lambda: chunks_of_newest_capture(hot) >= 4, 60, "chunks to be committed", proc)
        status = run_cli("status")
        assert status.returncode == 0 and f"running (pid {proc.pid})" in status.stdout, status.stdout
        proc.send_signal(sig)
        assert proc.wait(timeout=30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    received, stored, lost = map(int, SUMMARY_RE.search(text).groups())
    assert received > 0 and lost == 0 and stored == received, text
    cid, reason = query(hot, "SELECT capture_id, end_reason FROM captures")[0]
    assert reason == "signal"
    assert query(hot, "SELECT sum(n_samples) FROM chunks")[0][0] == stored
    m = latest_metrics(hot, cid)
    assert m["samples_received"] == m["samples_stored"] == received
    assert m["samples_lost"] == 0 and m["samples_buffered"] == 0
    assert max(v for (v,) in query(hot, "SELECT value FROM telemetry WHERE metric = 'ring_fill'")) > 0
    status = run_cli("status")
    assert "stopped (signal)" in status.stdout and f"{received:,}" in status.stdout


def test_retention_keeps_the_db_under_its_cap_while_writing_five_times_the_cap(data_root, tmp_path):
    cap_bytes, batch_bytes = 8_000_000, 4 * 1024 * 1024
    rec = write_cu8(tmp_path / "rec_433.92M_250k.cu8", 5 * cap_bytes)
    hot = data_root / "hot.db"
    sizes: list[int] = []
    proc = start_cli(
        "capture",
        "--source",
        f"file://{rec}",
        "--cap-bytes",
        str(cap_bytes),
        "--partition-minutes",
        "0.1",
        stderr_path=tmp_path / "capture.log",
    )

    def sample():
        while proc.poll() is None:
            if hot.exists():
                sizes.append(hot.stat().st_size)
            time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    assert proc.wait(timeout=120) == 0, (tmp_path / "capture.log").read_text()
    sampler.join()
    sizes.append(hot.stat().st_size)
    print(f"hot.db size sampled {len(sizes)} times, max {max(sizes)} bytes")
    assert len(sizes) > 5
    assert max(sizes) <= cap_bytes + batch_bytes, f"hot.db grew to {max(sizes)} bytes"
    n_file_samples = 5 * cap_bytes // 2
    ((cid, reason),) = query(hot, "SELECT capture_id, end_reason FROM captures")
    m = latest_metrics(hot, cid)
    assert reason == "eof" and m["samples_stored"] == m["samples_received"] == n_file_samples
    assert m["pruned_chunks"] > 0
    held, oldest, newest_end = query(
        hot, "SELECT sum(n_samples), min(t_start_ns), max(t_start_ns + n_samples * 4000) FROM chunks"
    )[0]
    assert 0 < held * 2 <= cap_bytes
    # what is left is the newest data, one contiguous stretch ending where the file ends
    meta, started_ns = query(hot, "SELECT meta_json, started_ns FROM captures")[0]
    assert json.loads(meta)["n_samples"] == n_file_samples
    # an unpaced file ends when it is opened, just before the capture row is written: never
    # in the future of the wall clock
    assert (newest_end - started_ns) / 1e9 == pytest.approx(0.0, abs=2.0) and newest_end <= started_ns
    assert newest_end - oldest == held * 4000


def test_the_capture_process_loads_no_dagster_torch_or_ultralytics(data_root, tmp_path):
    rec = write_cu8(tmp_path / "tiny_433.92M_250k.cu8", 64 * 1024)
    code = (
        "import atexit, json, sys\n"
        "atexit.register(lambda: print('MODULES', json.dumps(sorted(m for m in ('dagster', 'torch', "
        "'ultralytics') if m in sys.modules))))\n"
        "from sdr_assets.cli import main\n"
        f"main(['capture', '--source', 'file://{rec}', '--partition-minutes', '0.01'])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO, env=dict(os.environ)
    )
    assert out.returncode == 0, out.stderr
    assert "capture 1 ended (eof)" in out.stderr
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("MODULES "))
    assert json.loads(line.split(" ", 1)[1]) == []
