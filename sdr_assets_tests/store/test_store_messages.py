"""Decodes in the analysis DB (store.messages, migration 4) on real temp-file databases: the
migration keeps every row of a version-3 DB, decodes are replaced per partition and evicted
with it while device sightings stay, the message/detection view, reading a segment's samples."""

import json
import sqlite3

import pytest

from sdr_assets.errors import StoreError
from sdr_assets.records import NS_PER_S, Chunk, Gap, SourceInfo, samples_to_ns
from sdr_assets.store import messages as store
from sdr_assets.store.db import ANALYSIS_APP_ID, analysis_migrations, migrate
from sdr_assets.store.hot import HotWriter
from sdr_assets.store.snapshot import take_snapshot
from sdr_assets_tests.store.test_store_window import adb  # noqa: F401 - an open AnalysisDB on tmp_path

FS = 250_000.0
T0 = 1_700_000_000 * NS_PER_S
CHUNK = 25_000  # samples: 0.1 s


def test_migration_4_keeps_a_version_3_db_and_marks_energy_labels(tmp_path):
    conn = sqlite3.connect(tmp_path / "analysis.db", isolation_level=None)
    assert migrate(conn, analysis_migrations()[:3], application_id=ANALYSIS_APP_ID) == 3
    conn.execute(
        "INSERT INTO chunks (sensor, seq, partition_key, capture_id, t_start_ns, sample_rate_hz, "
        "center_freq_hz, n_samples, iq) VALUES ('default', 1, 'k', 1, 5, 250000.0, 433.92e6, 2, x'01020304')"
    )
    conn.execute(
        "INSERT INTO detections (partition_key, t_start_ns, t_end_ns, freq_lower_hz, freq_upper_hz, "
        "label, confidence, model_version, frame_id, first_seq, last_seq) "
        "VALUES ('k', 0, 10, 1.0, 2.0, 'ook', .9, 'energy', 1, 1, 1)"
    )
    for auto in (0, 1):
        conn.execute(
            "INSERT INTO labels (frame_id, partition_key, class_name, x_center, y_center, width, height, "
            "auto) VALUES (1, 'k', 'ook', .5, .5, .1, .1, ?)",
            (auto,),
        )
    assert migrate(conn, analysis_migrations(), application_id=ANALYSIS_APP_ID) == 5
    assert conn.execute("SELECT seq, iq FROM chunks").fetchall() == [(1, b"\x01\x02\x03\x04")]
    assert conn.execute("SELECT count(*) FROM detections").fetchone()[0] == 1
    assert conn.execute("SELECT auto, source FROM labels ORDER BY auto").fetchall() == [
        (0, "annotation"),
        (1, "energy"),
    ]
    assert store.decodes_available(conn) and store.decode_run(conn, "k") is None
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _message(
    t0: int,
    t1: int,
    lo: float,
    hi: float,
    model: str = "Nexus-TH",
    device_id: str | None = "181",
    channel: str | None = "2",
) -> store.MessageRecord:
    return store.MessageRecord(
        t0,
        t1,
        (lo + hi) / 2,
        None,
        lo,
        hi,
        model,
        device_id,
        channel,
        "ASK",
        -1.0,
        20.0,
        -21.0,
        {"model": model, "id": 181, "temperature_C": 19.0},
        1,
        2,
        "22.11",
    )


def _package(t0: int, t1: int, lo: float, hi: float, n_messages: int = 1) -> store.PackageRecord:
    return store.PackageRecord(
        t0, t1, "OOK", 40, lo, hi, "iq", (lo + hi) / 2, None, -1.0, 20.0, -21.0, n_messages, 1, 2, "22.11"
    )


def _run(key: str, n_messages: int, n_packages: int) -> store.DecodeRun:
    return store.DecodeRun(key, "rtl_433", "22.11", 123, 1, 1000, n_messages, n_packages, 0.01)


def test_decodes_are_replaced_per_partition_and_linked_to_their_package(adb):
    pkgs = [_package(T0, T0 + 100, 1e3, 2e3), _package(T0 + 500, T0 + 600, 1e3, 2e3, n_messages=0)]
    msgs = [_message(T0, T0 + 100, 1e3, 2e3), _message(T0, T0 + 100, 1e3, 2e3)]  # two messages, one package
    for _ in range(2):  # re-decoding replaces, never adds
        store.replace_decodes(adb.conn, _run("p", 2, 2), pkgs, msgs)
    got = store.messages(adb.conn, "p")
    stored = store.packages(adb.conn, "p")
    assert len(got) == 2 and len(stored) == 2
    assert {m.package_id for m in got} == {stored[0].package_id}
    assert got[0].message["temperature_C"] == 19.0 and got[0].name() == "Nexus-TH id 181 ch 2"
    assert got[0].device_key == ("Nexus-TH", "181", "2")
    assert store.decode_run(adb.conn, "p").n_messages == 2
    assert store.messages(adb.conn, "p", limit=1) == got[:1]
    store.replace_decodes(adb.conn, _run("q", 0, 0), [], [])
    assert store.messages(adb.conn, "q") == [] and len(store.messages(adb.conn, "p")) == 2


def test_a_failed_write_leaves_the_previous_decode(adb):
    store.replace_decodes(adb.conn, _run("p", 1, 1), [_package(T0, T0 + 9, 1.0, 2.0)], [_message(T0, T0 + 9, 1.0, 2.0)])
    broken = _message(T0, T0 + 9, 1.0, 2.0, model=None)  # NOT NULL model: the insert fails
    with pytest.raises(StoreError, match="NOT NULL constraint failed: decoded_messages.model"):
        store.replace_decodes(adb.conn, _run("p", 1, 0), [], [broken])
    assert [m.model for m in store.messages(adb.conn, "p")] == ["Nexus-TH"]
    assert len(store.packages(adb.conn, "p")) == 1


def test_the_view_pairs_messages_and_detections_overlapping_in_time_and_band(adb):
    store.replace_decodes(adb.conn, _run("p", 1, 0), [], [_message(T0 + 100, T0 + 200, 10e3, 20e3)])
    dets = [
        (T0 + 150, T0 + 300, 15e3, 30e3),  # overlaps both ways
        (T0 + 150, T0 + 300, 25e3, 30e3),  # same time, other band
        (T0 + 200, T0 + 300, 10e3, 20e3),  # touches its end only
        (T0, T0 + 1000, 0.0, 1e6),
    ]  # covers it
    with adb.transaction() as conn:
        for t0, t1, lo, hi in dets:
            conn.execute(
                "INSERT INTO detections (partition_key, t_start_ns, t_end_ns, freq_lower_hz, freq_upper_hz, "
                "label, confidence, model_version, frame_id, first_seq, last_seq) "
                "VALUES ('p', ?, ?, ?, ?, 'ook', .9, 'energy', 1, 1, 1)",
                (t0, t1, lo, hi),
            )
    (m,) = store.messages(adb.conn, "p")
    assert [(x.message_id, x.detection_id) for x in store.message_detections(adb.conn, "p")] == [
        (m.message_id, 1),
        (m.message_id, 4),
    ]


def _hot_with_gap(tmp_path):
    """20 chunks of 0.1 s, a recorded gap of 0.05 s after the 10th: two segments."""
    import numpy as np

    rng = np.random.default_rng(0)
    payloads, gaps, t = [], [], T0
    for k in range(20):
        if k == 10:
            gaps.append(Gap(t, int(0.05 * FS), FS, "ring_overflow"))
            t = gaps[-1].t_end_ns
        payloads.append((t, rng.integers(0, 256, 2 * CHUNK, dtype=np.uint8).tobytes()))
        t += samples_to_ns(CHUNK, FS)
    with HotWriter(tmp_path / "hot.db", cap_bytes=None) as w:
        cid = w.begin_capture(SourceInfo("synthetic://", "synthetic", 433.92e6, FS), 0)
        w.write_batch(cid, [Chunk(t, 433.92e6, FS, None, iq) for t, iq in payloads], gaps)
    snap = tmp_path / "snap.db"
    take_snapshot(tmp_path / "hot.db", snap)
    return snap, payloads


def test_segments_split_at_the_gap_and_samples_read_back_exactly(adb, tmp_path):
    snap, payloads = _hot_with_gap(tmp_path)
    adb.load_window(snap, "w", T0, T0 + 10 * NS_PER_S, keep_partitions=4)
    segs = store.segment_spans(adb.conn, "w")
    assert [(s.n_samples, s.first_seq, s.last_seq) for s in segs] == [(10 * CHUNK, 1, 10), (10 * CHUNK, 11, 20)]
    assert segs[1].t_start_ns == payloads[10][0] and segs[0].t_end_ns == payloads[9][0] + samples_to_ns(CHUNK, FS)
    assert b"".join(store.iter_segment_iq(adb.conn, "w", segs[1])) == b"".join(p[1] for p in payloads[10:])
    whole = b"".join(p[1] for p in payloads[10:])
    for a, b in ((0, 10), (CHUNK - 5, CHUNK + 7), (3 * CHUNK, 5 * CHUNK + 1), (10 * CHUNK - 3, 10 * CHUNK)):
        assert store.read_iq(adb.conn, "w", segs[1], a, b) == whole[2 * a : 2 * b], (a, b)


def test_eviction_drops_decodes_but_keeps_the_device_sightings(adb, tmp_path):
    snap, _ = _hot_with_gap(tmp_path)
    adb.load_window(snap, "w1", T0, T0 + NS_PER_S, keep_partitions=1)
    store.replace_decodes(
        adb.conn, _run("w1", 1, 1), [_package(T0, T0 + 9, 1.0, 2.0)], [_message(T0, T0 + 9, 1.0, 2.0)]
    )
    sighting = store.Sighting("default", "w1", "Nexus-TH", "181", "2", (T0, T0 + 10), (20.0, None), (1.5, 1.6))
    store.replace_sightings(adb.conn, "default", "w1", [sighting])
    store.replace_sightings(adb.conn, "default", "w1", [sighting])  # a re-run counts once
    adb.load_window(snap, "w2", T0 + NS_PER_S, T0 + 2 * NS_PER_S, keep_partitions=1)  # evicts w1
    assert store.messages(adb.conn, "w1") == [] and store.packages(adb.conn, "w1") == []
    assert store.decode_run(adb.conn, "w1") is None
    assert store.sightings(adb.conn, "default", before_ns=T0 + NS_PER_S) == [sighting]
    (tot,) = store.device_totals(adb.conn, "default", before_ns=T0 + NS_PER_S)
    assert (tot.first_seen_ns, tot.last_seen_ns, tot.n_messages) == (T0, T0 + 10, 2)
    assert store.device_totals(adb.conn, "default", before_ns=T0) == []
    row = json.loads(adb.conn.execute("SELECT snr_db_json FROM device_sightings").fetchone()[0])
    assert row == [20.0, None]
