"""`export` and `report` on real RTL-SDR recordings (../shared/data/rtl433), not only on the
synthetic band: a recording goes through the capture service into a hot DB, through a
snapshot into an analysis window, and out again as SigMF byte for byte; a real-time replay's
telemetry becomes the report's chart. Skipped where ../shared is absent (a user's clone)."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from sdr_assets_tests.cli.test_export import _read_back
from sdr_assets_tests.cli.test_report import _panels

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "rtl433"
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.skipif(
    not (SHARED / "manifest.json").is_file(), reason="needs ../shared/data/rtl433 (real recordings)"
)


def _recording(name_part: str) -> dict:
    recs = json.loads((SHARED / "manifest.json").read_text())["recordings"]
    return next(r for r in recs if name_part in r["file"])


def test_export_of_a_real_recording_is_byte_exact_sigmf_with_detections(data_root, tmp_path):
    from sdr_assets.cli.evaluation import PARTITION_KEY, ingest
    from sdr_assets.ml.detections import detect_partition
    from sdr_assets.paths import DataPaths
    from sdr_assets.sigmf.export import export_partition
    from sdr_assets.store.window import AnalysisDB

    rec = _recording("GT-WT-02")
    paths = DataPaths(data_root)
    ingest(
        SHARED / rec["file"],
        paths,
        sample_rate_hz=rec["sample_rate_hz"],
        center_freq_hz=rec["center_freq_hz"],
        nfft=640,
        hop=640,
        frame_cols=640,
    )
    with AnalysisDB(paths.analysis_db) as db:  # the energy detector's boxes, as the asset writes them
        st, _ = detect_partition(db, PARTITION_KEY, paths.root)
    assert st.n_detections >= 3  # the sensor's repeated packets

    res = export_partition(paths.analysis_db, PARTITION_KEY, tmp_path / "out")
    (one,) = res.recordings
    sigmf_rec, doc = _read_back(one.meta_path)  # schema and sha512 checked by the sigmf package
    data = one.meta_path.with_suffix(".sigmf-data").read_bytes()
    # the recording's own bytes (sha256 from the manifest), not a copy that merely looks right
    assert hashlib.sha256(data).hexdigest() == rec["sha256"]
    assert sigmf_rec.sample_count == rec["n_samples"]
    assert doc["global"]["core:sample_rate"] == rec["sample_rate_hz"]
    assert doc["captures"][0]["core:frequency"] == rec["center_freq_hz"]
    dets = [a for a in doc["annotations"] if a["sdr_assets:origin"] == "detection"]
    assert len(dets) == st.n_detections and all(a["sdr_assets:model_version"] == "energy" for a in dets)
    # each detection sits on the rtl_433 bursts: its start within 20 ms of a reference start
    fs = rec["sample_rate_hz"]
    starts = [b["start_sample"] for b in rec["rtl_433_bursts"]]
    near = [a for a in dets if min(abs(a["core:sample_start"] - s) for s in starts) <= 0.02 * fs]
    assert len(near) >= len(starts) - 1


def test_report_charts_the_telemetry_of_a_real_recording_replayed_in_real_time(data_root, tmp_path):
    rec = _recording("GT-WT-02")
    out = subprocess.run(
        [
            str(BIN / "sdr-assets"),
            "capture",
            "--source",
            f"file://{SHARED / rec['file']}",
            "--loop",
            "--realtime",
            "--duration-s",
            "4",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    chart = tmp_path / "report.png"
    rep = subprocess.run(
        [str(BIN / "sdr-assets"), "report", "--plot", str(chart), "--since-minutes", "10"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rep.returncode == 0, rep.stderr
    assert "from 1 capture(s)" in rep.stdout and "samples lost: 0 since each capture started" in rep.stdout
    assert "8 panels" in rep.stdout and _panels(chart.read_bytes()) == 8
