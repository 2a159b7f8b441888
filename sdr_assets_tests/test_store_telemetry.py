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
    rows = [(T0 + 10, 1, "capture", "rss_mb", 40.0), (T0 + 20, 1, "capture", "rss_mb", 44.0),
            (T0 + HOUR_NS + 5, 2, "capture", "rss_mb", 50.0), (T0 + 30, 1, "capture", "commit_ms_p99", 0.7)]
    conn.executemany("INSERT INTO telemetry (t_ns, capture_id, process, metric, value) VALUES (?, ?, ?, ?, ?)", rows)
    conn.close()
    conn = connect_ro(adb_path)
    try:
        by_hour = [tuple(r) for r in stats(conn, by="hour")]
        assert by_hour == [("2025-11-23T00:00Z", "commit_ms_p99", 1, 0.7, 0.7, 0.7),
                           ("2025-11-23T00:00Z", "rss_mb", 2, 40.0, 42.0, 44.0),
                           ("2025-11-23T01:00Z", "rss_mb", 1, 50.0, 50.0, 50.0)]
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
