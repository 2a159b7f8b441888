"""The capture service's per-second figures, as rows for the hot database's telemetry table.

The writer thread feeds every commit into :meth:`TelemetrySampler.note_commit` and, once an
interval, calls :meth:`TelemetrySampler.rows` for the (t_ns, process, metric, value) rows it
writes in the same transaction as the chunks. Counters are cumulative sample counts; the
``*_per_s`` figures are their change over the interval.
"""

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import psutil

from sdr_assets.capture.sysmetrics import ResourceSampler

PROCESS = "capture"


@dataclass
class Counters:
    """Sample counts of one capture: received is written by the reader thread only, stored
    by the writer thread only; losses by either, under a lock."""

    samples_received: int = 0  # chunk samples the source handed over (reader thread)
    samples_stored: int = 0  # chunk samples committed to the hot DB (writer thread)
    lost: dict[str, int] = field(default_factory=dict)  # by cause, recorded as gaps
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add_lost(self, cause: str, n_samples: int) -> None:
        with self._lock:  # both threads may count losses
            self.lost[cause] = self.lost.get(cause, 0) + int(n_samples)

    def lost_after_receipt(self) -> int:
        """Lost after the source handed them over: these close received = stored + lost."""
        return sum(n for cause, n in dict(self.lost).items() if cause in RECEIVED_CAUSES)

    def samples_lost(self) -> int:
        return sum(dict(self.lost).values())


# Causes counted against samples that had already been received: by the service (ring
# overflow, write error) or by the source ("late": arrived after their time had passed). The
# rest (a source's "reconnect", "underrun" or "stall", the service's own "restart") never
# reached us.
RECEIVED_CAUSES = frozenset({"ring_overflow", "write_error", "late"})


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted, non-empty list."""
    k = max(0, min(len(sorted_values) - 1, int(round(q / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


class TelemetrySampler:
    """Turns counters, ring figures and commit timings into telemetry rows."""

    def __init__(self, process: str = PROCESS, rate_min_dt_s: float = 0.5, gpu: bool = True) -> None:
        self.process = process
        self.rate_min_dt_s = rate_min_dt_s  # shorter intervals (the final row) give no rates
        self._proc = psutil.Process()
        self._proc.cpu_percent(None)  # the first call only sets the reference point
        # the machine's CPU/RAM and its GPUs (this process's own figures are rss_mb, cpu_percent)
        self._resources = ResourceSampler(process_metrics=False, gpu=gpu)
        self.gpu_note = self._resources.gpu_note  # why GPU metrics are absent ("" when present)
        self._commit_s: list[float] = []
        self._batch_bytes: list[int] = []
        self._prev: dict[str, float] = {}
        self._prev_t = time.monotonic()

    def note_commit(self, commit_s: float, n_bytes: int) -> None:
        self._commit_s.append(commit_s)
        self._batch_bytes.append(n_bytes)

    def rows(
        self,
        counters: Counters,
        *,
        ring_fill: float,
        ring_high_water: float,
        bytes_stored: int,
        db_size_bytes: int,
        extra: Mapping[str, float] = (),
    ) -> list[tuple[int, str, str, float]]:
        now = time.monotonic()
        dt_s = max(now - self._prev_t, 1e-6)
        t_ns = time.time_ns()
        lost = counters.samples_lost()
        cumulative = {
            "samples_received": counters.samples_received,
            "samples_stored": counters.samples_stored,
            "samples_lost": lost,
            "samples_buffered": counters.samples_received - counters.samples_stored - counters.lost_after_receipt(),
            "bytes_stored": bytes_stored,
        }
        for cause, n in sorted(dict(counters.lost).items()):
            cumulative[f"samples_lost_{cause}"] = n
        values: dict[str, float] = dict(cumulative)
        with_rates = dt_s >= self.rate_min_dt_s
        if with_rates:
            for name in ("samples_received", "samples_stored", "samples_lost"):
                values[f"{name}_per_s"] = (cumulative[name] - self._prev.get(name, 0)) / dt_s
            values["ingest_mb_s"] = (bytes_stored - self._prev.get("bytes_stored", 0)) / dt_s / 1e6
        values["ring_fill"] = ring_fill  # the peak fill over the interval
        values["ring_high_water"] = ring_high_water
        if self._commit_s:
            ms = sorted(s * 1000.0 for s in self._commit_s)
            values["commit_ms_p50"] = percentile(ms, 50)
            values["commit_ms_p99"] = percentile(ms, 99)
            values["commit_ms_max"] = ms[-1]
            values["commits"] = len(ms)
            values["batch_bytes_avg"] = sum(self._batch_bytes) / len(self._batch_bytes)
        values["rss_mb"] = self._proc.memory_info().rss / 1e6
        if with_rates:
            values["cpu_percent"] = self._proc.cpu_percent(None)
        values["db_size_bytes"] = db_size_bytes
        if with_rates:
            values.update(self._resources.sample())
        values.update(extra)
        if with_rates:  # a short interval's figures roll into the next one
            self._prev = {k: float(v) for k, v in cumulative.items()}
            self._prev_t = now
            self._commit_s.clear()
            self._batch_bytes.clear()
        return [(t_ns, self.process, name, float(v)) for name, v in values.items()]
