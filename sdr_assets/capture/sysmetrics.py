"""Resource figures of the machine, this process and its NVIDIA GPUs, as ``{metric: value}``.

psutil for CPU and memory; NVML (the ``nvidia-ml-py`` package, ``import pynvml``) for GPUs,
only where its library loads and finds a device. Without one the GPU metrics are simply
absent and :attr:`ResourceSampler.gpu_note` says why in one line (logged once, at INFO).
Nothing here imports torch: the capture service uses it too.

Metrics (units in the names): ``sys_cpu_percent``, ``sys_mem_used_mb``, ``sys_mem_percent``,
``proc_cpu_percent``, ``proc_rss_mb`` (with ``process_metrics``), and per GPU i
``gpu{i}_util_percent``, ``gpu{i}_mem_used_mb``, ``gpu{i}_mem_percent``, ``gpu{i}_temp_c``,
``gpu{i}_power_w``.
"""

import logging
import threading
from collections.abc import Callable

import psutil

log = logging.getLogger(__name__)


def _nvml():
    """(pynvml module, device handles, None) or (None, [], why there are no GPU metrics)."""
    try:
        import pynvml
    except ImportError as exc:
        return None, [], f"GPU metrics off: nvidia-ml-py is not installed ({exc})"
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:  # no driver library, or no NVIDIA device
        return None, [], f"GPU metrics off: NVML did not start ({exc}); no NVIDIA GPU or driver here"
    try:
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
    except pynvml.NVMLError as exc:
        pynvml.nvmlShutdown()
        return None, [], f"GPU metrics off: NVML found no usable device ({exc})"
    if not handles:
        pynvml.nvmlShutdown()
        return None, [], "GPU metrics off: NVML reports no NVIDIA GPU"
    return pynvml, handles, None


class ResourceSampler:
    """Call :meth:`sample` about once a second; CPU percentages are over the time since the
    previous call (psutil's convention), so the first sample's CPU figures are left out."""

    def __init__(self, *, process_metrics: bool = True, gpu: bool = True, nvml_loader: Callable = _nvml) -> None:
        self._proc = psutil.Process() if process_metrics else None
        psutil.cpu_percent(None)  # the reference point for the next call
        if self._proc is not None:
            self._proc.cpu_percent(None)
        self._first = True
        self._nvml, self._gpus, note = nvml_loader() if gpu else (None, [], "GPU metrics off (not asked for)")
        self.gpu_note = note or ""
        if note:
            log.info(note)

    @property
    def n_gpus(self) -> int:
        return len(self._gpus)

    def sample(self) -> dict[str, float]:
        vm = psutil.virtual_memory()
        out = {"sys_mem_used_mb": (vm.total - vm.available) / 1e6, "sys_mem_percent": vm.percent}
        sys_cpu = psutil.cpu_percent(None)
        if self._proc is not None:
            out["proc_rss_mb"] = self._proc.memory_info().rss / 1e6
            proc_cpu = self._proc.cpu_percent(None)
        if not self._first:
            out["sys_cpu_percent"] = sys_cpu
            if self._proc is not None:
                out["proc_cpu_percent"] = proc_cpu
        self._first = False
        for i, handle in enumerate(self._gpus):
            out.update(self._gpu(i, handle))
        return out

    def _gpu(self, i: int, handle) -> dict[str, float]:
        nv, out = self._nvml, {}
        try:
            util = nv.nvmlDeviceGetUtilizationRates(handle)
            mem = nv.nvmlDeviceGetMemoryInfo(handle)
            out[f"gpu{i}_util_percent"] = float(util.gpu)
            out[f"gpu{i}_mem_used_mb"] = mem.used / 1e6
            out[f"gpu{i}_mem_percent"] = 100.0 * mem.used / max(mem.total, 1)
            out[f"gpu{i}_temp_c"] = float(nv.nvmlDeviceGetTemperature(handle, nv.NVML_TEMPERATURE_GPU))
            out[f"gpu{i}_power_w"] = nv.nvmlDeviceGetPowerUsage(handle) / 1000.0
        except nv.NVMLError as exc:  # a figure the device does not report (e.g. power on some boards)
            log.debug("gpu%d: %s", i, exc)
        return out

    def close(self) -> None:
        if self._nvml is not None:
            self._nvml.nvmlShutdown()
            self._nvml, self._gpus = None, []


class Periodic:
    """Runs ``fn`` every ``interval_s`` in a daemon thread until :meth:`stop` (a context manager)."""

    def __init__(self, interval_s: float, fn: Callable[[], None], name: str = "resource-sampler") -> None:
        self.interval_s = interval_s
        self._fn = fn
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self._fn()
            except Exception as exc:  # logged and kept in .error: sampling must not end the run
                self.error = exc
                log.error("resource sampling stopped: %s", exc)
                return

    def __enter__(self) -> "Periodic":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
