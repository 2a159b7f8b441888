"""`make run`'s main job: the Dagster UI and the capture service come up, and one SIGINT
stops everything (the capture drains and records its end)."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[2]


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


def _wait_json(url: str, timeout_s: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return json.loads(r.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _query(path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _stored_chunks(hot) -> int:
    try:
        return _query(hot, "SELECT count(*) FROM chunks")[0][0] if hot.exists() else 0
    except sqlite3.OperationalError:  # the schema is being created
        return 0


def test_run_serves_ui_and_one_sigint_stops_all(port, data_root):
    from sdr_assets_tests.conftest import free_port

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cli = Path(sys.executable).parent / "sdr-assets"
    api_port = free_port()
    # A new session stands in for the terminal: SIGINT to the group is what Ctrl-C sends.
    log = data_root / "run.log"  # a file, not a pipe: dagster's log must never block on it
    proc = subprocess.Popen(
        [str(cli), "run", "--port", str(port), "--api-port", str(api_port)],
        cwd=REPO,
        env=env,
        start_new_session=True,
        stderr=log.open("w"),
    )
    try:
        info = _wait_server_info(port, proc)
        assert info.get("dagster_version") == "1.13.27"
        time.sleep(3)  # let dagster dev start its daemon and code server
        children = psutil.Process(proc.pid).children(recursive=True)
        tree = [proc.pid] + [c.pid for c in children]
        assert len(tree) >= 4  # supervisor, capture, dagster dev, webserver/daemon/code server
        # the capture service runs beside Dagster, in the same data root, and is storing
        captures = [c for c in children if "capture" in c.cmdline() and "synthetic://?seed=1" in c.cmdline()]
        assert len(captures) == 1, [c.cmdline() for c in children]
        hot = data_root / "hot.db"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _stored_chunks(hot) == 0:
            time.sleep(0.5)
        assert _stored_chunks(hot) > 0
        # the HTTP API runs beside them on the same data root and reads what the capture writes
        history = _wait_json(f"http://127.0.0.1:{api_port}/api/telemetry/history?limit=5")
        assert history["count"] == 5 and {row["process"] for row in history["rows"]} == {"capture"}
        assert any("serve-api" in c.cmdline() for c in children)
        os.killpg(proc.pid, signal.SIGINT)
        t0 = time.monotonic()
        proc.wait(timeout=15)
        while time.monotonic() - t0 < 10 and any(
            psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in tree
        ):
            time.sleep(0.2)
        alive = [p for p in tree if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        assert alive == [], f"still running {time.monotonic() - t0:.1f} s after SIGINT: {alive}"
        assert time.monotonic() - t0 <= 10.0
        # the capture stopped cleanly: drained, committed, its end recorded
        assert _query(hot, "SELECT end_reason FROM captures") == [("signal",)]
        assert f"HTTP API:   http://127.0.0.1:{api_port}/api" in log.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
