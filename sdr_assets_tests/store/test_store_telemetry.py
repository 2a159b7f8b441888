"""MetricsLogger (queue + one writer thread) and the telemetry queries."""

import subprocess
import sys
import textwrap
import threading
import time

import pytest

from sdr_assets.errors import ConfigError, StoreError
from sdr_assets.records import Chunk, SourceInfo
from sdr_assets.store.db import connect_ro
from sdr_assets.store.hot import HotWriter
from sdr_assets.store.telemetry import MetricsLogger, database_stats, history, latest, stats
from sdr_assets.store.window import AnalysisDB

HOUR_NS = 3600 * 10**9
T0 = 1_763_856_000 * 10**9  # 2025-11-23T00:00:00Z


@pytest.fixture
def adb_path(tmp_path):
    path = tmp_path / "analysis.db"
    with AnalysisDB(path):
        pass
    return path


def test_logger_from_another_thread_lands_rows(adb_path):
    def work():
        with MetricsLogger(adb_path, "training", flush_interval_s=0.05) as ml:
            for i in range(500):
                ml.log("loss", 1.0 / (i + 1), t_ns=T0 + i)
            ml.flush()
            ml.log("epoch", 1, t_ns=T0 + 1000)

    th = threading.Thread(target=work)
    th.start()
    th.join()
    conn = connect_ro(adb_path)
    try:
        rows = history(conn, "loss")
        assert len(rows) == 500 and rows[0] == (T0, 1.0) and rows[-1][0] == T0 + 499
        assert history(conn, "loss", since_ns=T0 + 490)[0][0] == T0 + 490
        assert latest(conn, process="training") == {"loss": (T0 + 499, 1.0 / 500), "epoch": (T0 + 1000, 1.0)}
        assert latest(conn, process="inference") == {}
    finally:
        conn.close()


def test_logger_from_another_process_while_this_one_logs(adb_path):
    code = textwrap.dedent(f"""
        from sdr_assets.store.telemetry import MetricsLogger
        with MetricsLogger({str(adb_path)!r}, "inference", capture_id=7, flush_interval_s=0.05) as ml:
            for i in range(300):
                ml.log("latency_ms", float(i), t_ns={T0} + i)
    """)
    child = subprocess.Popen([sys.executable, "-c", code])
    with MetricsLogger(adb_path, "training", flush_interval_s=0.05) as ml:
        for i in range(300):
            ml.log("loss", float(i), t_ns=T0 + i)
    assert child.wait(timeout=60) == 0
    conn = connect_ro(adb_path)
    try:
        counts = dict(conn.execute("SELECT process, count(*) FROM telemetry GROUP BY process").fetchall())
        assert counts == {"inference": 300, "training": 300}
        assert conn.execute("SELECT DISTINCT capture_id FROM telemetry WHERE process='inference'").fetchall() == [(7,)]
    finally:
        conn.close()


def test_log_never_blocks_while_the_db_is_locked(adb_path):
    import sqlite3

    blocker = sqlite3.connect(adb_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the logger's writer must wait for this lock
    ml = MetricsLogger(adb_path, "training", flush_interval_s=0.01, max_queue=50)
    try:
        ml.log("x", 0.0)
        time.sleep(0.1)  # the writer thread took the first row and now waits on the lock
        for i in range(1000):  # were log() to wait for the writer, this loop would never end:
            ml.log("x", float(i))  # the lock it waits on is released only after it
        assert ml.n_dropped > 0
    finally:
        blocker.execute("COMMIT")
        blocker.close()
        ml.close()
    conn = connect_ro(adb_path)
    try:
        assert latest(conn)["telemetry_dropped"][1] == ml.n_dropped
        n = conn.execute("SELECT count(*) FROM telemetry WHERE metric='x'").fetchone()[0]
        assert n == 1001 - ml.n_dropped
    finally:
        conn.close()


def test_stats_by_hour_and_by_capture(adb_path):
    import sqlite3

    conn = sqlite3.connect(adb_path, isolation_level=None)
    rows = [
        (T0 + 10, 1, "capture", "rss_mb", 40.0),
        (T0 + 20, 1, "capture", "rss_mb", 44.0),
        (T0 + HOUR_NS + 5, 2, "capture", "rss_mb", 50.0),
        (T0 + 30, 1, "capture", "commit_ms_p99", 0.7),
    ]
    conn.executemany("INSERT INTO telemetry (t_ns, capture_id, process, metric, value) VALUES (?, ?, ?, ?, ?)", rows)
    conn.close()
    conn = connect_ro(adb_path)
    try:
        by_hour = [tuple(r) for r in stats(conn, by="hour")]
        assert by_hour == [
            ("2025-11-23T00:00Z", "commit_ms_p99", 1, 0.7, 0.7, 0.7),
            ("2025-11-23T00:00Z", "rss_mb", 2, 40.0, 42.0, 44.0),
            ("2025-11-23T01:00Z", "rss_mb", 1, 50.0, 50.0, 50.0),
        ]
        by_capture = {(r.key, r.metric): r.count for r in stats(conn, by="capture")}
        assert by_capture == {(1, "commit_ms_p99"): 1, (1, "rss_mb"): 2, (2, "rss_mb"): 1}
        with pytest.raises(ConfigError):
            stats(conn, by="day")
    finally:
        conn.close()


def test_database_stats_of_the_hot_db(tmp_path):
    path = tmp_path / "hot.db"
    info = SourceInfo("synthetic://", "synthetic", 1e8, 1e6)
    with HotWriter(path) as w:
        cid = w.begin_capture(info, 0)
        c1 = Chunk(T0, 1e8, 1e6, None, b"\x80" * 8192)
        c2 = Chunk(c1.t_end_ns, 1e8, 1e6, None, b"\x80" * 8192)
        w.write_batch(cid, [c1, c2], telemetry=[(T0, "capture", "rss_mb", 30.0)])
        s = database_stats(path)
    assert s["page_size"] == 65536 and s["file_bytes"] >= 0 and s["wal_bytes"] > 0
    assert s["rows"]["chunks"] == 2 and s["rows"]["telemetry"] == 1 and s["rows"]["captures"] == 1
    assert s["oldest_chunk_t_start_ns"] == T0 and s["newest_chunk_t_end_ns"] == c2.t_end_ns
    assert s["used_bytes"] == (s["page_count"] - s["freelist_count"]) * 65536


def test_logger_needs_a_db_with_a_telemetry_table(tmp_path):
    with pytest.raises(StoreError, match="start the capture|does not exist"):
        MetricsLogger(tmp_path / "missing.db", "training")
    import sqlite3

    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(StoreError, match="no telemetry table"):
        MetricsLogger(other, "training")
    with pytest.raises(ConfigError):
        MetricsLogger(other, "")


def test_logger_refuses_the_hot_db(tmp_path):
    path = tmp_path / "hot.db"
    with HotWriter(path):
        pass
    with pytest.raises(StoreError, match="is the hot DB"):
        MetricsLogger(path, "training")


# ---- the bound: size cap and age limit, kept by each DB's own writer -------------------------
def _telemetry_figures(path) -> tuple[int, int, int, int]:
    """(bytes of the telemetry table and indexes, rows, oldest t_ns, newest t_ns)."""
    from sdr_assets.store.telemetry import telemetry_bytes

    conn = connect_ro(path)
    try:
        n, t0, t1 = conn.execute("SELECT count(*), min(t_ns), max(t_ns) FROM telemetry").fetchone()
        return telemetry_bytes(conn), n, t0, t1
    finally:
        conn.close()


def test_metrics_past_a_small_cap_keep_the_bound_and_the_newest_rows(adb_path):
    from sdr_assets.store.telemetry import TelemetryLimits

    def log_rows(ml, first: int, last: int) -> None:
        for i in range(first, last):
            ml.log("gpu0_util_percent" if i % 2 else "sys_cpu_percent", float(i), t_ns=T0 + i * 10**6)
            if i % 5000 == 4999:
                ml.flush()
                time.sleep(0.06)  # a prune is due between these bursts
        ml.flush()
        time.sleep(0.2)  # and one after the last rows

    cap = 1_500_000
    schema = adb_path.stat().st_size  # the empty analysis DB: every table's first page (64 KiB each)
    with MetricsLogger(adb_path, "training", flush_interval_s=0.02, limits=None) as ml:
        log_rows(ml, 0, 60_000)  # ~6 MB, unbounded: four times the cap
    grown = adb_path.stat().st_size
    limits = TelemetryLimits(cap_bytes=cap, prune_interval_s=0.05, vacuum_min_bytes=1_000_000)
    n = 80_000
    with MetricsLogger(adb_path, "training", flush_interval_s=0.02, limits=limits) as ml:
        log_rows(ml, 60_000, n)
    size, rows, oldest, newest = _telemetry_figures(adb_path)
    assert size <= cap  # the bound held ...
    assert newest == T0 + (n - 1) * 10**6  # ... with the newest rows kept, the oldest gone
    assert oldest > T0 + 60_000 * 10**6 and rows < 20_000
    assert sum(p.rows_by_size for p in ml.prunes) == n - rows and not any(p.rows_by_age for p in ml.prunes)
    first = ml.prunes[0]  # the large prune of the first pass freed most of the file: VACUUM
    assert first.vacuumed and first.file_bytes_freed > 3_000_000
    assert not any(p.vacuumed for p in ml.prunes[1:])  # small prunes: SQLite reuses the pages
    assert adb_path.stat().st_size - schema < (grown - schema) / 2


def test_hot_db_telemetry_is_bounded_by_its_writer_without_vacuum(tmp_path):
    from sdr_assets.store.telemetry import TelemetryLimits

    cap = 1_000_000
    hot = tmp_path / "hot.db"
    limits = TelemetryLimits(cap_bytes=cap, prune_interval_s=1e-6)
    pruned = 0
    with HotWriter(hot, cap_bytes=None, telemetry_limits=limits) as w:
        cid = w.begin_capture(SourceInfo("synthetic://t", "synthetic", 1e8, 1e6), T0)
        for s in range(2000):  # 2000 seconds of 20 metrics
            rows = [(T0 + s * 10**9, "capture", f"metric_{m:02d}", float(s)) for m in range(20)]
            pruned += w.write_batch(cid, [], telemetry=rows).telemetry_pruned
        free_pages = w.conn.execute("PRAGMA freelist_count").fetchone()[0]
    size, rows, oldest, newest = _telemetry_figures(hot)
    assert size <= cap and newest == T0 + 1999 * 10**9 and rows + pruned == 40_000
    assert oldest > T0 + 1000 * 10**9
    assert free_pages > 0  # freed pages wait for the next chunks: no VACUUM under the capture


def test_age_limit_counts_back_from_the_newest_row_every_interval(adb_path):
    from sdr_assets.store.db import connect_rw
    from sdr_assets.store.telemetry import TelemetryLimits, TelemetryPruner

    day_ns = 86400 * 10**9
    conn = connect_rw(adb_path)
    try:
        conn.executemany(
            "INSERT INTO telemetry (t_ns, process, metric, value) VALUES (?, 'p', 'm', 1)",
            [(T0 + d * day_ns,) for d in range(100)],
        )  # 100 days, old and recent alike
        now = [0.0]
        pruner = TelemetryPruner(TelemetryLimits(max_age_s=90 * 86400.0), vacuum=True, clock=lambda: now[0])
        assert pruner.due()
        res = pruner.prune(conn, adb_path, now_ns=T0 + 10_000 * day_ns)  # the clock far ahead
        assert (res.rows_by_age, res.rows_left) == (9, 91)  # days 0-8 were older than day 99 - 90
        assert not pruner.due()
        now[0] = 299.0
        assert not pruner.due()
        now[0] = 300.0  # every 5 minutes
        assert pruner.due()
    finally:
        conn.close()
    with pytest.raises(ConfigError, match="telemetry cap"):
        TelemetryLimits(cap_bytes=0)
