"""`sdr-assets evaluate --reference rtl433|sigmf`: rtl_433 run on each recording as the reference,
and SigMF annotations scored by IoU in time x frequency (real files, the real rtl_433 binary)."""

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from sdr_assets_tests.helpers import assert_one_error_line

BIN = Path(sys.executable).parent
RTL433 = Path(__file__).resolve().parents[3] / "shared" / "data" / "rtl433"
needs_data = pytest.mark.skipif(not (RTL433 / "manifest.json").is_file(), reason=f"{RTL433} is absent")
needs_rtl433 = pytest.mark.skipif(
    shutil.which("rtl_433") is None, reason="needs rtl_433 (sudo apt-get install rtl-433)"
)
FC_HZ = 433.92e6
MAIN = re.compile(
    r"^(\d+) recordings, detector (\w+) \(([^)]*)\): recall (\d\.\d\d) \((\d+)/(\d+)\), "
    r"precision (\d\.\d\d) \((\d+)/(\d+)\)$",
    re.M,
)


def _evaluate(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "sdr-assets"), "evaluate", *args], capture_output=True, text=True, timeout=300, env=env
    )


def _summaries(stdout: str) -> dict[str, tuple[int, ...]]:
    """detector -> (recordings, tp, n_reference, tp, n_detections) from the main lines."""
    return {m[2]: (int(m[1]), int(m[5]), int(m[6]), int(m[8]), int(m[9])) for m in MAIN.finditer(stdout)}


def _synthetic_sigmf(folder: Path, seed: int, query: str) -> Path:
    """``synthetic://?seed=SEED&QUERY`` recorded through the source into SigMF with its ground truth."""
    from sdr_assets.capture.uri import open_source
    from sdr_assets.records import Annotation, Chunk
    from sdr_assets.sigmf import write_sigmf

    src = open_source(f"synthetic://?seed={seed}&rate=250000&center={FC_HZ:.0f}&{query}", realtime=False)
    info = src.open()
    iq, truth, t0_ns = [], [], None
    try:
        for ev in src.events():
            if isinstance(ev, Chunk):
                t0_ns = ev.t_start_ns if t0_ns is None else t0_ns
                iq.append(ev.iq)
            elif isinstance(ev, Annotation):
                truth.append(ev)
    finally:
        src.close()
    meta, _ = write_sigmf(
        folder / f"synth{seed}", b"".join(iq), info.sample_rate_hz, info.center_freq_hz, truth, datetime_ns=t0_ns
    )
    return meta


def _set_annotations(meta: Path, boxes: list[dict], fs: float = 250_000, edges: bool = True) -> None:
    """Replace the recording's annotations by ``boxes`` (evaluate's JSON lines: seconds, Hz)."""
    doc = json.loads(meta.read_text())
    anns = []
    for b in boxes:
        a = {
            "core:sample_start": round(b["t_start_s"] * fs),
            "core:sample_count": round((b["t_end_s"] - b["t_start_s"]) * fs),
            "core:label": b["label"],
        }
        if edges:
            a["core:freq_lower_edge"], a["core:freq_upper_edge"] = b["freq_lower_hz"], b["freq_upper_hz"]
        anns.append(a)
    doc["annotations"] = anns
    meta.write_text(json.dumps(doc))


@pytest.fixture
def scenarios(tmp_path):
    """Two seeded synthetic recordings: an ISM band (rtl_433-type devices) and a mixed band."""
    folder = tmp_path / "sigmf"
    folder.mkdir()
    metas = [
        _synthetic_sigmf(folder, 3, "profile=ism&duration_s=3"),
        _synthetic_sigmf(folder, 4, "profile=mixed&duration_s=3"),
    ]
    return folder, metas


def test_sigmf_reference_scores_annotations_by_iou(scenarios, tmp_path, data_root):
    folder, metas = scenarios
    truth = Counter(a["core:label"] for m in metas for a in json.loads(m.read_text())["annotations"])
    assert sum(truth.values()) >= 15 and {"ook", "fsk", "cw"} <= set(truth)
    out = tmp_path / "dets.jsonl"
    res = _evaluate("--recordings", str(folder), "--reference", "sigmf", "--out", str(out))
    assert res.returncode == 0, res.stderr
    n_ref = sum(truth.values())
    assert f"reference: SigMF annotations ({n_ref}; 0 without frequency edges" in res.stdout
    assert "IoU >= 0.50 in time x frequency" in res.stdout
    ((n_files, tp, refs, tp2, n_det),) = _summaries(res.stdout).values()
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert (n_files, refs, n_det) == (2, n_ref, len(lines)) and tp == tp2 == sum(d["matched"] for d in lines)
    assert 0 < tp < n_ref  # the energy detector's boxes are not the truth's (OOK bands come out wider)
    for label, n in truth.items():  # every class of the truth, with its count
        assert re.search(rf"{label} recall \d\.\d\d \(\d+/{n}\)", res.stdout), label
    assert re.search(r"AP50 \(any class\) \d\.\d\d; mAP50 n/a \(detector labels burst", res.stdout)
    first = _summaries(res.stdout)

    # detections written beside the truth as `sdr-assets export` does (origin "detection") are
    # not references: the same figures, and the output says they were left out
    for m in metas:
        doc = json.loads(m.read_text())
        doc["annotations"] += [
            {
                "core:sample_start": round(d["t_start_s"] * 250_000),
                "core:sample_count": 2500,
                "core:label": "burst",
                "sdr_assets:origin": "detection",
            }
            for d in lines
            if d["file"] == m.name.removesuffix(".sigmf-meta")
        ]
        m.write_text(json.dumps(doc))
    res = _evaluate("--recordings", str(folder), "--reference", "sigmf")
    assert _summaries(res.stdout) == first and f"; {n_det} exported detections left out)" in res.stdout

    # the energy detector's own boxes as the annotations: everything matches, AP 1; the class
    # "burst" is now a reference class, so mAP50 is defined
    for m in metas:
        _set_annotations(m, [d for d in lines if d["file"] == m.name.removesuffix(".sigmf-meta")])
    res = _evaluate("--recordings", str(folder), "--reference", "sigmf")
    assert res.returncode == 0, res.stderr
    assert _summaries(res.stdout)["energy"] == (2, n_det, n_det, n_det, n_det)
    assert "AP50 (any class) 1.00; mAP50 1.00 (burst 1.00)" in res.stdout

    # the same boxes moved to a band clear of the detection: frequency now decides
    for m in metas:
        moved = []
        for d in (x for x in lines if x["file"] == m.name.removesuffix(".sigmf-meta")):
            lo = FC_HZ + 100e3 if (d["freq_lower_hz"] + d["freq_upper_hz"]) / 2 < FC_HZ else FC_HZ - 120e3
            moved.append({**d, "freq_lower_hz": lo, "freq_upper_hz": lo + 20e3})
        _set_annotations(m, moved)
    res = _evaluate("--recordings", str(folder), "--reference", "sigmf")
    assert _summaries(res.stdout)["energy"][1] == 0, res.stdout
    # ... and without frequency edges they are matched in time alone, and said to be
    for m in metas:
        _set_annotations(m, [d for d in lines if d["file"] == m.name.removesuffix(".sigmf-meta")], edges=False)
    res = _evaluate("--recordings", str(folder), "--reference", "sigmf")
    assert f"({n_det}; {n_det} without frequency edges, matched in time only)" in res.stdout
    assert _summaries(res.stdout)["energy"][1] == n_det


@needs_rtl433
@needs_data
def test_rtl433_reference_is_rtl_433_run_on_each_file(tmp_path, data_root):
    """rtl_433 22.11 run here gives the packages the manifest holds (the manifest came from
    it): the same figures as --reference manifest on the same files."""
    manifest = json.loads((RTL433 / "manifest.json").read_text())["recordings"]
    n = 6
    res = _evaluate("--recordings", str(RTL433), "--reference", "rtl433", "--limit", str(n))
    assert res.returncode == 0, res.stderr
    n_bursts = sum(len(r["rtl_433_bursts"]) for r in manifest[:n])
    assert re.search(rf"reference: rtl_433 \d+\.\d+\S* -A packages \({n_bursts}; \d+ with a frequency", res.stdout)
    by_manifest = _evaluate("--recordings", str(RTL433), "--manifest", str(RTL433 / "manifest.json"), "--limit", str(n))
    assert by_manifest.returncode == 0, by_manifest.stderr
    assert _summaries(res.stdout)["energy"] == _summaries(by_manifest.stdout)["energy"]
    assert _summaries(res.stdout)["energy"][2] == n_bursts
    freq = re.search(r"time\+frequency: recall (\d\.\d\d) \((\d+)/(\d+)\).*\+- 40 kHz", res.stdout)
    assert freq and int(freq[3]) == n_bursts and int(freq[2]) <= _summaries(res.stdout)["energy"][1]
    # with no frequency tolerance rtl_433's estimate (biased towards the centre: GT-WT-02 sends
    # at -60 kHz, rtl_433 says -28 kHz) falls outside some detections' bands
    strict = _evaluate("--recordings", str(RTL433), "--reference", "rtl433", "--limit", str(n), "--freq-tol-hz", "0")
    strict_tp = int(re.search(r"time\+frequency: recall \d\.\d\d \((\d+)/", strict.stdout)[1])
    assert strict_tp < int(freq[2])


@needs_rtl433
@needs_data
def test_rtl433_reference_reads_sigmf_recordings_too(tmp_path, data_root):
    """A SigMF copy of a recording gives the same rtl_433 packages and the same matches."""
    from sdr_assets.sigmf import write_sigmf

    rec = next(
        r for r in json.loads((RTL433 / "manifest.json").read_text())["recordings"] if r["file"].startswith("GT-WT-02")
    )
    folder = tmp_path / "recs"
    folder.mkdir()
    shutil.copy(RTL433 / rec["file"], folder / rec["file"])
    write_sigmf(folder / "twin", (RTL433 / rec["file"]).read_bytes(), rec["sample_rate_hz"], rec["center_freq_hz"])
    out = tmp_path / "d.jsonl"
    res = _evaluate("--recordings", str(folder), "--reference", "rtl433", "--out", str(out))
    assert res.returncode == 0, res.stderr
    n = len(rec["rtl_433_bursts"])
    assert f"-A packages ({2 * n}; " in res.stdout
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    strip = [
        [(d["t_start_s"], d["matched"]) for d in lines if d["file"] == name]
        for name in (rec["file"], "twin.sigmf-meta")
    ]
    assert strip[0] == strip[1] and sum(m for _, m in strip[0]) == n


def test_bad_references_areassert_one_error_line(tmp_path, data_root):
    folder = tmp_path / "recs"
    folder.mkdir()
    (folder / "x_433.92M_250k.cu8").write_bytes(b"\x80" * 20_000)
    assert_one_error_line(
        _evaluate("--recordings", str(folder), "--reference", "sigmf"),
        "no SigMF recordings (*.sigmf-meta)",
        str(folder),
    )
    assert_one_error_line(
        _evaluate("--recordings", str(folder), "--reference", "annotations"),
        "'annotations' is not known",
        "manifest, rtl433, sigmf",
    )
    assert_one_error_line(_evaluate("--recordings", str(folder)), "--manifest FILE", "--reference rtl433")
    assert_one_error_line(_evaluate("--recordings", str(folder), "--reference", "manifest"), "needs --manifest")
    assert_one_error_line(
        _evaluate("--recordings", str(folder), "--reference", "sigmf", "--detector", "svm"), "--detector 'svm'"
    )
    # rtl_433 missing from PATH: the error names the Debian package before anything is ingested
    env = {
        "PATH": str(BIN),
        "SDR_ASSETS_HOME": str(data_root),
        "HOME": str(tmp_path),
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
    }
    assert_one_error_line(
        _evaluate("--recordings", str(folder), "--reference", "rtl433", env=env),
        "rtl_433 not found",
        "sudo apt-get install rtl-433",
    )
    assert not list(data_root.iterdir())


def test_yolo_beside_energy_in_one_run(scenarios, tmp_path, data_root):
    """--detector yolo,energy: the registry's current model and the energy detector on the same
    windows; the energy figures are those of an energy-only run."""
    pytest.importorskip("ultralytics")
    from sdr_assets.ml.labels import CLASSES
    from sdr_assets.ml.train import save_untrained
    from sdr_assets.store.registry import promote, register_model
    from sdr_assets.store.window import AnalysisDB

    folder, _ = scenarios
    weights = save_untrained(data_root / "models" / "untrained.pt")
    with AnalysisDB(data_root / "analysis.db"):
        pass
    register_model(data_root / "analysis.db", "untrained-1", weights, None, [], {"imgsz": 160}, {}, CLASSES)
    promote(data_root / "analysis.db", "untrained-1")
    out = tmp_path / "both.jsonl"
    both = _evaluate(
        "--recordings",
        str(folder),
        "--reference",
        "sigmf",
        "--detector",
        "yolo,energy",
        "--conf",
        "0.001",
        "--out",
        str(out),
    )
    assert both.returncode == 0, both.stderr
    alone = _evaluate("--recordings", str(folder), "--reference", "sigmf")
    got = _summaries(both.stdout)
    assert list(got) == ["yolo", "energy"] and got["energy"] == _summaries(alone.stdout)["energy"]
    assert "detector yolo (untrained-1)" in both.stdout
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert Counter(d["detector"] for d in lines) == {"yolo": got["yolo"][4], "energy": got["energy"][4]}
    assert all(d["label"] in CLASSES for d in lines if d["detector"] == "yolo")
