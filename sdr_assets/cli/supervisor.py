"""`make run`: start Dagster, the capture service and the HTTP API as child processes; one
Ctrl-C stops all.

Each child gets its own process group, so the terminal's SIGINT reaches only this
supervisor, which then sends SIGINT to every child group, waits, and SIGKILLs stragglers.
(`dagster dev` started as a shell background job ignores SIGINT; started this way it obeys.)
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sdr_assets.paths import DataPaths

STOP_TIMEOUT_S = 8.0


@dataclass
class Service:
    name: str
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen | None = None


def prepare_dagster_home(paths: DataPaths, repo_root: Path) -> Path:
    """Create $DAGSTER_HOME under the data root and copy the repo's dagster.yaml into it."""
    home = paths.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    src = repo_root / "dagster.yaml"
    if src.exists():
        shutil.copyfile(src, home / "dagster.yaml")
    return home


def dagster_service(paths: DataPaths, repo_root: Path, host: str, port: int) -> Service:
    env = dict(os.environ)
    env["DAGSTER_HOME"] = str(prepare_dagster_home(paths, repo_root))
    env["SDR_ASSETS_HOME"] = str(paths.root)
    bin_dir = Path(sys.executable).parent
    dagster = str(bin_dir / "dagster") if (bin_dir / "dagster").exists() else "dagster"
    workspace = repo_root / "workspace.yaml"
    target = ["-w", str(workspace)] if workspace.exists() else ["-m", "sdr_assets.definitions"]
    argv = [dagster, "dev", *target, "-h", host, "-p", str(port)]
    return Service("dagster", argv, env)


DEFAULT_CAPTURE_SOURCE = "synthetic://?seed=1"
# 1.024 MS/s keeps the capture's CPU modest so Dagster stays responsive on a small machine,
# and two 5-minute windows (1.2 GB) fit the hot DB's default 2 GiB cap.
DEFAULT_CAPTURE_RATE_HZ = 1_024_000


def capture_service(
    paths: DataPaths, source_uri: str = DEFAULT_CAPTURE_SOURCE, sample_rate_hz: float | None = DEFAULT_CAPTURE_RATE_HZ
) -> Service:
    """`sdr-assets capture` as a child: same data root (and partition length) as Dagster."""
    env = dict(os.environ)
    env["SDR_ASSETS_HOME"] = str(paths.root)
    argv = [_cli(), "capture", "--source", source_uri]
    if sample_rate_hz is not None:
        rate = float(sample_rate_hz)
        argv += ["--sample-rate-hz", str(int(rate)) if rate.is_integer() else repr(rate)]
    return Service("capture", argv, env)


def _cli() -> str:
    bin_dir = Path(sys.executable).parent
    return str(bin_dir / "sdr-assets") if (bin_dir / "sdr-assets").exists() else "sdr-assets"


DEFAULT_API_PORT = 8080


def api_service(paths: DataPaths, host: str = "127.0.0.1", port: int = DEFAULT_API_PORT) -> Service:
    """`sdr-assets serve-api` as a child: the read-only HTTP API over the same data root."""
    env = dict(os.environ)
    env["SDR_ASSETS_HOME"] = str(paths.root)
    return Service("api", [_cli(), "serve-api", "--host", host, "--port", str(port)], env)


def run_services(services: list[Service], out=sys.stderr) -> int:
    """Start every service; return when one exits or on SIGINT/SIGTERM, stopping all."""
    stopping = False

    def _on_signal(signum, _frame):
        nonlocal stopping
        stopping = True

    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for svc in services:
            print(f"[run] starting {svc.name}: {' '.join(svc.argv)}", file=out, flush=True)
            svc.proc = subprocess.Popen(svc.argv, env=svc.env, start_new_session=True)
        rc = 0
        while not stopping:
            for svc in services:
                code = svc.proc.poll()
                if code is not None:
                    print(f"[run] {svc.name} exited with code {code}; stopping the rest.", file=out, flush=True)
                    rc = code or 1
                    stopping = True
                    break
            time.sleep(0.2)
        stop_all(services, out)
        return rc
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def stop_all(services: list[Service], out=sys.stderr) -> None:
    """SIGINT each child's process group, wait up to STOP_TIMEOUT_S, then SIGKILL."""
    live = [s for s in services if s.proc and s.proc.poll() is None]
    for svc in live:
        print(f"[run] stopping {svc.name} (SIGINT)", file=out, flush=True)
        _signal_group(svc.proc, signal.SIGINT)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for svc in live:
        try:
            svc.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"[run] {svc.name} did not stop in {STOP_TIMEOUT_S:.0f} s; killing it", file=out, flush=True)
            _signal_group(svc.proc, signal.SIGKILL)
            svc.proc.wait()
    # Anything a child left behind in its group goes too.
    for svc in services:
        if svc.proc:
            _signal_group(svc.proc, signal.SIGKILL)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
