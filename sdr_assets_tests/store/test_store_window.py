"""The analysis DB: windows from snapshots, idempotent loads, the circular bound, contiguity."""

import os
import sqlite3

import pytest

from sdr_assets.errors import ConfigError, PartitionNotHeldError, StoreError
from sdr_assets.records import NS_PER_S, Annotation, Chunk, Gap, SourceInfo
from sdr_assets.store.hot import HotWriter
from sdr_assets.store.snapshot import take_snapshot
from sdr_assets.store.window import AnalysisDB, check_contiguity

FS_HZ = 1_000_000.0
T0 = 1_700_000_000 * NS_PER_S  # window k is [T0 + k s, T0 + (k+1) s)
CHUNK_BYTES = 65536  # 32768 samples = 32.768 ms
INFO = SourceInfo(uri="synthetic://w", kind="synthetic", center_freq_hz=433.92e6, sample_rate_hz=FS_HZ)


def win(k: int) -> tuple[int, int]:
    return T0 + k * NS_PER_S, T0 + (k + 1) * NS_PER_S


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    """4 s of samples; a recorded gap inside window 1, another across the 2|3 boundary,
    an annotation across the 0|1 boundary. Returns (snapshot path, chunks, gaps)."""
    d = tmp_path_factory.mktemp("win")
    chunks, gaps = [], []
    t = T0
    gap_at = {45: 20_000, 89: 100_000}  # chunk index -> samples lost before it
    for i in range(125):
        if i in gap_at:
            g = Gap(t, gap_at[i], FS_HZ, "ring_overflow", f"before chunk {i}")
            gaps.append(g)
            t = g.t_end_ns
        chunks.append(Chunk(t, INFO.center_freq_hz, FS_HZ, None, os.urandom(CHUNK_BYTES)))
        t = chunks[-1].t_end_ns
    ann = Annotation(T0 + 900_000_000, T0 + 1_100_000_000, 433.9e6, 433.95e6, "burst")
    with HotWriter(d / "hot.db", cap_bytes=None) as w:
        cid = w.begin_capture(INFO, 0)
        for j in range(0, len(chunks), 10):
            batch = chunks[j : j + 10]
            w.write_batch(
                cid,
                batch,
                [g for g in gaps if batch[0].t_start_ns <= g.t_end_ns <= batch[-1].t_start_ns],
                [ann] if j == 0 else [],
            )
    res = take_snapshot(d / "hot.db", d / "snap.db")
    assert res.integrity == "ok"
    return res.path, chunks, gaps


@pytest.fixture
def adb(tmp_path):
    db = AnalysisDB(tmp_path / "analysis.db")
    db.open()
    yield db
    db.close()


def test_straddling_chunk_tail_counts_in_the_next_window(adb, snapshot):
    snap, chunks, _ = snapshot
    t0, t1 = win(1)
    assert any(c.t_start_ns < t0 < c.t_end_ns for c in chunks)  # a chunk straddles t0
    st = adb.load_window(snap, "p1", t0, t1, keep_partitions=3)
    first = next(adb.iter_chunks("p1", with_iq=False))
    assert first.t_start_ns > t0  # the window's own chunks leave [t0, first) uncovered
    assert st.coverage == pytest.approx(1.0, abs=1e-6)


def test_load_window_copies_exactly_and_is_idempotent(adb, snapshot):
    snap, chunks, _ = snapshot
    t0, t1 = win(0)
    st = adb.load_window(snap, "p0", t0, t1, keep_partitions=3)
    mine = [c for c in chunks if t0 <= c.t_start_ns < t1]
    assert (st.n_chunks, st.first_seq, st.last_seq) == (len(mine), 1, len(mine))
    assert st.n_samples == sum(c.n_samples for c in mine) and not st.empty
    assert st.duration_s == 1.0 and st.expected_samples == 1_000_000 and st.sample_rate_hz == FS_HZ
    assert abs(st.covered_s - st.n_samples / FS_HZ) < 1e-9
    # the last chunk runs past t1: only the samples inside the window count, so a window
    # whose chunks tile it end to end is fully covered (never > 1 by chunk boundaries)
    assert st.n_samples > 1_000_000 and st.coverage == pytest.approx(1.0)

    rows = list(adb.iter_chunks("p0"))
    assert [r.iq for r in rows] == [c.iq for c in mine]
    assert [r.t_start_ns for r in rows] == [c.t_start_ns for c in mine]
    assert all(r.iq is None for r in adb.iter_chunks("p0", with_iq=False))
    assert [a.label for a in adb.annotations("p0")] == ["burst"]

    again = adb.load_window(snap, "p0", t0, t1, keep_partitions=3)
    assert again.n_chunks == st.n_chunks and again.n_samples == st.n_samples
    n = adb.conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
    assert n == len(mine)
    assert [p.partition_key for p in adb.partitions()] == ["p0"]


def test_recorded_gaps_count_as_lost_and_cross_boundaries(adb, snapshot):
    snap, _, gaps = snapshot
    st1 = adb.load_window(snap, "p1", *win(1), keep_partitions=4)
    assert st1.n_gaps == 1 and st1.n_samples_lost == 20_000
    # coverage discounts recorded losses: close to 1 although 2 % of the window is missing
    assert 0.97 < st1.coverage < 1.04
    assert check_contiguity(adb.chunk_spans("p1"), adb.gaps("p1")) == []
    st2 = adb.load_window(snap, "p2", *win(2), keep_partitions=4)
    st3 = adb.load_window(snap, "p3", *win(3), keep_partitions=4)
    crossing = gaps[1]
    assert [g.gap_id for g in adb.gaps("p2")] == [g.gap_id for g in adb.gaps("p3")] == [2]  # held by both
    assert st2.n_samples_lost + st3.n_samples_lost == pytest.approx(crossing.n_samples_lost, abs=2)
    assert [a.label for a in adb.annotations("p1")] == ["burst"]  # crosses 0|1, so p1 has it too


def test_circular_bound_drops_least_recently_loaded_everywhere(adb, snapshot):
    snap = snapshot[0]
    for k in range(3):
        adb.load_window(snap, f"p{k}", *win(k), keep_partitions=2)
        with adb.transaction() as conn:
            conn.execute(
                "INSERT INTO frames (partition_key, t_start_ns, t_end_ns, freq_lower_hz, freq_upper_hz, "
                "center_freq_hz, sample_rate_hz, nfft, hop, width_px, height_px, first_seq, last_seq, "
                "path) VALUES (?, 0, 1, 0, 1, 0, 1, 256, 128, 10, 10, 1, 2, 'x.png')",
                (f"p{k}",),
            )
            conn.execute(
                "INSERT INTO labels (frame_id, partition_key, class_name, x_center, y_center, width, "
                "height, auto) VALUES (1, ?, 'burst', .5, .5, .1, .1, 1)",
                (f"p{k}",),
            )
            conn.execute(
                "INSERT INTO detections (partition_key, t_start_ns, t_end_ns, freq_lower_hz, "
                "freq_upper_hz, label, confidence, model_version, frame_id, first_seq, last_seq) "
                "VALUES (?, 0, 1, 0, 1, 'burst', .9, 'energy', 1, 1, 2)",
                (f"p{k}",),
            )
    st = adb.load_window(snap, "p3", *win(3), keep_partitions=2)
    assert st.dropped_partitions == ("p1",)
    assert [p.partition_key for p in adb.partitions()] == ["p2", "p3"]
    for table in ("chunks", "gaps", "annotations", "frames", "labels", "detections"):
        keys = {r[0] for r in adb.conn.execute(f"SELECT DISTINCT partition_key FROM {table}")}
        assert keys <= {"p2", "p3"}, table
    # a backfill of an old window is kept: eviction is by load order, not by time
    st = adb.load_window(snap, "p0", *win(0), keep_partitions=2)
    assert st.dropped_partitions == ("p2",)
    assert sorted(p.partition_key for p in adb.partitions()) == ["p0", "p3"]


def test_empty_window_is_flagged(adb, snapshot):
    st = adb.load_window(snapshot[0], "future", *win(100), keep_partitions=2)
    assert st.empty and st.n_chunks == 0 and st.n_samples == 0 and st.coverage == 0.0
    assert st.first_seq is None and st.expected_samples == 1_000_000
    assert [p.n_chunks for p in adb.partitions()] == [0]


def test_require_held(adb, snapshot):
    with pytest.raises(PartitionNotHeldError, match="not fully held"):
        adb.load_window(snapshot[0], "p9", *win(9), keep_partitions=2, require_held=True)
    adb.load_window(snapshot[0], "p1", *win(1), keep_partitions=2, require_held=True)


def test_overlapping_partitions_are_refused(adb, snapshot):
    adb.load_window(snapshot[0], "a", *win(0), keep_partitions=3)
    t0, t1 = win(0)
    with pytest.raises(StoreError, match="overlaps chunks already held by partition.*'a'"):
        adb.load_window(snapshot[0], "b", t0 + NS_PER_S // 2, t1 + NS_PER_S // 2, keep_partitions=3)
    assert [p.partition_key for p in adb.partitions()] == ["a"]  # the failed load left nothing


def test_bad_arguments(adb, snapshot, tmp_path):
    with pytest.raises(ConfigError):
        adb.load_window(snapshot[0], "x", *win(0), keep_partitions=0)
    with pytest.raises(ConfigError):
        adb.load_window(snapshot[0], "x", T0, T0, keep_partitions=1)
    with pytest.raises(StoreError, match="materialize the snapshot"):
        adb.load_window(tmp_path / "nope.db", "x", *win(0), keep_partitions=1)


def _c(t_start_ns: int, n_samples: int = 1000) -> Chunk:
    return Chunk(t_start_ns, 1e6, FS_HZ, None, b"\x80" * (2 * n_samples))


def test_check_contiguity():
    a = _c(0)  # 1 ms each
    b = _c(a.t_end_ns)
    c = _c(b.t_end_ns + 500_000)  # a 0.5 ms hole
    assert check_contiguity([a, b], [], tol_ns=10) == []
    holes = check_contiguity([c, a, b], [], tol_ns=10)  # order does not matter
    assert [(h.t_start_ns, h.t_end_ns, h.kind) for h in holes] == [(b.t_end_ns, c.t_start_ns, "hole")]
    assert holes[0].duration_s == pytest.approx(0.0005)
    gap = Gap(b.t_end_ns, 500, FS_HZ, "reconnect")
    assert check_contiguity([a, b, c], [gap], tol_ns=10) == []
    half = Gap(b.t_end_ns, 200, FS_HZ, "reconnect")  # covers only part of the hole
    assert len(check_contiguity([a, b, c], [half], tol_ns=10)) == 1
    two = [half, Gap(half.t_end_ns, 300, FS_HZ, "reconnect")]  # together they cover it
    assert check_contiguity([a, b, c], two, tol_ns=10) == []
    over = _c(b.t_end_ns - 100_000)
    assert [h.kind for h in check_contiguity([a, b, over], [], tol_ns=10)] == ["overlap"]
    assert check_contiguity([a, _c(a.t_end_ns + 5)], [], tol_ns=10) == []  # within tolerance


def test_contiguous_runs_break_on_each_rule_and_only_there():
    """The one run rule (records.contiguous_runs): a retune, a rate change, a hole or an
    overlap beyond one sample, or a recorded gap starting at the boundary starts a new run."""
    from dataclasses import replace

    from sdr_assets.records import contiguous_runs, segments
    from sdr_assets.store.chunks import ChunkRow

    def spans(chunks, gaps=(), **kw):
        return [[chunks.index(c) for c in run] for run in contiguous_runs(chunks, gaps, **kw)]

    a = _c(0)  # 1000 samples = 1 ms at 1 MS/s; one sample = 1000 ns
    b = _c(a.t_end_ns + 900)  # within one sample of a's end
    assert spans([a, b]) == [[0, 1]]
    assert spans([a, _c(a.t_end_ns + 1_100)]) == [[0], [1]]  # a hole of more than one sample
    assert spans([a, _c(a.t_end_ns - 1_100)]) == [[0], [1]]  # an overlap of more than one sample
    assert spans([a, replace(b, center_freq_hz=2e6)]) == [[0], [1]]  # a retune
    assert spans([a, replace(b, sample_rate_hz=2 * FS_HZ)]) == [[0], [1]]  # a rate change
    assert spans([a, replace(b, center_freq_hz=2e6)], retune=False) == [[0, 1]]
    assert spans([a, b], [a.t_end_ns]) == [[0], [1]]  # a recorded loss starts there
    assert spans([a, b], [a.t_start_ns, b.t_end_ns + 5_000]) == [[0, 1]]  # gaps elsewhere do not
    assert spans([a, _c(a.t_end_ns + 1_100)], tol_ns=2_000) == [[0, 1]]
    # a Segment per run: its samples, tuning and times
    rows = [
        ChunkRow(i, c.t_start_ns, c.sample_rate_hz, c.center_freq_hz, c.n_samples, None)
        for i, c in enumerate([a, _c(a.t_end_ns), _c(5 * NS_PER_S)])
    ]
    segs = segments(rows)
    assert [(s.first_seq, s.last_seq, s.n_samples) for s in segs] == [(0, 1, 2000), (2, 2, 1000)]
    assert segs[0].t_end_ns == rows[1].t_end_ns and segs[1].t_start_ns == 5 * NS_PER_S


def test_corrupt_analysis_db_is_moved_aside_and_rebuilt(tmp_path):
    path = tmp_path / "analysis.db"
    path.write_bytes(b"garbage that is not sqlite" * 100)
    db = AnalysisDB(path)
    db.open()
    try:
        assert db.recovered_from is not None and db.recovered_from.name.startswith("analysis.db.corrupt-")
        assert db.recovered_from.read_bytes().startswith(b"garbage")
        assert db.partitions() == []
    finally:
        db.close()
    path.unlink()  # deleted: open() starts a fresh one
    with AnalysisDB(path) as db2:
        assert db2.recovered_from is None and db2.partitions() == []


def test_truncated_analysis_db_is_moved_aside(tmp_path, snapshot):
    path = tmp_path / "analysis.db"
    with AnalysisDB(path) as db:
        db.load_window(snapshot[0], "p0", *win(0), keep_partitions=2)
        db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = path.read_bytes()
    path.write_bytes(data[:100] + b"\xff" * 70000 + data[70100:])  # header ok, schema page destroyed
    with AnalysisDB(path) as db:
        assert db.recovered_from is not None
        assert db.partitions() == []


def test_newer_analysis_schema_is_refused_not_moved(tmp_path):
    path = tmp_path / "analysis.db"
    with AnalysisDB(path):
        pass
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_migrations VALUES (50, 0)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        AnalysisDB(path).open()
    assert [p.name for p in tmp_path.iterdir() if "corrupt" in p.name] == []


def test_analysis_writers_wait_minutes_for_a_lock_the_hot_db_seconds(tmp_path):
    from sdr_assets.store.db import ANALYSIS_BUSY_TIMEOUT_MS, BUSY_TIMEOUT_MS, connect_hot

    with AnalysisDB(tmp_path / "analysis.db") as db:  # another sensor's window load may hold it
        assert db.conn.execute("PRAGMA busy_timeout").fetchone()[0] == ANALYSIS_BUSY_TIMEOUT_MS >= 300_000
    hot = connect_hot(tmp_path / "hot.db")  # the capture's writer must not wait long
    assert hot.execute("PRAGMA busy_timeout").fetchone()[0] == BUSY_TIMEOUT_MS
    hot.close()
