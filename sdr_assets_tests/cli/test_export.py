"""SigMF export of analysis windows: a real chain through Dagster exported by the CLI, a window
with a gap, a retune and a rate change (segments, recordings), bad input. Read back with the
`sigmf` package from PyPI and with this project's own file source."""

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from sdr_assets.capture.uri import open_source
from sdr_assets.records import NS_PER_S, Annotation, Chunk, Gap, SourceInfo
from sdr_assets.sigmf import SIGMF_VERSION

sigmf = pytest.importorskip("sigmf")
from sigmf import sigmffile  # noqa: E402

from sdr_assets_tests.helpers import materialize, pkey  # noqa: E402 - after the sigmf importorskip

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
RATE_HZ = 250_000


def _past_minute(minutes_ago: int) -> datetime:
    t = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return t.replace(second=0, microsecond=0)


def _read_back(meta_path: Path):
    """The recording through the `sigmf` package (schema + sha512 checked) and as plain JSON."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an undeclared extension namespace warns: make it fail
        rec = sigmffile.fromfile(str(meta_path))  # verifies core:sha512 against the data file
        rec.validate()
    return rec, json.loads(meta_path.read_text())


def _replay(meta_path: Path):
    """(chunks, gaps, annotations) as this project's file source reads the recording."""
    src = open_source(f"file://{meta_path}")
    src.open()
    try:
        events = list(src.events())
    finally:
        src.close()
    return (
        [e for e in events if isinstance(e, Chunk)],
        [e for e in events if isinstance(e, Gap)],
        [e for e in events if isinstance(e, Annotation)],
    )


def _stored(conn, key):
    rows = conn.execute(
        "SELECT t_start_ns, center_freq_hz, sample_rate_hz, iq FROM chunks "
        "WHERE partition_key = ? ORDER BY t_start_ns, seq",
        (key,),
    ).fetchall()
    return rows, hashlib.sha256(b"".join(r[3] for r in rows)).hexdigest()


def test_chain_export_with_truth_and_detections_round_trips(data_root, tmp_path, monkeypatch):
    """capture (ground truth) -> Dagster chain to detections -> `sdr-assets export` -> sigmf
    validates, every annotation and detection is there with its edges, bytes identical."""
    start = _past_minute(200)
    uri = (
        f"synthetic://?seed=21&rate={RATE_HZ}&kinds=cw,ook&emissions_per_s=2"
        f"&start={(start + timedelta(seconds=4)):%Y-%m-%dT%H:%M:%SZ}&duration_s=10"
    )
    env = dict(os.environ, SDR_ASSETS_PARTITION_MINUTES="1")
    out = subprocess.run(
        [str(BIN / "sdr-assets"), "capture", "--source", uri, "--no-realtime", "--partition-minutes", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    key = pkey(start.strftime("%Y-%m-%d-%H:%M"))
    res = materialize(["hot_snapshot", "iq_window", "spectrograms", "detections"], key)
    assert res.success

    conn = sqlite3.connect(data_root / "analysis.db")
    truth = conn.execute(
        "SELECT t_start_ns, t_end_ns, freq_lower_hz, freq_upper_hz, label FROM annotations "
        "WHERE partition_key = ? ORDER BY t_start_ns",
        (key,),
    ).fetchall()
    dets = conn.execute(
        "SELECT t_start_ns, t_end_ns, freq_lower_hz, freq_upper_hz, label, confidence, "
        "model_version, first_seq, last_seq FROM detections WHERE partition_key = ?",
        (key,),
    ).fetchall()
    rows, sha = _stored(conn, key)
    conn.close()
    assert len(truth) >= 8 and len(dets) >= 5

    dest = tmp_path / "export"
    # the bare time key is the default sensor's partition (its full key is 'default|...')
    out = subprocess.run(
        [str(BIN / "sdr-assets"), "export", "--partition", key.split("|")[1], "--out", str(dest)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    meta_path = dest / f"{key.replace(':', '').replace('|', '_')}.sigmf-meta"
    assert str(meta_path) in out.stdout and f"{len(truth)} ground truth" in out.stdout

    rec, doc = _read_back(meta_path)
    assert rec.get_global_field("core:datatype") == "cu8"
    assert rec.get_global_field("core:sample_rate") == RATE_HZ
    assert {"name": "sdr_assets", "version": "1.0.0", "optional": True} in doc["global"]["core:extensions"]
    assert doc["global"]["core:version"] == SIGMF_VERSION  # one version: write_sigmf() declares it too
    t0_ns = rows[0][0]
    caps = rec.get_captures()
    assert len(caps) == 1 and caps[0]["core:frequency"] == rows[0][1]
    assert caps[0]["core:datetime"].startswith(start.strftime("%Y-%m-%dT%H:%M:0"))
    n_samples = sum(len(r[3]) // 2 for r in rows)
    assert rec.sample_count == n_samples
    anns = rec.get_annotations()
    assert len(anns) == len(truth) + len(dets)
    assert [a["core:sample_start"] for a in anns] == sorted(a["core:sample_start"] for a in anns)
    got_truth = sorted(
        (
            a["core:sample_start"],
            a["core:sample_count"],
            a["core:freq_lower_edge"],
            a["core:freq_upper_edge"],
            a["core:label"],
        )
        for a in anns
        if a["sdr_assets:origin"] == "synthetic"
    )

    def to_sample(t_ns):
        return min(n_samples, max(0, round((t_ns - t0_ns) * RATE_HZ / NS_PER_S)))

    want_truth = sorted((to_sample(a), to_sample(b) - to_sample(a), lo, hi, lab) for a, b, lo, hi, lab in truth)
    assert got_truth == want_truth
    got_det = sorted(
        (
            a["core:sample_start"],
            a["core:freq_lower_edge"],
            a["core:freq_upper_edge"],
            a["core:label"],
            a["sdr_assets:confidence"],
            a["sdr_assets:model_version"],
            a["sdr_assets:first_seq"],
            a["sdr_assets:last_seq"],
        )
        for a in anns
        if a["sdr_assets:origin"] == "detection"
    )
    want_det = sorted(
        (to_sample(a), lo, hi, lab, round(conf, 4), ver, q0, q1) for a, b, lo, hi, lab, conf, ver, q0, q1 in dets
    )
    assert got_det == want_det
    assert all(
        a["core:generator"] == "sdr_assets detector energy" for a in anns if a["sdr_assets:origin"] == "detection"
    )

    chunks, gaps, replayed_anns = _replay(meta_path)
    assert hashlib.sha256(b"".join(c.iq for c in chunks)).hexdigest() == sha
    assert (
        hashlib.sha256((dest / f"{key.replace(':', '').replace('|', '_')}.sigmf-data").read_bytes()).hexdigest() == sha
    )
    assert chunks[0].t_start_ns == t0_ns and not gaps
    assert len(replayed_anns) == len(anns)

    runner = CliRunner()
    from sdr_assets.cli import main

    bare = tmp_path / "bare"
    r = runner.invoke(main, ["export", "--partition", key, "--out", str(bare), "--no-annotations"])
    assert r.exit_code == 0, r.output
    rec2, doc2 = _read_back(bare / meta_path.name)
    assert doc2["annotations"] == [] and rec2.sample_count == n_samples


def _hot_with_gap_retune_and_rate_change(hot: Path, t0_ns: int):
    """4 chunks at 433.92 MHz, 1000 samples lost (gap), 3 chunks, a retune to 434.00 MHz
    (contiguous in time), 2 chunks, then 2 chunks at a new rate of 1.024 MS/s."""
    from sdr_assets.store.hot import HotWriter

    rng = np.random.default_rng(0)
    n = 25_000  # samples a chunk (0.1 s)
    info = SourceInfo("test://", "synthetic", 433.92e6, RATE_HZ)
    chunks, t = [], t0_ns
    for i in range(11):
        fs = RATE_HZ if i < 9 else 1_024_000
        fc = 433.92e6 if i < 7 else 434.0e6
        if i == 4:
            gap = Gap(t, 1000, RATE_HZ, "ring_overflow", "test")
            t = gap.t_end_ns
        c = Chunk(t, fc, fs, None, rng.integers(0, 256, 2 * n, dtype=np.uint8).tobytes())
        chunks.append(c)
        t = c.t_end_ns
    anns = [  # across the gap; inside the gap only; past the end of the samples
        Annotation(chunks[3].t_start_ns + 10**6, chunks[4].t_start_ns + 10**6, 433.9e6, 433.95e6, "ook"),
        Annotation(gap.t_start_ns + 10, gap.t_end_ns - 10, 433.9e6, 433.95e6, "cw"),
        Annotation(chunks[8].t_start_ns + 10**6, chunks[10].t_end_ns + 10**8, 433.99e6, 434.01e6, "fsk"),
    ]
    with HotWriter(hot) as w:
        cid = w.begin_capture(info, t0_ns)
        w.write_batch(cid, chunks[:4], [gap], anns)
        w.write_batch(cid, chunks[4:])
    return chunks, gap, anns


def test_gap_retune_and_rate_change_become_segments_and_recordings(data_root, tmp_path):
    from sdr_assets.sigmf.export import export_partition
    from sdr_assets.store.snapshot import take_snapshot
    from sdr_assets.store.window import AnalysisDB

    t0_ns = int(_past_minute(300).timestamp()) * NS_PER_S + 5 * NS_PER_S
    chunks, gap, anns = _hot_with_gap_retune_and_rate_change(data_root / "hot.db", t0_ns)
    snap = data_root / "snapshots" / "hot-x.db"
    snap.parent.mkdir()
    take_snapshot(data_root / "hot.db", snap, nice=0)
    key = "2026-01-01-00:00"
    with AnalysisDB(data_root / "analysis.db") as db:
        db.load_window(snap, key, t0_ns - NS_PER_S, t0_ns + 60 * NS_PER_S, keep_partitions=4)

    res = export_partition(data_root / "analysis.db", key, tmp_path / "out")
    assert [r.meta_path.name for r in res.recordings] == [
        "2026-01-01-0000_r1.sigmf-meta",
        "2026-01-01-0000_r2.sigmf-meta",
    ]
    assert res.n_bytes == sum(len(c.iq) for c in chunks) and res.n_outside == 1  # the one in the gap

    first, second = res.recordings
    rec, doc = _read_back(first.meta_path)
    caps = doc["captures"]
    assert [c["core:sample_start"] for c in caps] == [0, 100_000, 175_000]
    assert [c["core:global_index"] for c in caps] == [0, 101_000, 176_000]  # 1000 lost before segment 2
    assert [c["core:frequency"] for c in caps] == [433.92e6, 433.92e6, 434.0e6]
    assert [(c["sdr_assets:first_seq"], c["sdr_assets:last_seq"]) for c in caps] == [(1, 4), (5, 7), (8, 9)]
    a = doc["annotations"]
    assert [x["core:label"] for x in a] == ["ook", "fsk"]
    # ook: 1 ms before the gap (250 samples) + 1 ms after it, the lost samples not counted
    assert a[0]["core:sample_start"] == 100_000 - 25_000 + 250 and a[0]["core:sample_count"] == 25_000
    assert "sdr_assets:clipped" not in a[0]
    assert a[1]["core:sample_start"] == 175_000 + 25_000 + 250 and a[1]["sdr_assets:clipped"] is True
    assert a[1]["core:sample_count"] == 25_000 - 250  # to the end of this recording's samples

    rec2, doc2 = _read_back(second.meta_path)
    assert doc2["global"]["core:sample_rate"] == 1_024_000 and rec2.sample_count == 50_000
    assert [x["core:label"] for x in doc2["annotations"]] == ["fsk"]
    assert doc2["annotations"][0]["core:sample_start"] == 0  # its part at the new rate, clipped

    got, gaps, _ = _replay(first.meta_path)
    assert b"".join(c.iq for c in got) == b"".join(c.iq for c in chunks[:9])
    assert [(c.t_start_ns, c.center_freq_hz) for c in got[:1]] == [(chunks[0].t_start_ns, 433.92e6)]
    assert len(gaps) == 1 and gaps[0].n_samples_lost == 1000 and gaps[0].cause == "recording_gap"
    assert {c.t_start_ns for c in got} >= {chunks[4].t_start_ns, chunks[7].t_start_ns}
    got2, _, _ = _replay(second.meta_path)
    assert b"".join(c.iq for c in got2) == b"".join(c.iq for c in chunks[9:])
    assert got2[0].t_start_ns == chunks[9].t_start_ns and got2[0].sample_rate_hz == 1_024_000


def test_export_bad_input_says_what_to_do(data_root, tmp_path):
    from sdr_assets.cli import main

    runner = CliRunner()
    r = runner.invoke(main, ["export", "--partition", "2026-01-01-00:00", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "no analysis DB" in r.output and "materialise iq_window" in r.output

    t0_ns = int(_past_minute(300).timestamp()) * NS_PER_S
    _hot_with_gap_retune_and_rate_change(data_root / "hot.db", t0_ns)
    from sdr_assets.store.snapshot import take_snapshot
    from sdr_assets.store.window import AnalysisDB

    snap = tmp_path / "snap.db"
    take_snapshot(data_root / "hot.db", snap, nice=0)
    with AnalysisDB(data_root / "analysis.db") as db:
        db.load_window(snap, "default|2026-01-01-00:00", t0_ns, t0_ns + 60 * NS_PER_S, keep_partitions=4)
        db.load_window(
            snap, "default|2026-01-01-00:05", t0_ns + 3600 * NS_PER_S, t0_ns + 3660 * NS_PER_S, keep_partitions=4
        )

    r = runner.invoke(main, ["export", "--partition", "2026-01-02-00:00", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2
    assert "'default|2026-01-02-00:00' is not in the analysis DB" in r.output
    assert "it holds: default|2026-01-01-00:00, default|2026-01-01-00:05" in r.output
    r = runner.invoke(
        main, ["export", "--sensor", "roof", "--partition", "2026-01-01-00:00", "--out", str(tmp_path / "o")]
    )
    assert r.exit_code == 2 and "sensor 'roof' is not registered" in r.output
    assert "sdr-assets sensors add roof" in r.output

    r = runner.invoke(main, ["export", "--partition", "2026-01-01-00:05", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "holds no samples" in r.output

    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    r = runner.invoke(main, ["export", "--partition", "2026-01-01-00:00", "--out", str(a_file)])
    assert r.exit_code == 2 and "is a file; pass a folder" in r.output
    assert a_file.read_text() == "x"
