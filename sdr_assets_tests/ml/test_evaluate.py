"""`sdr-assets evaluate`: real recordings through capture -> window -> frames -> detections."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sdr_assets.dsp.detect import OWN_HOP, OWN_NFFT, OWN_POOL, OWN_SMOOTH_COLS, detect_bursts, match_bursts
from sdr_assets.dsp.iq import cu8_to_complex64

BIN = Path(sys.executable).parent
RTL433 = Path(__file__).resolve().parents[3] / "shared" / "data" / "rtl433"
needs_data = pytest.mark.skipif(not (RTL433 / "manifest.json").is_file(), reason=f"{RTL433} is absent")


def _evaluate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "sdr-assets"), "evaluate", *args], capture_output=True, text=True, timeout=120)


@needs_data
def test_energy_on_two_recordings_writes_json_lines_and_scores(tmp_path, data_root):
    out = tmp_path / "dets.jsonl"
    res = _evaluate(
        "--recordings",
        str(RTL433),
        "--manifest",
        str(RTL433 / "manifest.json"),
        "--detector",
        "energy",
        "--out",
        str(out),
        "--limit",
        "2",
    )
    assert res.returncode == 0, res.stderr
    m = re.search(
        r"2 recordings, detector energy .*recall (\d\.\d\d) \((\d+)/(\d+)\), "
        r"precision (\d\.\d\d) \((\d+)/(\d+)\)",
        res.stdout,
    )
    assert m, res.stdout
    assert "evaluate" in res.stderr and "2/2" in res.stderr  # the tqdm bar
    recs = json.loads((RTL433 / "manifest.json").read_text())["recordings"][:2]
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert {d["file"] for d in lines} == {r["file"] for r in recs}
    tp = fp = fn = 0
    for rec in recs:
        mine = [d for d in lines if d["file"] == rec["file"]]
        for d in mine:
            assert (
                set(d)
                == {
                    "file",
                    "detector",
                    "t_start_s",
                    "t_end_s",
                    "freq_lower_hz",
                    "freq_upper_hz",
                    "label",
                    "confidence",
                    "matched",
                }
                and d["detector"] == "energy"
            )
            assert 0 <= d["t_start_s"] < d["t_end_s"] <= rec["duration_s"] + 1e-3 and d["label"] == "burst"
            assert (
                d["freq_lower_hz"] < rec["center_freq_hz"] + 125e3
                and d["freq_upper_hz"] > rec["center_freq_hz"] - 125e3
            )
        counts = match_bursts([d["t_start_s"] for d in mine], [b["start_s"] for b in rec["rtl_433_bursts"]], 0.02)
        tp, fp, fn = tp + counts[0], fp + counts[1], fn + counts[2]
        # the chain runs the same detector on the same samples: the same starts as on the raw file
        # (at 250 kS/s the window path's own STFT: 256/64 pooled 2 x 2, no DC removal)
        x = cu8_to_complex64(np.fromfile(RTL433 / rec["file"], np.uint8))
        own = dict(nfft=OWN_NFFT, hop=OWN_HOP, pool_bins=OWN_POOL, pool_cols=OWN_POOL, smooth_cols=OWN_SMOOTH_COLS)
        direct = [
            b.start_sample / rec["sample_rate_hz"]
            for b in detect_bursts(x, rec["sample_rate_hz"], remove_dc=False, **own)
        ]
        assert np.allclose(sorted(d["t_start_s"] for d in mine), direct, atol=1e-5)
    assert (int(m.group(2)), int(m.group(3))) == (tp, tp + fn) and sum(d["matched"] for d in lines) == tp
    assert (int(m.group(5)), int(m.group(6))) == (tp, tp + fp)
    assert float(m.group(1)) >= 0.9  # the dsp engineer's figure on the whole set: recall 1.00


def test_yolo_without_a_model_and_a_bad_manifest_are_one_line_errors(tmp_path, data_root):
    (tmp_path / "rec").mkdir()
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"recordings": [{"file": "x_433.92M_250k.cu8"}]}))
    res = _evaluate(
        "--recordings",
        str(tmp_path / "rec"),
        "--manifest",
        str(manifest),
        "--detector",
        "yolo",
        "--out",
        str(tmp_path / "o.jsonl"),
    )
    assert res.returncode == 2 and "detector_model" in res.stderr and "Traceback" not in res.stderr
    manifest.write_text(json.dumps({"files": []}))
    res = _evaluate(
        "--recordings", str(tmp_path / "rec"), "--manifest", str(manifest), "--out", str(tmp_path / "o.jsonl")
    )
    assert res.returncode == 2 and "'recordings'" in res.stderr
    manifest.write_text(json.dumps({"recordings": [{"file": "missing_433.92M_250k.cu8"}]}))
    res = _evaluate(
        "--recordings", str(tmp_path / "rec"), "--manifest", str(manifest), "--out", str(tmp_path / "o.jsonl")
    )
    assert res.returncode == 2 and "does not exist" in res.stderr


def _ingested(tmp_path, prefix="GT-WT-02"):
    """The recording whose name starts with ``prefix`` through the evaluate chain: (manifest
    entry, DataPaths, first sample ns, the open analysis DB, its one frame)."""
    from sdr_assets.cli.evaluation import PARTITION_KEY, ingest
    from sdr_assets.paths import DataPaths
    from sdr_assets.store.window import AnalysisDB

    rec = next(
        r for r in json.loads((RTL433 / "manifest.json").read_text())["recordings"] if r["file"].startswith(prefix)
    )
    paths = DataPaths(tmp_path / "root")
    paths.root.mkdir()
    t0_ns, _ = ingest(
        RTL433 / rec["file"],
        paths,
        sample_rate_hz=rec["sample_rate_hz"],
        center_freq_hz=rec["center_freq_hz"],
        nfft=640,
        hop=640,
        frame_cols=640,
    )
    db = AnalysisDB(paths.analysis_db)
    db.open()
    (frame,) = db.frames(PARTITION_KEY)
    return rec, paths, t0_ns, db, frame


@needs_data
def test_loose_model_boxes_get_packet_edges_from_the_iq(tmp_path):
    """detect_partition's model path on a real recording: boxes 3 columns (~8 ms) too wide, one
    over a sync pulse AND its packet, one 10 columns (26 ms) late that also holds the next sync
    pulse, a duplicate; refined on the IQ they land on rtl_433's four starts, once each."""
    from sdr_assets.cli.evaluation import PARTITION_KEY
    from sdr_assets.ml.detections import detect_partition
    from sdr_assets.ml.infer import Detection
    from sdr_assets.ml.labels import BoxGeometry, annotation_to_pixels

    rec, paths, t0_ns, db, frame = _ingested(tmp_path)
    conn = db.conn
    refs = rec["rtl_433_bursts"]  # a 0.7 ms sync, 13.6 ms silence, a 204 ms packet; then 4.8 ms + 204 ms
    geom = BoxGeometry.of(frame)
    band = (rec["center_freq_hz"] - 80e3, rec["center_freq_hz"] - 40e3)  # GT-WT-02 sends ~60 kHz below centre

    def pixels(start_s, end_s, late_cols=0.0, wide_cols=3.0):
        x0, y0, x1, y1 = annotation_to_pixels(
            geom, t0_ns + int(start_s * 1e9), t0_ns + int(end_s * 1e9), *band, min_px=0
        )
        return x0 - wide_cols + late_cols, y0, x1 + wide_cols + late_cols, y1

    boxes = [
        Detection("ook", 0.9, *pixels(refs[0]["start_s"], refs[1]["end_s"])),  # sync + packet as one
        Detection("ook", 0.8, *pixels(refs[3]["start_s"], refs[3]["end_s"], late_cols=10)),
        Detection("ook", 0.5, *pixels(refs[3]["start_s"] + 0.05, refs[3]["end_s"] - 0.05)),
    ]  # a duplicate

    stats, rows = detect_partition(
        db,
        PARTITION_KEY,
        paths.root,
        detector=lambda imgs: [boxes for _ in imgs],
        model_version="stub",
        detector_name="stub",
        write=True,
    )
    starts = sorted((r.t_start_ns - t0_ns) / 1e9 for r in rows)
    assert np.allclose(starts, [refs[i]["start_s"] for i in (0, 1, 3, 4)], atol=1e-3), starts
    assert (stats.n_refined, stats.n_split, stats.n_suppressed) == (5, 2, 1)
    assert all(r.first_seq <= r.last_seq for r in rows)
    assert conn.execute("SELECT count(*) FROM detections WHERE model_version = 'stub'").fetchone()[0] == 4
    # the same boxes without refinement keep the model's loose edges: ~8 ms early and ~18 ms late
    _, raw = detect_partition(
        db,
        PARTITION_KEY,
        paths.root,
        detector=lambda imgs: [boxes for _ in imgs],
        model_version="stub",
        write=False,
        refine=None,
    )
    assert len(raw) == 2 and not np.allclose(
        sorted((r.t_start_ns - t0_ns) / 1e9 for r in raw), [refs[0]["start_s"], refs[3]["start_s"]], atol=5e-3
    )
    db.close()


@needs_data
def test_single_transmitter_filters_drop_image_and_empty_band_boxes(tmp_path):
    """detect_partition's filters for model boxes on a real recording (GT-WT-02, ~60 kHz below
    centre): a box on the packet, one on its mirror image at the same time, one over an empty
    band. suppress_across_freq drops the image box (more than half inside the stronger box in
    time), require_energy the empty-band box; by default both stay."""
    from sdr_assets.cli.evaluation import PARTITION_KEY
    from sdr_assets.ml.detections import detect_partition
    from sdr_assets.ml.infer import Detection
    from sdr_assets.ml.labels import BoxGeometry, annotation_to_pixels

    rec, paths, t0_ns, db, frame = _ingested(tmp_path)
    ref = rec["rtl_433_bursts"][1]  # a 204 ms packet
    fc = rec["center_freq_hz"]

    def det(conf, lo_khz, hi_khz, start_s=ref["start_s"], end_s=ref["end_s"]):
        px = annotation_to_pixels(
            BoxGeometry.of(frame),
            t0_ns + int(start_s * 1e9),
            t0_ns + int(end_s * 1e9),
            fc + lo_khz * 1e3,
            fc + hi_khz * 1e3,
            min_px=0,
        )
        return Detection("ook", conf, *px)

    boxes = [det(0.9, -80, -40), det(0.6, 40, 80), det(0.5, 15, 30, ref["end_s"] + 0.01, ref["end_s"] + 0.1)]

    def run(**kw):
        st, rows = detect_partition(
            db,
            PARTITION_KEY,
            paths.root,
            detector=lambda imgs: [boxes for _ in imgs],
            model_version="stub",
            write=False,
            **kw,
        )
        return st, sorted((r.freq_lower_hz - fc) / 1e3 for r in rows)

    _, default = run()
    assert len(default) == 3  # packet, image, empty band: different bands, nothing suppressed
    st, energy = run(require_energy=True)
    assert st.n_unconfirmed >= 1 and 15 not in [round(f) for f in energy]
    _, across = run(suppress_across_freq=True)
    assert [round(f) for f in across] == [-80, 15]  # the image box went, the later empty-band box stayed
    st, both = run(require_energy=True, suppress_across_freq=True)
    assert [round(f) for f in both] == [-80]
    with pytest.raises(ValueError, match="refine"):
        run(require_energy=True, refine=None)
    db.close()


@needs_data
def test_refine_reads_more_context_for_a_long_package(tmp_path):
    """prologue: rtl_433 reports ONE 0.87 s package (repeats merged by its gap rule). A model box
    on the last repeat alone, refined with 0.5 s of context, would start mid-package; the read
    grows until the package's start is inside it, so the box starts where rtl_433's does."""
    from sdr_assets.cli.evaluation import PARTITION_KEY
    from sdr_assets.ml.detections import refine_boxes
    from sdr_assets.ml.postprocess import REFINE, DetectionBox

    rec, _, t0_ns, db, _ = _ingested(tmp_path, "prologue")
    (ref,) = rec["rtl_433_bursts"]
    fc = rec["center_freq_hz"]
    last = DetectionBox(t0_ns + int(0.896e9), t0_ns + int(0.958e9), fc + 6e3, fc + 16e3, "ook", 0.4)
    assert ref["start_s"] < 0.896 - REFINE.context_s  # the package starts outside the first read
    (r,) = refine_boxes(db, PARTITION_KEY, [last])
    assert r.refined and abs((r.t_start_ns - t0_ns) / 1e9 - ref["start_s"]) < 1e-3
    assert abs((r.t_end_ns - t0_ns) / 1e9 - ref["end_s"]) < 2e-3
    db.close()
