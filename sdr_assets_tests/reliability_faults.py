"""Fault runs shared by the tests and bench/soak.py: SIGKILL/restart cycles of the capture
process, and rtl_tcp server restarts and stalls under a live capture client.

Each returns a report whose ``problems`` list is empty when the promise held: every hole in
the hot DB's timeline is a recorded gap, the DB is intact, nothing crashed.
"""

import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from sdr_assets.capture.base import Source
from sdr_assets_tests.capture_support import (capture_ids, chunks_of_newest_capture, query,
                                              start_cli, uncovered_holes, wait_until)
from sdr_assets_tests.helpers import integrity


# ---- SIGKILL and restart ---------------------------------------------------------------------
@dataclass
class KillReport:
    kills: int = 0
    early_kills: int = 0  # landed before the run had committed a chunk (start-up, migration)
    restart_gaps: int = 0
    restart_lost_samples: int = 0
    restart_dead_s: float = 0.0
    final_exit: int | None = None
    final_end_reason: str = ""
    problems: list = field(default_factory=list)


def kill_restart_cycles(hot: Path, n_kills: int, log_dir: Path, *, seed: int = 3,
                        rate_hz: int = 250_000, early_fraction: float = 0.25,
                        on_kill=None) -> KillReport:
    """SIGKILL `sdr-assets capture` at ``n_kills`` random moments (a share of them before its
    first commit), restart it each time, then end with a clean run; check after every kill."""
    args = ("capture", "--source", f"synthetic://?seed=1&rate={rate_hz}", "--partition-minutes", "1")
    rng = random.Random(seed)
    rep = KillReport()
    log_dir.mkdir(parents=True, exist_ok=True)
    for k in range(n_kills):
        n_before = len(capture_ids(hot)) if hot.exists() else 0
        proc = start_cli(*args, stderr_path=log_dir / f"kill{k}.log")
        early = rng.random() < early_fraction
        try:
            if early:  # anywhere from interpreter start-up to the first batches
                time.sleep(rng.uniform(0.02, 0.7))
            else:
                wait_until(lambda: chunks_of_newest_capture(hot) >= 1 and len(capture_ids(hot)) > n_before,
                           60, f"run {k} to commit a chunk", proc)
                time.sleep(rng.uniform(0.0, 1.5))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        rep.kills += 1
        rep.early_kills += not (len(capture_ids(hot)) > n_before and chunks_of_newest_capture(hot) >= 1) \
            if hot.exists() else 1
        if proc.returncode != -signal.SIGKILL:
            rep.problems.append(f"kill {k}: the capture had already exited ({proc.returncode})")
        if hot.exists():
            ok = integrity(hot)
            if ok != "ok":
                rep.problems.append(f"kill {k}: integrity_check {ok}")
            holes = uncovered_holes(hot)
            if holes:
                rep.problems.append(f"kill {k}: {len(holes)} unrecorded holes, first {holes[0]}")
            ended = query(hot, "SELECT capture_id FROM captures WHERE capture_id > ? AND ended_ns IS NOT NULL",
                          (n_before,))
            if ended:
                rep.problems.append(f"kill {k}: a killed capture recorded an end {ended}")
        if on_kill is not None:
            on_kill(k)
        time.sleep(rng.uniform(0.1, 0.6))  # dead time before the restart
    proc = start_cli(*args, "--duration-s", "1.5", stderr_path=log_dir / "last.log")
    rep.final_exit = proc.wait(timeout=120)
    _check_restarts(hot, rep)
    return rep


def _check_restarts(hot: Path, rep: KillReport) -> None:
    if rep.final_exit != 0:
        rep.problems.append(f"the clean run after the kills exited {rep.final_exit}")
    if integrity(hot) != "ok" or uncovered_holes(hot):
        rep.problems.append(f"after the clean run: integrity {integrity(hot)}, holes {uncovered_holes(hot)[:2]}")
    rep.final_end_reason = query(hot, "SELECT end_reason FROM captures ORDER BY capture_id DESC LIMIT 1")[0][0]
    with_chunks = [c for (c,) in query(hot, "SELECT DISTINCT capture_id FROM chunks ORDER BY capture_id")]
    restarts = query(hot, "SELECT capture_id, n_samples_lost, t_end_ns - t_start_ns, detail FROM gaps "
                          "WHERE cause = 'restart' ORDER BY capture_id")
    rep.restart_gaps = len(restarts)
    rep.restart_lost_samples = sum(r[1] for r in restarts)
    rep.restart_dead_s = round(sum(r[2] for r in restarts) / 1e9, 3)
    by_capture = [r[0] for r in restarts]
    for cid in with_chunks[1:]:  # every run that stored samples after the first resumed with a gap
        if by_capture.count(cid) != 1:
            rep.problems.append(f"capture {cid}: {by_capture.count(cid)} restart gaps (expected 1)")
    bad = [r for r in restarts if r[1] <= 0 or "service was down from" not in r[3]]
    if bad:
        rep.problems.append(f"restart gaps without a loss or a reason: {bad[:2]}")
    other = query(hot, "SELECT cause, count(*) FROM gaps WHERE cause != 'restart' GROUP BY cause")
    if other:
        rep.problems.append(f"gaps other than restarts: {other}")
    if rep.final_end_reason != "duration":
        rep.problems.append(f"the clean run ended with {rep.final_end_reason!r}")
