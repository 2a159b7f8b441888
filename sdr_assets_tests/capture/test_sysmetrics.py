"""Resource telemetry: CPU and memory always; GPU metrics only where NVML loads and finds a
device (this machine has none: the metrics are absent, with one info line)."""

import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from sdr_assets.capture.sysmetrics import Periodic, ResourceSampler, _nvml

BIN = Path(sys.executable).parent


def test_cpu_and_memory_always_gpu_only_with_a_device():
    sampler = ResourceSampler()
    try:
        first = sampler.sample()
        time.sleep(0.2)
        second = sampler.sample()
    finally:
        sampler.close()
    assert "sys_cpu_percent" not in first  # the first call only sets psutil's reference point
    assert 0 <= second["sys_cpu_percent"] <= 100 and second["sys_mem_used_mb"] > 10
    assert 0 < second["sys_mem_percent"] < 100 and second["proc_rss_mb"] > 10
    gpu = [k for k in second if k.startswith("gpu")]
    if sampler.gpu_note:  # no NVIDIA GPU here: absent, and one line says why
        assert gpu == [] and sampler.gpu_note.startswith("GPU metrics off")
    else:
        assert {"gpu0_util_percent", "gpu0_mem_used_mb", "gpu0_temp_c"} <= set(gpu)


def test_nvml_absent_or_without_a_device_gives_a_reason(monkeypatch):
    module, handles, note = _nvml()  # the real library: no driver or no device on this machine
    if module is None:
        assert handles == [] and ("NVML" in note or "nvidia-ml-py" in note)
    monkeypatch.setitem(sys.modules, "pynvml", None)  # the package not installed
    module, handles, note = _nvml()
    assert module is None and handles == [] and "nvidia-ml-py is not installed" in note
    sampler = ResourceSampler(process_metrics=False)
    assert "nvidia-ml-py is not installed" in sampler.gpu_note and "proc_rss_mb" not in sampler.sample()


def test_periodic_samples_until_stopped_and_keeps_an_error():
    calls = []
    with Periodic(0.02, lambda: calls.append(1)):
        time.sleep(0.3)
    n = len(calls)
    time.sleep(0.1)
    assert n >= 5 and len(calls) == n  # stopped with the block
    boom = Periodic(0.01, lambda: 1 / 0)
    with boom:
        time.sleep(0.1)
    assert isinstance(boom.error, ZeroDivisionError) and not any(
        t.name == "resource-sampler" and t.is_alive() for t in threading.enumerate()
    )


def test_capture_records_resources_with_one_gpu_info_line(data_root):
    out = subprocess.run(
        [
            str(BIN / "sdr-assets"),
            "capture",
            "--source",
            "synthetic://?seed=1&rate=250000",
            "--duration-s",
            "3",
            "--partition-minutes",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    conn = sqlite3.connect(f"file:{data_root / 'hot.db'}?mode=ro", uri=True)
    try:
        metrics = {m for (m,) in conn.execute("SELECT DISTINCT metric FROM telemetry")}
    finally:
        conn.close()
    assert {"sys_cpu_percent", "sys_mem_used_mb", "sys_mem_percent", "cpu_percent", "rss_mb"} <= metrics
    gpu_lines = [ln for ln in out.stderr.splitlines() if "GPU metrics off" in ln]
    if any(m.startswith("gpu") for m in metrics):
        assert gpu_lines == []
    else:
        assert len(gpu_lines) == 1 and gpu_lines[0].startswith("info: ")
