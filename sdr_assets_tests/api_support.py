"""A data root filled by real captures and the real Dagster chain, and a real API server on it
(`sdr-assets serve-api` as a child process on loopback), for test_api.py and bench/api_load.py.

The root holds two windows of the ``default`` sensor, both found from what was captured (never a
calendar date): a synthetic capture with ground truth and detections, and, where the real ISM
recordings (../shared/data/rtl433) and rtl_433 are here, a few of them in one recording with
recorded gaps between them (decoded messages, devices, detections).
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sdr_assets.records import NS_PER_S

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RTL433 = REPO.parent / "shared" / "data" / "rtl433"
RATE_HZ = 250_000
CHAIN = ["hot_snapshot", "iq_window", "spectrograms", "detections"]
DECODE_CHAIN = CHAIN + ["decoded_messages", "device_inventory"]


def have_recordings() -> bool:
    return (RTL433 / "manifest.json").is_file() and shutil.which("rtl_433") is not None


def partition_of(t_ns: int) -> str:
    """The 1-minute time key holding ``t_ns`` (the tests' partitions)."""
    return datetime.fromtimestamp(t_ns / NS_PER_S, tz=UTC).strftime("%Y-%m-%d-%H:%M")


def _minute_ago(minutes: int, second: int) -> datetime:
    return (datetime.now(UTC) - timedelta(minutes=minutes)).replace(second=second, microsecond=0)


def capture_cli(env: dict, uri: str, *extra: str) -> None:
    out = subprocess.run(
        [str(BIN / "sdr-assets"), "capture", "--source", uri, "--no-realtime", "--partition-minutes", "1", *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr


def held_range(hot_db: Path, since_ns: int) -> tuple[int, int]:
    """(first chunk start, last chunk end) of the chunks starting at or after ``since_ns``."""
    from sdr_assets_tests.capture_support import query

    ((t0, t1),) = query(
        hot_db,
        "SELECT min(t_start_ns), max(t_start_ns + n_samples * 1000000000 / "
        "sample_rate_hz) FROM chunks WHERE t_start_ns >= ?",
        (since_ns,),
    )
    return int(t0), int(t1)


@dataclass
class FilledRoot:
    root: Path
    synth_key: str  # 'default|...' of the synthetic window
    synth_span: tuple[int, int]  # its captured samples (ns)
    ism_key: str | None = None  # the window of the real recordings (None where they are absent)
    ism_span: tuple[int, int] | None = None
    ism_starts: list[int] = field(default_factory=list)


def fill_root(root: Path, *, n_recordings: int = 8) -> FilledRoot:
    """Capture (CLI) and materialise (Dagster, in-process) the windows described in the module doc.
    ``SDR_ASSETS_HOME`` must already point at ``root``."""
    from sdr_assets_tests.helpers import failure_text, materialize

    root.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, SDR_ASSETS_HOME=str(root), SDR_ASSETS_PARTITION_MINUTES="1")
    hot = root / "hot.db"
    start = _minute_ago(150, second=5)
    since = int(start.timestamp()) * NS_PER_S
    capture_cli(
        env,
        f"synthetic://?seed=21&rate={RATE_HZ}&kinds=cw,ook&emissions_per_s=2"
        f"&start={start:%Y-%m-%dT%H:%M:%SZ}&duration_s=20",
    )
    span = held_range(hot, since)
    key = partition_of(span[0])
    assert partition_of(span[1] - 1) == key, "the synthetic capture crossed a minute"
    res = materialize(CHAIN, key, quiet=True)
    assert res.success, failure_text(res)
    filled = FilledRoot(root, f"default|{key}", span)
    if have_recordings():
        t0 = int(_minute_ago(120, second=2).timestamp()) * NS_PER_S
        from sdr_assets_tests.defs.test_defs_decode import multi_recording_sigmf, recordings

        meta, starts = multi_recording_sigmf(root, recordings()[:n_recordings], t0)
        capture_cli(env, f"file://{meta}")
        ism = held_range(hot, t0)
        ism_key = partition_of(ism[0])
        assert partition_of(ism[1] - 1) == ism_key, "the recordings crossed a minute"
        res = materialize(DECODE_CHAIN, ism_key, quiet=True)
        assert res.success, failure_text(res)
        filled.ism_key, filled.ism_span, filled.ism_starts = f"default|{ism_key}", ism, starts
    return filled


class ApiServer:
    """`sdr-assets serve-api` on loopback as a child process (its own process group)."""

    def __init__(self, root: Path, port: int, *extra: str, env: dict | None = None):
        self.url = f"http://127.0.0.1:{port}"
        self.root = root
        env = dict(env or os.environ, SDR_ASSETS_HOME=str(root))
        self.proc = subprocess.Popen(
            [str(BIN / "sdr-assets"), "serve-api", "--port", str(port), *extra],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self._wait_ready()

    def _wait_ready(self, timeout_s: float = 60.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve-api exited {self.proc.returncode}: {self.proc.stderr.read()}")
            try:
                if httpx.get(self.url + "/openapi.json", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise AssertionError("serve-api did not answer within 60 s")

    def stop(self) -> str:
        """SIGINT, wait, SIGKILL if needed; its stderr."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.stderr.read()


# ---- load: many clients while a capture runs (test_api.py, bench/api_load.py) ------------------
def start_capture(root: Path, *, rate_hz: float, duration_s: float, ring_mb: float = 64.0) -> subprocess.Popen:
    """A live synthetic capture (paced like a dongle) into ``root``'s hot DB, once it is running."""
    from sdr_assets.capture.console import read_status

    env = dict(os.environ, SDR_ASSETS_HOME=str(root))
    before = (read_status(root / "hot.db") or {}).get("capture_id")
    proc = subprocess.Popen(
        [
            str(BIN / "sdr-assets"),
            "capture",
            "--source",
            f"synthetic://?seed=5&rate={rate_hz:.0f}",
            "--duration-s",
            str(duration_s),
            "--ring-mb",
            str(ring_mb),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"capture exited {proc.returncode}: {proc.stderr.read()}")
        st = read_status(root / "hot.db")
        if st and st["capture_id"] != before and st["state"].startswith("running"):
            return proc
        time.sleep(0.5)
    proc.kill()
    raise AssertionError("the capture did not start within 60 s")


@dataclass(frozen=True)
class Losses:
    """The newest capture's figures; ``samples_lost`` and ``gaps`` leave out the dead time before
    it started (cause ``restart``: recorded at its start, never received), kept apart."""

    capture_id: int
    samples_received: int
    samples_stored: int
    samples_lost: int
    gaps: int
    samples_lost_before_start: int
    end_reason: str | None


def capture_losses(hot_db: Path) -> Losses:
    """The newest capture's final counters (telemetry) and the gaps it recorded."""
    from sdr_assets_tests.capture_support import query

    ((cid, end),) = query(hot_db, "SELECT capture_id, end_reason FROM captures ORDER BY capture_id DESC LIMIT 1")
    last = dict(
        query(
            hot_db,
            "SELECT metric, value FROM telemetry t WHERE capture_id = ? AND t_ns = (SELECT max(t_ns) "
            "FROM telemetry u WHERE u.capture_id = t.capture_id AND u.metric = t.metric)",
            (cid,),
        )
    )
    gaps = query(hot_db, "SELECT count(*) FROM gaps WHERE capture_id = ? AND cause != 'restart'", (cid,))[0][0]
    before = int(last.get("samples_lost_restart", 0))
    return Losses(
        cid,
        int(last.get("samples_received", 0)),
        int(last.get("samples_stored", 0)),
        int(last.get("samples_lost", 0)) - before,
        gaps,
        before,
        end,
    )


def request_mix(span: tuple[int, int]) -> list[tuple[str, dict]]:
    """One request per endpoint (two spans of samples), over the synthetic window ``span``."""
    t0 = span[0] + NS_PER_S
    return [
        ("/api/telemetry/history", {"limit": 200}),
        ("/api/telemetry/stats", {}),
        ("/api/database/stats", {}),
        ("/api/detections", {"from": str(span[0]), "to": str(span[1])}),
        ("/api/messages", {"limit": 100}),
        ("/api/devices", {}),
        ("/api/iq", {"from": str(t0), "to": str(t0 + NS_PER_S // 5)}),
        ("/api/iq", {"detection_id": 1}),
    ]


@dataclass(frozen=True)
class Result:
    path: str
    status: int
    seconds: float
    n_bytes: int


def run_load(url: str, mix: list[tuple[str, dict]], *, n_requests: int, concurrency: int) -> list[Result]:
    """``n_requests`` over ``concurrency`` clients (threads, one keep-alive connection each),
    cycling through ``mix``; every response read to its end."""
    import concurrent.futures
    import threading

    import httpx

    local = threading.local()
    clients: list = []

    def one(i: int) -> Result:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=url, timeout=120)
            clients.append(local.client)
        path, query = mix[i % len(mix)]
        t = time.perf_counter()
        r = local.client.get(path, params=query)
        return Result(path, r.status_code, time.perf_counter() - t, len(r.content))

    try:
        with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            return list(pool.map(one, range(n_requests)))
    finally:
        for c in clients:
            c.close()


def latency_table(results: list[Result]) -> list[dict]:
    """Per endpoint: requests, statuses, p50/p99/max latency (ms), MB received."""
    import numpy as np

    out = []
    for path in sorted({r.path for r in results}):
        mine = [r for r in results if r.path == path]
        ms = np.array([r.seconds * 1000 for r in mine])
        statuses = ",".join(f"{s}x{sum(1 for r in mine if r.status == s)}" for s in sorted({r.status for r in mine}))
        out.append(
            {
                "endpoint": path,
                "requests": len(mine),
                "status": statuses,
                "p50_ms": float(np.percentile(ms, 50)),
                "p99_ms": float(np.percentile(ms, 99)),
                "max_ms": float(ms.max()),
                "mb": sum(r.n_bytes for r in mine) / 1e6,
            }
        )
    return out
