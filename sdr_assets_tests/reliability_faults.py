"""Fault runs shared by the tests and bench/soak.py: SIGKILL/restart cycles of the capture
process, and rtl_tcp server restarts and stalls under a live capture client.

Each returns a report whose ``problems`` list is empty when the promise held: every hole in
the hot DB's timeline is a recorded gap, the DB is intact, nothing crashed.
"""

import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from sdr_assets.capture.base import Source
from sdr_assets_tests.capture_support import (
    capture_ids,
    chunks_of_newest_capture,
    query,
    start_cli,
    uncovered_holes,
    wait_until,
)
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


def kill_restart_cycles(
    hot: Path,
    n_kills: int,
    log_dir: Path,
    *,
    seed: int = 3,
    rate_hz: int = 250_000,
    early_fraction: float = 0.25,
    on_kill=None,
) -> KillReport:
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
                wait_until(
                    lambda: chunks_of_newest_capture(hot) >= 1 and len(capture_ids(hot)) > n_before,
                    60,
                    f"run {k} to commit a chunk",
                    proc,
                )
                time.sleep(rng.uniform(0.0, 1.5))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        rep.kills += 1
        rep.early_kills += (
            not (len(capture_ids(hot)) > n_before and chunks_of_newest_capture(hot) >= 1) if hot.exists() else 1
        )
        if proc.returncode != -signal.SIGKILL:
            rep.problems.append(f"kill {k}: the capture had already exited ({proc.returncode})")
        if hot.exists():
            ok = integrity(hot)
            if ok != "ok":
                rep.problems.append(f"kill {k}: integrity_check {ok}")
            holes = uncovered_holes(hot)
            if holes:
                rep.problems.append(f"kill {k}: {len(holes)} unrecorded holes, first {holes[0]}")
            ended = query(
                hot, "SELECT capture_id FROM captures WHERE capture_id > ? AND ended_ns IS NOT NULL", (n_before,)
            )
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
    restarts = query(
        hot,
        "SELECT capture_id, n_samples_lost, t_end_ns - t_start_ns, detail FROM gaps "
        "WHERE cause = 'restart' ORDER BY capture_id",
    )
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


# ---- rtl_tcp server restarts and stalls ------------------------------------------------------
class StallableSource(Source):
    """Wraps a source served by RtlTcpServer; ``stall(s)`` holds back the next chunks for s
    seconds: the server keeps the client's socket open and sends nothing (a hung server)."""

    def __init__(self, inner: Source) -> None:
        super().__init__()
        self.inner = inner
        self._stall_until = 0.0

    def stall(self, seconds: float) -> None:
        self._stall_until = time.monotonic() + seconds

    def open(self):
        self._stopping = False
        return self.inner.open()

    def events(self):
        for event in self.inner.events():
            while time.monotonic() < self._stall_until and not self._stopping:
                time.sleep(0.05)
            yield event

    def stop(self) -> None:
        super().stop()
        self.inner.stop()

    def close(self) -> None:
        self.inner.close()

    def set_center_freq_hz(self, center_freq_hz: float) -> bool:
        return self.inner.set_center_freq_hz(center_freq_hz)

    def set_sample_rate_hz(self, sample_rate_hz: float) -> bool:
        return self.inner.set_sample_rate_hz(sample_rate_hz)

    def set_gain_db(self, gain_db) -> bool:
        return self.inner.set_gain_db(gain_db)


@dataclass
class ChurnReport:
    restarts: int = 0
    stalls: int = 0
    reconnect_gaps: int = 0
    reconnect_lost_samples: int = 0
    received: int = 0
    stored: int = 0
    rss_mb: list = field(default_factory=list)  # the client process after each cycle
    warmup_cycles: int = 0
    rss_growth_mb: float = 0.0  # max after warm-up - value at the end of warm-up
    rss_slope_kb_per_cycle: float = 0.0
    cpu_percent_avg: float = 0.0
    exit_code: int | None = None
    end_reason: str = ""
    seconds: float = 0.0
    problems: list = field(default_factory=list)


STALL_TIMEOUT_S = 3.0  # RtlTcpSource's default: the capture CLI uses it
RSS_GROWTH_BOUND_MB = 8.0


def rtl_tcp_churn(
    hot: Path,
    port: int,
    n_restarts: int,
    n_stalls: int,
    log_dir: Path,
    *,
    rate_hz: int = 2_048_000,
    ring_mb: float = 2.0,
    warmup_bytes: int = 24_000_000,
    warmup_cycles: int = 1,
    seed: int = 5,
) -> ChurnReport:
    """A live `sdr-assets capture` client of a real RtlTcpServer that is restarted (down for
    up to 1 s) and stalled (socket open, no data for longer than the client's stall timeout),
    in a seeded random order; the client's RSS is sampled after each reconnect.

    Warm-up: the cycles start once ``warmup_bytes`` are stored (the client's 8 MiB SQLite page
    cache and its ring are full by then); the RSS bound applies after ``warmup_cycles``."""
    import psutil

    from sdr_assets.capture.rtltcp_server import RtlTcpServer
    from sdr_assets.capture.synthetic import SyntheticSource
    from sdr_assets_tests.reliability_soak import SUMMARY_RE

    rng = random.Random(seed)
    rep = ChurnReport(warmup_cycles=warmup_cycles)
    log_dir.mkdir(parents=True, exist_ok=True)
    source = StallableSource(SyntheticSource(seed=seed, sample_rate_hz=rate_hz, chunk_samples=16_384))
    server = RtlTcpServer(source, port=port).start()
    log = log_dir / "churn-capture.log"
    t0 = time.monotonic()
    cap = start_cli(
        "capture",
        "--source",
        f"rtl_tcp://127.0.0.1:{port}",
        "--sample-rate-hz",
        str(rate_hz),
        "--ring-mb",
        str(ring_mb),
        "--partition-minutes",
        "1",
        stderr_path=log,
    )
    ps = psutil.Process(cap.pid)
    ps.cpu_percent(None)
    cycles = ["restart"] * n_restarts + ["stall"] * n_stalls
    rng.shuffle(cycles)

    def reconnects() -> int:
        return query(hot, "SELECT count(*) FROM gaps WHERE cause = 'reconnect'")[0][0]

    def flowing_after(n_gaps: int):
        """True once the n-th reconnect gap is stored and chunks after it too."""
        row = query(hot, "SELECT max(t_end_ns), count(*) FROM gaps WHERE cause = 'reconnect'")[0]
        return (
            row[1] >= n_gaps
            and query(hot, "SELECT count(*) FROM chunks WHERE t_start_ns >= ?", (row[0] or 0,))[0][0] >= 2
        )

    try:
        wait_until(
            lambda: (
                chunks_of_newest_capture(hot) >= 2
                and query(hot, "SELECT coalesce(sum(n_samples), 0) FROM chunks")[0][0] * 2 >= warmup_bytes
            ),
            120,
            f"the client to store {warmup_bytes} bytes (warm-up)",
            cap,
        )
        for i, what in enumerate(cycles):
            before = reconnects()
            if what == "restart":
                server.stop()
                time.sleep(rng.uniform(0.05, 1.0))
                server = RtlTcpServer(source, port=port).start()
                rep.restarts += 1
            else:
                source.stall(STALL_TIMEOUT_S + 1.0)
                rep.stalls += 1
            wait_until(lambda: flowing_after(before + 1), 60, f"cycle {i} ({what}) to reconnect", cap)
            rep.rss_mb.append(round(ps.memory_info().rss / 1e6, 2))
        rep.cpu_percent_avg = round(ps.cpu_percent(None), 1)
    finally:
        if cap.poll() is None:
            cap.send_signal(signal.SIGTERM)
        rep.exit_code = cap.wait(timeout=60)
        server.stop()
    rep.seconds = round(time.monotonic() - t0, 1)
    _check_churn(rep, hot, log.read_text(), SUMMARY_RE)
    return rep


def _check_churn(rep: ChurnReport, hot: Path, text: str, summary_re) -> None:
    p = rep.problems
    m = summary_re.search(text)
    if m:
        rep.received, rep.stored = int(m.group(1)), int(m.group(2))
    rows = query(hot, "SELECT cause, count(*), sum(n_samples_lost) FROM gaps GROUP BY cause")
    gaps = {c: (n, s) for c, n, s in rows}
    rep.reconnect_gaps, rep.reconnect_lost_samples = gaps.pop("reconnect", (0, 0))
    rep.end_reason = query(hot, "SELECT end_reason FROM captures ORDER BY capture_id DESC LIMIT 1")[0][0] or ""
    if rep.exit_code != 0 or rep.end_reason != "signal":
        p.append(f"the client ended with exit {rep.exit_code} ({rep.end_reason!r}): {text[-400:]}")
    if not m or rep.received != rep.stored or rep.received == 0:
        p.append(f"received {rep.received} != stored {rep.stored}: {text[-300:]}")
    if rep.reconnect_gaps != rep.restarts + rep.stalls:
        p.append(f"{rep.reconnect_gaps} reconnect gaps for {rep.restarts + rep.stalls} drops")
    if gaps:
        p.append(f"other gaps: {gaps}")
    if integrity(hot) != "ok" or uncovered_holes(hot):
        p.append(f"hot.db: integrity {integrity(hot)}, unrecorded holes {uncovered_holes(hot)[:2]}")
    stall_details = query(hot, "SELECT count(*) FROM gaps WHERE cause = 'reconnect' AND detail LIKE 'no data for%'")
    if stall_details[0][0] < rep.stalls:
        p.append(f"only {stall_details[0][0]} reconnect gaps say 'no data for' ({rep.stalls} stalls)")
    after = rep.rss_mb[rep.warmup_cycles - 1 :] if len(rep.rss_mb) >= rep.warmup_cycles else []
    if len(after) >= 2:
        rep.rss_growth_mb = round(max(after) - after[0], 2)
        n = len(after)
        xm, ym = (n - 1) / 2, sum(after) / n
        den = sum((i - xm) ** 2 for i in range(n))
        rep.rss_slope_kb_per_cycle = round(1000 * sum((i - xm) * (y - ym) for i, y in enumerate(after)) / den, 1)
        if rep.rss_growth_mb > RSS_GROWTH_BOUND_MB:
            p.append(
                f"client RSS grew {rep.rss_growth_mb} MB over {n - 1} reconnects after warm-up "
                f"(bound {RSS_GROWTH_BOUND_MB} MB): {rep.rss_mb}"
            )
