"""The soak: a real-time capture (a real `sdr-assets capture` process) at 3.2 MS/s while the
asset chain (hot_snapshot, iq_window, spectrograms, detections) is materialised in this
process, through dagster.materialize with the Definitions' resources, for each partition as
soon as it has closed (1-minute partitions). Used by test_reliability_soak.py (60 s) and
bench/soak.py (10 minutes and more).

The caller sets SDR_ASSETS_PARTITION_MINUTES=1 before sdr_assets.definitions is imported.
"""

import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from sdr_assets_tests.capture_support import CLI, chunks_of_newest_capture, query, wait_until
from sdr_assets_tests.helpers import ProcSampler, capture_totals, file_size, gaps_by_cause, integrity, materialize, meta

GiB = 2**30
CHAIN = ("hot_snapshot", "iq_window", "spectrograms", "detections")
SUMMARY_RE = re.compile(r"received (\d+) samples, stored (\d+) \(.*?\), lost (\d+)")
BATCH_BYTES = 4 * 2**20  # the capture's batch: hot.db may exceed its cap by one batch


@dataclass
class SoakConfig:
    duration_s: float = 600.0
    rate_hz: int = 3_200_000
    cap_bytes: int = GiB
    keep_partitions: int = 3
    keep_snapshots: int = 2
    nfft: int = 640
    hop: int = 640
    frame_cols: int = 640
    detector: str = "untrained-onnx"  # untrained-onnx (YOLO on frames) | energy | none
    seed: int = 1
    sample_interval_s: float = 1.0


@dataclass
class ChainRun:
    partition_key: str
    at_s: float  # since the soak started
    seconds: float
    success: bool
    partial: bool  # the capture started inside this partition
    step_s: dict = field(default_factory=dict)
    checks: list = field(default_factory=list)  # (name, passed, severity, unrecorded_holes)
    figures: dict = field(default_factory=dict)
    failure: str = ""
    analysis_rss_mb: float = 0.0  # the analysis process after this run
    analysis_rss_trimmed_mb: float = 0.0  # the same after glibc malloc_trim(0): memory really held


@dataclass
class SoakReport:
    config: SoakConfig
    capture_s: float = 0.0
    received: int = 0
    stored: int = 0
    lost: int = 0
    telemetry: dict = field(default_factory=dict)
    gaps: dict = field(default_factory=dict)
    hot_max_bytes: int = 0
    hot_wal_max_bytes: int = 0
    hot_integrity: str = ""
    analysis_max_bytes: int = 0  # the main file
    analysis_wal_max_bytes: int = 0
    partitions_max: int = 0
    partition_bytes: int = 0
    runs: list = field(default_factory=list)
    missed: list = field(default_factory=list)  # partitions that closed but were never run
    procs: dict = field(default_factory=dict)
    capture_exit: int | None = None
    end_reason: str = ""
    detector_note: str = ""
    problems: list = field(default_factory=list)


def _newest_closed(hot: Path) -> str | None:
    """The newest partition closed both on the wall clock and in the stored data."""
    from sdr_assets.defs.automation import newest_closed_partition
    from sdr_assets.store.snapshot import hot_time_range

    held = hot_time_range(hot)
    return None if held is None else newest_closed_partition(held[0], held[1], time.time_ns())


def _prepare_detector(home: Path, how: str) -> str:
    """Register a model for the detections asset; returns a note for the summary."""
    if how == "energy":
        return "energy detector on the IQ (no model registered)"
    from sdr_assets.ml.labels import CLASSES
    from sdr_assets.ml.train import export_onnx, save_untrained
    from sdr_assets.store import registry
    from sdr_assets.store.window import AnalysisDB

    weights = save_untrained(home / "models" / "soak-untrained.pt")
    onnx = export_onnx(weights, imgsz=320)
    with AnalysisDB(home / "analysis.db") as db:
        registry.register_model(db.conn, "soak-untrained-yolo11n", weights, onnx, [], {"imgsz": 320}, {}, CLASSES)
        registry.promote(db.conn, "soak-untrained-yolo11n")
    return (
        "an untrained yolo11n at 320 px, ONNX on CPU, registered as the current model (the "
        "compute of a trained one; it finds nothing)"
    )


def _step_seconds(instance, run_id: str) -> dict[str, float]:
    from dagster import DagsterEventType

    start, out = {}, {}
    for rec in instance.all_logs(run_id):
        ev = rec.dagster_event
        if ev is None or not ev.step_key:
            continue
        if ev.event_type == DagsterEventType.STEP_START:
            start[ev.step_key] = rec.timestamp
        elif ev.event_type in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
            out[ev.step_key] = round(rec.timestamp - start.get(ev.step_key, rec.timestamp), 2)
    return out


def _malloc_trim() -> None:
    """Hand freed heap pages back to the OS (glibc), so RSS shows what is really held."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name:
        try:
            ctypes.CDLL(name).malloc_trim(0)
        except (OSError, AttributeError):  # not glibc: RSS then includes the allocator's cache
            return


def _run_chain(key: str, cfg: SoakConfig, home: Path, partial: bool, t_soak: float) -> ChainRun:
    import dagster as dg
    import psutil

    from sdr_assets.defs.resources import SdrStore, SpectrogramSettings
    from sdr_assets_tests.helpers import failure_text

    names = CHAIN if cfg.detector != "none" else CHAIN[:3]
    instance = dg.DagsterInstance.ephemeral()
    t0 = time.monotonic()
    res = materialize(
        names,
        key,
        instance=instance,
        quiet=True,
        store=SdrStore(home=str(home), keep_partitions=cfg.keep_partitions, keep_snapshots=cfg.keep_snapshots),
        spectrogram=SpectrogramSettings(nfft=cfg.nfft, hop=cfg.hop, frame_cols=cfg.frame_cols),
    )
    run = ChainRun(
        key,
        round(t0 - t_soak, 1),
        round(time.monotonic() - t0, 2),
        res.success,
        partial,
        step_s=_step_seconds(instance, res.run_id),
        failure=failure_text(res),
        analysis_rss_mb=round(psutil.Process().memory_info().rss / 1e6, 1),
    )
    _malloc_trim()
    run.analysis_rss_trimmed_mb = round(psutil.Process().memory_info().rss / 1e6, 1)
    for e in res.get_asset_check_evaluations():
        holes = getattr(e.metadata.get("unrecorded_holes"), "value", 0)
        run.checks.append((e.check_name, e.passed, e.severity.value, holes))
    snap, win, spec, det = (meta(res, n) or {} for n in CHAIN)
    run.figures = {
        "snapshot_mb": snap.get("MB"),
        "window_samples": win.get("samples"),
        "coverage_pct": win.get("coverage_pct"),
        "window_gaps": win.get("gaps"),
        "frames": spec.get("frames"),
        "ms_per_frame": spec.get("ms_per_frame"),
        "detections": det.get("count"),
        "detector": det.get("detector"),
    }
    instance.dispose()
    return run


def run_soak(home: Path, cfg: SoakConfig, log_dir: Path, echo=print) -> SoakReport:
    """Capture for ``cfg.duration_s`` while the chain runs on every closed partition."""
    from sdr_assets.defs.partitions import TIME_PARTITIONS
    from sdr_assets.records import NS_PER_S

    assert os.environ.get("SDR_ASSETS_PARTITION_MINUTES") == "1", "set SDR_ASSETS_PARTITION_MINUTES=1"
    home.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    hot, adb = home / "hot.db", home / "analysis.db"
    rep = SoakReport(cfg, partition_bytes=int(60 * cfg.rate_hz * 2))
    env = dict(os.environ, SDR_ASSETS_HOME=str(home), PYTHONUNBUFFERED="1")
    uri = f"synthetic://?seed={cfg.seed}&rate={cfg.rate_hz}"
    log_path = log_dir / "soak-capture.log"
    with open(log_path, "wb") as fh:
        cap = subprocess.Popen(
            [CLI, "capture", "--source", uri, "--cap-bytes", str(cfg.cap_bytes), "--partition-minutes", "1"],
            stdout=subprocess.DEVNULL,
            stderr=fh,
            env=env,
        )
    t_soak = time.monotonic()

    def probe():
        return {
            "hot": file_size(hot),
            "hot_wal": file_size(f"{hot}-wal"),
            "analysis": file_size(adb),
            "analysis_wal": file_size(f"{adb}-wal"),
        }

    sampler = ProcSampler(
        {"capture": cap.pid, "analysis (dagster, in-process)": os.getpid()}, cfg.sample_interval_s, probe
    ).start()
    try:
        wait_until(lambda: chunks_of_newest_capture(hot) >= 1, 60, "the first commit", cap)
        first_ns = query(hot, "SELECT min(t_start_ns) FROM chunks")[0][0]
        rep.detector_note = (
            "none (chain without detections)" if cfg.detector == "none" else _prepare_detector(home, cfg.detector)
        )
        echo(
            f"soak: capture pid {cap.pid} at {cfg.rate_hz / 1e6:g} MS/s for {cfg.duration_s:g} s; "
            f"detections: {rep.detector_note}"
        )
        done: set[str] = set()
        while True:
            if cap.poll() is not None:
                rep.problems.append(f"the capture exited early ({cap.returncode}): " + log_path.read_text()[-500:])
                break
            elapsed = time.monotonic() - t_soak
            key = _newest_closed(hot)
            if key is not None and key not in done:
                tw = TIME_PARTITIONS.time_window_for_partition_key(key)
                if int(tw.end.timestamp() * NS_PER_S) > first_ns:  # the capture covered some of it
                    partial = int(tw.start.timestamp() * NS_PER_S) < first_ns
                    run = _run_chain(key, cfg, home, partial, t_soak)
                    done.add(key)
                    rep.runs.append(run)
                    n_held = query(adb, "SELECT count(*) FROM partitions")[0][0] if adb.exists() else 0
                    rep.partitions_max = max(rep.partitions_max, n_held)
                    echo(
                        f"  {key}: {'ok' if run.success else 'FAILED'} in {run.seconds:.1f} s "
                        f"{run.step_s} frames {run.figures['frames']} partitions held {n_held}"
                        + (f"\n{run.failure}" if run.failure else "")
                    )
                    continue
            if elapsed >= cfg.duration_s and rep.runs:
                break
            time.sleep(0.5)
        sampler.sample_now()
    finally:
        if cap.poll() is None:
            cap.send_signal(signal.SIGTERM)
        try:
            rep.capture_exit = cap.wait(timeout=120)
        except subprocess.TimeoutExpired:
            cap.kill()
            rep.capture_exit = cap.wait()
        rep.capture_s = round(time.monotonic() - t_soak, 1)
        sampler.stop()
    _finish(rep, hot, log_path, sampler, {r.partition_key for r in rep.runs}, first_ns)
    return rep


def analysis_bounds(keep_partitions: int, partition_bytes: int) -> tuple[float, float]:
    """(main file, WAL) size bounds of the analysis DB: K+1 windows, and one window, plus 5 %
    of b-tree and row overhead and 64 MiB for frames, detections and the WAL's size limit."""
    slack = 64 * 2**20
    return (keep_partitions + 1) * partition_bytes * 1.05 + slack, partition_bytes * 1.05 + slack


def closed_partitions(first_ns: int, last_ns: int) -> list[str]:
    """Keys of the 1-minute partitions that end after first_ns and no later than last_ns."""
    from datetime import UTC, datetime

    from sdr_assets.defs.partitions import PARTITION_FMT

    minute_ns = 60 * 10**9
    end = (first_ns // minute_ns + 1) * minute_ns
    keys = []
    while end <= last_ns:
        keys.append(datetime.fromtimestamp((end - minute_ns) / 1e9, tz=UTC).strftime(PARTITION_FMT))
        end += minute_ns
    return keys


def _finish(rep: SoakReport, hot: Path, log_path: Path, sampler: ProcSampler, done: set, first_ns) -> None:
    cfg = rep.config
    text = log_path.read_text()
    m = SUMMARY_RE.search(text)
    if m:
        rep.received, rep.stored, rep.lost = map(int, m.groups())
    else:
        rep.problems.append(f"no capture summary line in {log_path}: {text[-300:]}")
    rep.end_reason = query(hot, "SELECT end_reason FROM captures ORDER BY capture_id DESC LIMIT 1")[0][0] or ""
    rep.telemetry = capture_totals(hot)
    rep.gaps = gaps_by_cause(hot)
    rep.hot_integrity = integrity(hot)
    rep.hot_max_bytes = int(sampler.maxima.get("hot", 0))
    rep.hot_wal_max_bytes = int(sampler.maxima.get("hot_wal", 0))
    rep.analysis_max_bytes = int(sampler.maxima.get("analysis", 0))
    rep.analysis_wal_max_bytes = int(sampler.maxima.get("analysis_wal", 0))
    rep.procs = {name: s.summary() for name, s in sampler.series.items()}
    last_ns = query(hot, "SELECT max(t_start_ns) FROM chunks")[0][0]
    rep.missed = [k for k in closed_partitions(first_ns, last_ns) if k not in done and k < max(done, default="")]
    p = rep.problems
    if rep.capture_exit != 0 or rep.end_reason != "signal":
        p.append(f"capture ended with exit {rep.capture_exit}, end_reason {rep.end_reason!r}")
    if rep.lost or rep.received != rep.stored or rep.received == 0:
        p.append(f"samples: received {rep.received}, stored {rep.stored}, lost {rep.lost}")
    if rep.telemetry.get("samples_received") != rep.received or rep.telemetry.get("samples_stored") != rep.stored:
        p.append(f"telemetry disagrees with the summary line: {rep.telemetry}")
    if rep.gaps:
        p.append(f"gaps recorded during the soak: {rep.gaps}")
    if rep.hot_integrity != "ok":
        p.append(f"hot.db integrity_check: {rep.hot_integrity}")
    if rep.hot_max_bytes > cfg.cap_bytes + BATCH_BYTES:
        p.append(f"hot.db reached {rep.hot_max_bytes} bytes > cap {cfg.cap_bytes} + one batch")
    if rep.partitions_max > cfg.keep_partitions:
        p.append(f"analysis.db held {rep.partitions_max} partitions > keep_partitions {cfg.keep_partitions}")
    # A load adds the new window before it evicts the oldest (one transaction): the main file
    # holds up to K+1 windows (the freed pages are reused), the WAL one window's pages.
    bound, wal_bound = analysis_bounds(cfg.keep_partitions, rep.partition_bytes)
    if rep.analysis_max_bytes > bound or rep.analysis_wal_max_bytes > wal_bound:
        p.append(
            f"analysis.db reached {rep.analysis_max_bytes / 1e6:.0f} MB (bound {bound / 1e6:.0f} MB), its "
            f"WAL {rep.analysis_wal_max_bytes / 1e6:.0f} MB (bound {wal_bound / 1e6:.0f} MB)"
        )
    for run in rep.runs:
        if not run.success:
            p.append(f"{run.partition_key}: chain failed: {run.failure[:300]}")
        for name, passed, severity, holes in run.checks:
            ok = passed or (name == "window_coverage" and run.partial and severity == "WARN" and not holes)
            if not ok:
                p.append(f"{run.partition_key}: check {name} failed ({severity}, unrecorded holes {holes})")
