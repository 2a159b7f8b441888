"""`make run`'s main job: the Dagster UI comes up, and one SIGINT stops everything."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]


def _wait_server_info(port: int, proc, timeout_s: float = 240.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "sdr-assets run exited early"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2) as r:
                return json.loads(r.read())
        except OSError:
            time.sleep(1.0)
    raise AssertionError("the Dagster UI did not answer /server_info in time")


def test_run_serves_ui_and_one_sigint_stops_all(port, data_root):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cli = Path(sys.executable).parent / "sdr-assets"
    # A new session stands in for the terminal: SIGINT to the group is what Ctrl-C sends.
    proc = subprocess.Popen([str(cli), "run", "--port", str(port)], cwd=REPO, env=env,
                            start_new_session=True)
    try:
        info = _wait_server_info(port, proc)
        assert info.get("dagster_version") == "1.13.27"
        time.sleep(3)  # let dagster dev start its daemon and code server
        tree = [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        assert len(tree) >= 3  # supervisor, dagster dev, webserver/daemon/code server
        os.killpg(proc.pid, signal.SIGINT)
        t0 = time.monotonic()
        proc.wait(timeout=15)
        while time.monotonic() - t0 < 10 and any(psutil.pid_exists(p) and
                psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in tree):
            time.sleep(0.2)
        alive = [p for p in tree if psutil.pid_exists(p)
                 and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        assert alive == [], f"still running {time.monotonic() - t0:.1f} s after SIGINT: {alive}"
        assert time.monotonic() - t0 <= 10.0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
