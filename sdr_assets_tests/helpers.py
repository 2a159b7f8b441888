"""Small helpers shared by the reliability tests and bench/soak.py.

- materialise assets in-process with the Definitions' resources (optionally overridden);
- read a run's metadata, check results and failure text;
- hash database files (before/after a fault: "the hot DB is untouched");
- sample CPU% and RSS of processes with psutil in a background thread;
- the hot DB's loss figures (telemetry and gaps by cause).
"""

import hashlib
import threading
from dataclasses import dataclass, field
from pathlib import Path

from sdr_assets_tests.capture_support import query

# ---- Dagster ---------------------------------------------------------------------------------
_INSTANCES: list = []  # every instance materialize() used: kept alive (see there)


def materialize(names, partition_key: str, instance=None, quiet: bool = False, **resource_overrides):
    """dagster.materialize of ``names`` for one partition, in this process, with the
    Definitions' resources (``store=SdrStore(...)`` etc. replace one); never raises on failure.
    A bare time key of a (sensor x time) asset means the ``default`` sensor (see :func:`pkey`);
    the key's sensor is registered in the instance first.
    ``quiet``: the run's console log shows warnings and errors only."""
    import dagster as dg

    from sdr_assets.definitions import defs
    from sdr_assets.defs.partitions import SENSOR_TIME, ensure_sensor_partitions
    from sdr_assets.store.sensors import split_key

    instance = instance or dg.DagsterInstance.ephemeral()
    if any(defs.get_assets_def(n).partitions_def == SENSOR_TIME for n in names):
        partition_key = pkey(partition_key)
        ensure_sensor_partitions(instance, [split_key(partition_key)[0]])

    resources = dict(defs.resources)
    resources.update(resource_overrides)
    assets = [defs.get_assets_def(n) for n in names]
    run_config = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}} if quiet else None
    # Loading the definitions reads the "current" defs-state storage (a context variable that
    # an earlier test's instance may have left pointing at itself, then been collected):
    # make it this live instance's for the call.
    from dagster._core.storage.defs_state.base import set_defs_state_storage

    with set_defs_state_storage(instance.defs_state_storage):
        result = dg.materialize(
            assets,
            partition_key=partition_key,
            raise_on_error=False,
            resources=resources,
            instance=instance,
            run_config=run_config,
        )
    # Dagster's storages (and its cached definitions-load state) point back at the instance
    # through weakrefs: an ephemeral instance made here must outlive this call, or a later
    # materialisation in the same process meets a dead weakref. Keep them for the session.
    _INSTANCES.append(instance)
    return result


def pkey(time_key: str, sensor: str = "default") -> str:
    """The analysis key (and Dagster multi-partition key) of a time key: ``default|2026-...``;
    a key that already names its sensor is returned as it is."""
    return time_key if "|" in time_key else f"{sensor}|{time_key}"


def meta(result, asset: str) -> dict | None:
    """The newest materialisation metadata of ``asset`` in the run, as plain values."""
    mats = result.asset_materializations_for_node(asset)
    return {k: getattr(v, "value", v) for k, v in mats[-1].metadata.items()} if mats else None


def check_results(result) -> list[tuple[str, bool, str]]:
    """(check name, passed, severity) for every check evaluated in the run."""
    return [(e.check_name, e.passed, e.severity.value) for e in result.get_asset_check_evaluations()]


def failure_text(result) -> str:
    """The messages of the run's failed steps with their causes ('' when none failed)."""
    out = []
    for e in result.all_events:
        if e.is_step_failure:
            err = e.event_specific_data.error
            parts = []
            while err is not None:
                parts.append(err.message.strip())
                err = err.cause
            out.append(f"{e.step_key}: " + " <- ".join(parts))
    return "\n".join(out)


# ---- files -----------------------------------------------------------------------------------
def db_files_digest(db_path) -> str:
    """sha256 over what a database holds: the main file and, when it has frames, its WAL.

    An empty -wal and the -shm index are left out: any read-only reader of a WAL database
    (the snapshot, `sdr-assets status`) may create them, which changes no data."""
    h = hashlib.sha256()
    for suffix in ("", "-wal"):
        p = Path(f"{db_path}{suffix}")
        h.update(suffix.encode() + b"\0")
        if p.exists() and (suffix == "" or p.stat().st_size > 0):
            with open(p, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
        else:
            h.update(b"<missing or empty>")
    return h.hexdigest()


def integrity(db_path) -> str:
    rows = query(db_path, "PRAGMA integrity_check")
    return rows[0][0] if len(rows) == 1 else "; ".join(r[0] for r in rows[:3])


# ---- hot DB figures --------------------------------------------------------------------------
def gaps_by_cause(hot_path) -> dict[str, tuple[int, int]]:
    """cause -> (gaps, samples lost) over the whole hot DB."""
    return {
        c: (n, int(s or 0))
        for c, n, s in query(hot_path, "SELECT cause, count(*), sum(n_samples_lost) FROM gaps GROUP BY cause")
    }


def capture_totals(hot_path) -> dict[str, float]:
    """Newest telemetry value per metric, summed over every capture row (cumulative counters)."""
    rows = query(
        hot_path,
        "SELECT capture_id, metric, value FROM telemetry t WHERE t_ns = "
        "(SELECT max(t_ns) FROM telemetry u WHERE u.capture_id = t.capture_id "
        "AND u.metric = t.metric) AND metric LIKE 'samples_%' "
        "AND metric NOT LIKE '%_per_s'",
    )
    out: dict[str, float] = {}
    for _cid, metric, value in rows:
        out[metric] = out.get(metric, 0) + value
    return out


# ---- process sampling ------------------------------------------------------------------------
@dataclass
class ProcSeries:
    cpu_percent: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        cpu, rss = self.cpu_percent or [0.0], self.rss_mb or [0.0]
        return {
            "cpu_avg": sum(cpu) / len(cpu),
            "cpu_max": max(cpu),
            "rss_first_mb": rss[0],
            "rss_max_mb": max(rss),
            "rss_last_mb": rss[-1],
            "samples": len(self.rss_mb),
        }


class ProcSampler:
    """Samples CPU% (of one core) and RSS of named pids every ``interval_s`` in a thread, plus
    any extra figures ``probe()`` returns (e.g. file sizes); maxima of the extras are kept."""

    def __init__(self, pids: dict[str, int], interval_s: float = 1.0, probe=None) -> None:
        import psutil

        self._procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.series = {name: ProcSeries() for name in pids}
        self.maxima: dict[str, float] = {}
        self._probe = probe
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="proc-sampler", daemon=True)

    def add(self, name: str, pid: int) -> None:
        import psutil

        self._procs[name] = psutil.Process(pid)
        self.series.setdefault(name, ProcSeries())

    def start(self) -> "ProcSampler":
        for p in self._procs.values():
            p.cpu_percent(None)  # the first call only sets the reference point
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def sample_now(self) -> None:
        import psutil

        for name, p in list(self._procs.items()):
            try:
                cpu, rss = p.cpu_percent(None), p.memory_info().rss / 1e6
            except psutil.Error:
                continue  # the process ended: its series stops
            self.series[name].cpu_percent.append(cpu)
            self.series[name].rss_mb.append(rss)
        if self._probe is not None:
            for key, value in self._probe().items():
                self.maxima[key] = max(self.maxima.get(key, value), value)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.sample_now()


def file_size(path) -> int:
    try:
        return Path(path).stat().st_size
    except FileNotFoundError:
        return 0


# ---- the CLI's bad-input contract -------------------------------------------------------------
def assert_one_error_line(res, *needles: str) -> None:
    """A finished `sdr-assets` subprocess failed as bad input must: exit code 2 and exactly one
    stderr line, ``error: ...``, holding each of ``needles``."""
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
