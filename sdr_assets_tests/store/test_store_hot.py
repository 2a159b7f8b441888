"""The hot DB: pragmas, migrations, refusals, byte-exact writes, retention, capacity."""

import hashlib
import os
import sqlite3
import time
import zlib

import pytest

from sdr_assets.errors import ConfigError, StoreError
from sdr_assets.records import Annotation, Chunk, Gap, SourceInfo
from sdr_assets.store.db import connect_hot, connect_ro, hot_migrations, migrate
from sdr_assets.store.hot import HotWriter, check_capacity
from sdr_assets.store.window import AnalysisDB

FS_HZ = 1_000_000.0
INFO = SourceInfo(
    uri="synthetic://test", kind="synthetic", center_freq_hz=433.92e6, sample_rate_hz=FS_HZ, meta={"seed": 1}
)


def make_chunks(t_ns: int, n: int, n_bytes: int = 65536, rng=None) -> list[Chunk]:
    out = []
    for _ in range(n):
        iq = rng.bytes(n_bytes) if rng is not None else os.urandom(n_bytes)
        c = Chunk(t_ns, INFO.center_freq_hz, FS_HZ, 20.0, iq)
        out.append(c)
        t_ns = c.t_end_ns
    return out


@pytest.fixture
def writer(tmp_path):
    w = HotWriter(tmp_path / "hot.db", cap_bytes=None)
    w.open()
    yield w
    w.close()


def test_pragmas_in_force(tmp_path):
    with HotWriter(tmp_path / "hot.db", synchronous="FULL") as w:
        conn = w.conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA page_size").fetchone()[0] == 65536
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA secure_delete").fetchone()[0] == 0
        assert conn.execute("PRAGMA journal_size_limit").fetchone()[0] == 64 * 1024 * 1024
        assert conn.execute("PRAGMA temp_store").fetchone()[0] == 2  # MEMORY
        assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0  # the checkpointer thread does
        assert conn.isolation_level is None
    ro = connect_ro(tmp_path / "hot.db")
    try:
        assert ro.execute("PRAGMA page_size").fetchone()[0] == 65536
        with pytest.raises(sqlite3.OperationalError):
            ro.execute("DELETE FROM chunks")
    finally:
        ro.close()


def test_bad_synchronous_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match="NORMAL, FULL, OFF"):
        connect_hot(tmp_path / "hot.db", synchronous="sometimes")
    assert not (tmp_path / "hot.db").exists()


def test_connect_ro_missing_file_says_start_capture(tmp_path):
    with pytest.raises(StoreError, match="start the capture"):
        connect_ro(tmp_path / "nope.db")


def test_migrations_recorded_and_idempotent(tmp_path):
    path = tmp_path / "hot.db"
    with HotWriter(path):
        pass
    conn = connect_hot(path)
    try:
        first = conn.execute("SELECT version, applied_ns FROM schema_migrations ORDER BY version").fetchall()
        assert [v for v, _ in first] == [v for v, _ in hot_migrations()]
        assert migrate(conn, hot_migrations()) == 2  # nothing left to apply
        assert conn.execute("SELECT version, applied_ns FROM schema_migrations ORDER BY version").fetchall() == first
        cols = {r[1] for r in conn.execute("PRAGMA table_info(chunks)")}
        assert {"seq", "iq", "iq_crc32"} <= cols
    finally:
        conn.close()
    with HotWriter(path):  # re-open: still fine
        pass


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "hot.db"
    with HotWriter(path):
        pass
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_migrations VALUES (99, 0)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer sdr_assets .*version 99"):
        HotWriter(path).open()


def test_not_a_database_is_refused_and_left_byte_identical(tmp_path):
    path = tmp_path / "hot.db"
    path.write_bytes(b"these are my holiday notes, not a database\n" * 100)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(StoreError) as info:
        HotWriter(path).open()
    assert str(path) in str(info.value) and "Move it away" in str(info.value)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hot.db"]  # no -wal/-shm created


def test_analysis_db_is_not_opened_as_hot(tmp_path):
    path = tmp_path / "analysis.db"
    with AnalysisDB(path):
        pass
    with pytest.raises(StoreError, match="not interchangeable"):
        HotWriter(path).open()


def test_write_batch_stores_everything_byte_exact(writer, tmp_path):
    import numpy as np

    rng = np.random.default_rng(7)
    cid = writer.begin_capture(INFO, started_ns=123)
    chunks = make_chunks(1_000_000_000, 5, n_bytes=262144, rng=rng)
    gap = Gap(chunks[-1].t_end_ns, 5000, FS_HZ, "ring_overflow", "test")
    ann = Annotation(chunks[0].t_start_ns, chunks[1].t_end_ns, 433.9e6, 433.95e6, "burst", 12.5)
    tele = [(chunks[0].t_start_ns, "capture", "rss_mb", 41.5)]
    res = writer.write_batch(cid, chunks, [gap], [ann], tele)
    assert (res.n_chunks, res.n_bytes, res.last_seq, res.pruned_chunks) == (5, 5 * 262144, 5, 0)
    more = make_chunks(gap.t_end_ns, 2, rng=rng)
    assert writer.write_batch(cid, more).last_seq == 7
    writer.end_capture(cid, "eof")
    assert writer.last_chunk_end() == (cid, more[-1].t_end_ns, FS_HZ)

    ro = connect_ro(tmp_path / "hot.db")
    try:
        rows = ro.execute(
            "SELECT seq, capture_id, t_start_ns, n_samples, iq, iq_crc32, gain_db FROM chunks ORDER BY seq"
        ).fetchall()
        assert [r[0] for r in rows] == list(range(1, 8))
        for row, c in zip(rows, chunks + more):
            assert row[1] == cid and row[2] == c.t_start_ns and row[3] == c.n_samples
            assert row[4] == c.iq and row[5] == zlib.crc32(c.iq) and row[6] == 20.0
        assert ro.execute("SELECT t_start_ns, t_end_ns, n_samples_lost, cause FROM gaps").fetchall() == [
            (gap.t_start_ns, gap.t_end_ns, 5000, "ring_overflow")
        ]
        assert ro.execute("SELECT label, snr_db, origin, capture_id FROM annotations").fetchall() == [
            ("burst", 12.5, "synthetic", cid)
        ]
        assert ro.execute("SELECT t_ns, capture_id, process, metric, value FROM telemetry").fetchall() == [
            (chunks[0].t_start_ns, cid, "capture", "rss_mb", 41.5)
        ]
        cap = ro.execute("SELECT source_kind, started_ns, end_reason, meta_json FROM captures").fetchone()
        assert cap == ("synthetic", 123, "eof", '{"seed": 1}')
    finally:
        ro.close()


def test_seq_continues_after_reopen(tmp_path):
    path = tmp_path / "hot.db"
    with HotWriter(path) as w:
        cid = w.begin_capture(INFO, 0)
        w.write_batch(cid, make_chunks(0, 3))
    with HotWriter(path) as w:
        assert w.last_chunk_end()[0] == cid
        cid2 = w.begin_capture(INFO, 1)
        assert cid2 == cid + 1
        assert w.write_batch(cid2, make_chunks(10**9, 2)).last_seq == 5


def test_retention_keeps_file_under_cap_plus_one_batch(tmp_path):
    cap = 8 * 2**20
    batch = 4
    chunk_bytes = 262144
    path = tmp_path / "hot.db"
    with HotWriter(path, cap_bytes=cap, prune_step_chunks=3) as w:
        cid = w.begin_capture(INFO, 0)
        t = 0
        written = 0
        pruned = 0
        while written < 5 * cap:
            chunks = make_chunks(t, batch, n_bytes=chunk_bytes)
            g = Gap(t, 10, FS_HZ, "ring_overflow")
            res = w.write_batch(cid, chunks, [g], [], [(t, "capture", "x", 1.0)])
            t = chunks[-1].t_end_ns
            written += res.n_bytes
            pruned += res.pruned_chunks
            assert w.db_size_bytes() <= cap + batch * chunk_bytes
        oldest, newest, n = w.conn.execute("SELECT min(seq), max(seq), count(*) FROM chunks").fetchone()
        assert newest == res.last_seq and n == newest - oldest + 1  # a contiguous suffix
        assert pruned == oldest - 1 > 0
        t_oldest = w.conn.execute("SELECT min(t_start_ns) FROM chunks").fetchone()[0]
        assert w.conn.execute("SELECT min(t_start_ns) FROM gaps").fetchone()[0] >= t_oldest
        assert w.conn.execute("SELECT min(t_ns) FROM telemetry").fetchone()[0] >= t_oldest
        assert w.used_bytes() > cap // 2  # the cap is used, not wasted
    assert os.path.getsize(path) <= cap + batch * chunk_bytes


def test_max_age_prunes_old_chunks(tmp_path):
    with HotWriter(tmp_path / "hot.db", cap_bytes=None, max_age_s=1.0, prune_step_chunks=8) as w:
        cid = w.begin_capture(INFO, 0)
        t = 0
        for _ in range(40):  # 40 batches x 4 x 32.8 ms = 5.2 s of samples
            chunks = make_chunks(t, 4)
            w.write_batch(cid, chunks, annotations=[Annotation(t, t + 1000, 1.0, 2.0, "a")])
            t = chunks[-1].t_end_ns
        oldest = w.conn.execute("SELECT min(t_start_ns) FROM chunks").fetchone()[0]
        assert t - oldest <= 1.0e9 + 5 * 32_768_000  # within one batch of the age limit
        assert w.conn.execute("SELECT min(t_start_ns) FROM annotations").fetchone()[0] >= oldest


def test_retention_never_empties_the_table_so_seq_is_never_reused(tmp_path):
    path = tmp_path / "hot.db"
    with HotWriter(path, cap_bytes=None, max_age_s=0.5) as w:
        cid = w.begin_capture(INFO, 0)
        w.write_batch(cid, make_chunks(0, 3))
        # an hour later: every old chunk is past the age limit
        later = make_chunks(3600 * 10**9, 2)
        res = w.write_batch(cid, later)
        assert res.last_seq == 5 and res.pruned_chunks == 2  # the newest old chunk stays ...
        w.write_batch(cid, make_chunks(later[-1].t_end_ns, 1))
        seqs = [r[0] for r in w.conn.execute("SELECT seq FROM chunks ORDER BY seq")]
        assert seqs == [4, 5, 6]  # ... until newer ones exist


def test_check_capacity_message_has_the_numbers():
    with pytest.raises(ConfigError) as info:
        check_capacity(100_000_000, 3.2e6, 300)
    msg = str(info.value)
    for part in ("100 MB", "15.6 s", "3.2 MS/s", "5-min", "3.84 GB", "--cap-bytes"):
        assert part in msg, (part, msg)
    check_capacity(4_000_000_000, 3.2e6, 300)  # enough: no error


def test_writer_not_open_is_store_error(tmp_path):
    with pytest.raises(StoreError, match="open"):
        HotWriter(tmp_path / "hot.db").used_bytes()


@pytest.mark.parametrize(
    "kwargs", [dict(cap_bytes=0), dict(max_age_s=-1), dict(wal_autocheckpoint_pages=0), dict(prune_step_chunks=0)]
)
def test_bad_writer_settings(tmp_path, kwargs):
    with pytest.raises(ConfigError):
        HotWriter(tmp_path / "hot.db", **kwargs)


def test_inline_checkpoints_on_request(tmp_path):
    with HotWriter(tmp_path / "hot.db", checkpoint="inline") as w:
        assert w.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
        assert w.checkpoint_figures() == {}
    with pytest.raises(ConfigError, match="background, inline"):
        HotWriter(tmp_path / "hot.db", checkpoint="sometimes")


def test_wal_shrinks_after_a_long_reader_lets_go(tmp_path):
    """A snapshot-like reader pins the WAL; once it ends, the checkpoints catch up and it restarts."""
    path = tmp_path / "hot.db"
    blob = os.urandom(262144)
    with HotWriter(path, cap_bytes=None) as w:
        cid = w.begin_capture(INFO, 0)
        t = [0]

        def batch():
            cs = [Chunk(t[0] + i * 131_072_000, 1e8, FS_HZ, None, blob) for i in range(4)]
            t[0] = cs[-1].t_end_ns
            w.write_batch(cid, cs)

        reader = connect_ro(path)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM chunks").fetchone()  # holds its read mark
        for _ in range(80):  # 80 MiB while the reader holds the WAL
            batch()
        assert os.path.getsize(f"{path}-wal") > 80 * 2**20
        reader.execute("COMMIT")
        reader.close()
        # the checkpointer thread catches up off the commit path; the WAL restarts once it has
        for _ in range(200):
            batch()
            if os.path.getsize(f"{path}-wal") <= 64 * 2**20:
                break
            time.sleep(0.05)
        assert os.path.getsize(f"{path}-wal") <= 64 * 2**20  # reset and cut to journal_size_limit
