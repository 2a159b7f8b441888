"""`sdr-assets evaluate`: real recordings through capture -> window -> frames -> detections."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sdr_assets.dsp.detect import detect_bursts, match_bursts
from sdr_assets.dsp.iq import cu8_to_complex64

BIN = Path(sys.executable).parent
RTL433 = Path(__file__).resolve().parents[2] / "shared" / "data" / "rtl433"
needs_data = pytest.mark.skipif(not (RTL433 / "manifest.json").is_file(), reason=f"{RTL433} is absent")


def _evaluate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "sdr-assets"), "evaluate", *args], capture_output=True, text=True,
                          timeout=120)


@needs_data
def test_energy_on_two_recordings_writes_json_lines_and_scores(tmp_path, data_root):
    out = tmp_path / "dets.jsonl"
    res = _evaluate("--recordings", str(RTL433), "--manifest", str(RTL433 / "manifest.json"),
                    "--detector", "energy", "--out", str(out), "--limit", "2")
    assert res.returncode == 0, res.stderr
    m = re.search(r"2 recordings, detector energy .*recall (\d\.\d\d) \((\d+)/(\d+)\), "
                  r"precision (\d\.\d\d) \((\d+)/(\d+)\)", res.stdout)
    assert m, res.stdout
    assert "evaluate" in res.stderr and "2/2" in res.stderr  # the tqdm bar
    recs = json.loads((RTL433 / "manifest.json").read_text())["recordings"][:2]
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert {d["file"] for d in lines} == {r["file"] for r in recs}
    tp = fp = fn = 0
    for rec in recs:
        mine = [d for d in lines if d["file"] == rec["file"]]
        for d in mine:
            assert set(d) == {"file", "t_start_s", "t_end_s", "freq_lower_hz", "freq_upper_hz", "label", "confidence"}
            assert 0 <= d["t_start_s"] < d["t_end_s"] <= rec["duration_s"] + 1e-3 and d["label"] == "burst"
            assert d["freq_lower_hz"] < rec["center_freq_hz"] + 125e3 and d["freq_upper_hz"] > rec["center_freq_hz"] - 125e3
        counts = match_bursts([d["t_start_s"] for d in mine], [b["start_s"] for b in rec["rtl_433_bursts"]], 0.02)
        tp, fp, fn = tp + counts[0], fp + counts[1], fn + counts[2]
        # the chain runs the same detector on the same samples: the same starts as on the raw file
        x = cu8_to_complex64(np.fromfile(RTL433 / rec["file"], np.uint8))
        direct = [b.start_sample / rec["sample_rate_hz"] for b in detect_bursts(x, rec["sample_rate_hz"])]
        assert np.allclose(sorted(d["t_start_s"] for d in mine), direct, atol=1e-5)
    assert (int(m.group(2)), int(m.group(3))) == (tp, tp + fn)
    assert (int(m.group(5)), int(m.group(6))) == (tp, tp + fp)
    assert float(m.group(1)) >= 0.9  # the dsp engineer's figure on the whole set: recall 1.00


def test_yolo_without_a_model_and_a_bad_manifest_are_one_line_errors(tmp_path, data_root):
    (tmp_path / "rec").mkdir()
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"recordings": [{"file": "x_433.92M_250k.cu8"}]}))
    res = _evaluate("--recordings", str(tmp_path / "rec"), "--manifest", str(manifest), "--detector", "yolo",
                    "--out", str(tmp_path / "o.jsonl"))
    assert res.returncode == 2 and "detector_model" in res.stderr and "Traceback" not in res.stderr
    manifest.write_text(json.dumps({"files": []}))
    res = _evaluate("--recordings", str(tmp_path / "rec"), "--manifest", str(manifest), "--out",
                    str(tmp_path / "o.jsonl"))
    assert res.returncode == 2 and "'recordings'" in res.stderr
    manifest.write_text(json.dumps({"recordings": [{"file": "missing_433.92M_250k.cu8"}]}))
    res = _evaluate("--recordings", str(tmp_path / "rec"), "--manifest", str(manifest), "--out",
                    str(tmp_path / "o.jsonl"))
    assert res.returncode == 2 and "does not exist" in res.stderr
