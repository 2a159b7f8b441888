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
    out = subprocess.run([str(BIN / "sdr-assets"), "capture", "--source", uri, "--no-realtime",
                          "--partition-minutes", "1", *extra], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr


def held_range(hot_db: Path, since_ns: int) -> tuple[int, int]:
    """(first chunk start, last chunk end) of the chunks starting at or after ``since_ns``."""
    from sdr_assets_tests.capture_support import query

    (t0, t1), = query(hot_db, "SELECT min(t_start_ns), max(t_start_ns + n_samples * 1000000000 / "
                              "sample_rate_hz) FROM chunks WHERE t_start_ns >= ?", (since_ns,))
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
    capture_cli(env, f"synthetic://?seed=21&rate={RATE_HZ}&kinds=cw,ook&emissions_per_s=2"
                     f"&start={start:%Y-%m-%dT%H:%M:%SZ}&duration_s=20")
    span = held_range(hot, since)
    key = partition_of(span[0])
    assert partition_of(span[1] - 1) == key, "the synthetic capture crossed a minute"
    res = materialize(CHAIN, key, quiet=True)
    assert res.success, failure_text(res)
    filled = FilledRoot(root, f"default|{key}", span)
    if have_recordings():
        t0 = int(_minute_ago(120, second=2).timestamp()) * NS_PER_S
        from sdr_assets_tests.test_defs_decode import multi_recording_sigmf, recordings

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
        self.proc = subprocess.Popen([str(BIN / "sdr-assets"), "serve-api", "--port", str(port), *extra],
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
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
