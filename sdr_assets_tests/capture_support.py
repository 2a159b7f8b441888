"""Helpers for the capture tests: run the real CLI, read the real hot DB, walk its timeline."""

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from sdr_assets.capture.base import Source
from sdr_assets.records import Chunk, samples_to_ns

REPO = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).parent / "sdr-assets")


def ro(path) -> sqlite3.Connection:
    return sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True, timeout=10)


def query(path, sql: str, args=()) -> list[tuple]:
    conn = ro(path)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def run_cli(*args: str, timeout_s: float = 60, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=timeout_s, env=env, cwd=REPO)


def start_cli(*args: str, stderr_path: Path) -> subprocess.Popen:
    """Start ``sdr-assets ARGS`` with stderr going to a file (never a full pipe)."""
    fh = open(stderr_path, "wb")
    try:
        return subprocess.Popen(
            [CLI, *args], stdout=subprocess.DEVNULL, stderr=fh, cwd=REPO, env=dict(os.environ, PYTHONUNBUFFERED="1")
        )
    finally:
        fh.close()


def wait_until(predicate, timeout_s: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process exited ({proc.returncode}) while waiting for {what}")
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def chunks_of_newest_capture(hot_path) -> int:
    """Chunks committed by the newest capture row (0 while there is none)."""
    if not Path(hot_path).exists():
        return 0
    try:
        return query(hot_path, "SELECT count(*) FROM chunks WHERE capture_id = (SELECT max(capture_id) FROM captures)")[
            0
        ][0]
    except sqlite3.OperationalError:  # schema not created yet
        return 0


def capture_ids(hot_path) -> list[int]:
    return [r[0] for r in query(hot_path, "SELECT capture_id FROM captures ORDER BY capture_id")]


def uncovered_holes(hot_path) -> list[tuple[int, int]]:
    """Walk every chunk in time order; return the holes (t_end_ns, next t_start_ns) between
    consecutive chunks that are wider than one sample and not covered by recorded gaps.
    Overlapping chunks are returned too (as negative-width holes)."""
    chunks = query(hot_path, "SELECT t_start_ns, n_samples, sample_rate_hz FROM chunks ORDER BY t_start_ns")
    gaps = query(hot_path, "SELECT t_start_ns, t_end_ns FROM gaps ORDER BY t_start_ns")
    merged: list[list[int]] = []
    for start, end in gaps:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    bad = []
    for (t0, n0, rate0), (t1, _, _) in zip(chunks, chunks[1:]):
        end0 = t0 + samples_to_ns(n0, rate0)
        tol = samples_to_ns(1, rate0)
        if t1 < end0 - tol:
            bad.append((end0, t1))
        elif t1 > end0 + tol and not any(s <= end0 + tol and e >= t1 - tol for s, e in merged):
            bad.append((end0, t1))
    return bad


def latest_metrics(hot_path, capture_id: int) -> dict[str, float]:
    rows = query(hot_path, "SELECT metric, value FROM telemetry WHERE capture_id = ? ORDER BY t_ns", (capture_id,))
    return {m: v for m, v in rows}  # the newest value wins


class CountingSource(Source):
    """Wraps a real source and counts the chunk samples it produced (the ground truth), and
    notes the wall time each chunk was handed to the service (by its t_start_ns)."""

    def __init__(self, inner: Source) -> None:
        super().__init__()
        self.inner = inner
        self.samples_produced = 0
        self.n_chunks = 0
        self.handed_at: dict[int, int] = {}

    def open(self):
        return self.inner.open()

    def resume_after(self, t_end_ns: int) -> None:
        self.inner.resume_after(t_end_ns)

    def events(self):
        for event in self.inner.events():
            if isinstance(event, Chunk):
                self.samples_produced += event.n_samples
                self.n_chunks += 1
                self.handed_at[event.t_start_ns] = time.time_ns()
            yield event

    def stop(self) -> None:
        super().stop()
        self.inner.stop()

    def close(self) -> None:
        self.inner.close()


def write_cu8(path: Path, n_bytes: int, seed: int = 0) -> Path:
    """A raw cu8 recording of ``n_bytes`` (pseudo-random bytes, written in 4 MiB blocks)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    block = rng.integers(0, 256, size=4 * 1024 * 1024, dtype=np.uint8).tobytes()
    with open(path, "wb") as fh:
        left = n_bytes
        while left > 0:
            fh.write(block[:left])
            left -= len(block)
    return path
