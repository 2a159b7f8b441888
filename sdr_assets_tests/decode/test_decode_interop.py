"""Interoperability: Debian's rtl_433, as a client of `sdr-assets serve-rtl-tcp` over a real TCP
socket, decodes a shared recording exactly as it decodes the file itself."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

RTL433 = Path(__file__).resolve().parents[3] / "shared" / "data" / "rtl433"
BIN = Path(sys.executable).parent
pytestmark = [
    pytest.mark.skipif(
        not (RTL433 / "manifest.json").is_file(), reason="needs ../shared/data/rtl433 (real recordings)"
    ),
    pytest.mark.skipif(shutil.which("rtl_433") is None, reason="needs rtl_433 (sudo apt-get install rtl-433)"),
]


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("name", ["GT-WT-02_01_gfile003_433.92M_250k.cu8", "danfoss_CFR_dfile003_433.92M_250k.cu8"])
def test_rtl_433_decodes_a_recording_served_over_rtl_tcp(port, name):
    rec = RTL433 / name
    server = subprocess.Popen(
        [str(BIN / "sdr-assets"), "serve-rtl-tcp", "--source", f"file://{rec}", "--port", str(port)],
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    try:
        assert f"listening on 127.0.0.1:{port}" in server.stderr.readline()
        # the file is served once, in real time, then the server closes the client: rtl_433 ends
        client = subprocess.run(
            [
                "rtl_433",
                "-c",
                "0",
                "-d",
                f"rtl_tcp:127.0.0.1:{port}",
                "-s",
                "250000",
                "-f",
                "433920000",
                "-F",
                "json",
                "-M",
                "level",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        server.terminate()
        server.wait(timeout=15)
    assert "rtl_tcp connected to 127.0.0.1" in client.stderr and "Tuned to 433.920MHz." in client.stderr
    over_tcp = _json_lines(client.stdout)
    from_file = _json_lines(
        subprocess.run(
            ["rtl_433", "-c", "0", "-r", str(rec), "-F", "json"], capture_output=True, text=True, timeout=60, check=True
        ).stdout
    )
    assert over_tcp and len(over_tcp) == len(from_file)
    strip = ("time", "mod", "freq", "freq1", "freq2", "rssi", "snr", "noise")
    assert [{k: v for k, v in m.items() if k not in strip} for m in over_tcp] == [
        {k: v for k, v in m.items() if k not in strip} for m in from_file
    ]  # the same readings
