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


def _tables(stdout: str) -> dict[str, dict[str, dict[str, str]]]:
    """detector -> class -> column -> cell, from each detector's per-class table."""
    out: dict[str, dict[str, dict[str, str]]] = {}
    detector, head = None, None
    for line in stdout.splitlines():
        if m := MAIN.match(line):
            detector, head = m[2], None
        elif line.startswith("  per class ("):
            head = [] if "centre frequency in the band" not in line else None  # the first table only
        elif head == [] and line.startswith("    class "):
            head = line.split()
        elif head and line.startswith("    "):
            cells = line.split()
            out.setdefault(detector, {})[cells[0]] = dict(zip(head, cells))
        else:
            head = None
    return out


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
    # by default energy and yolo; with no model in the registry yolo is said to be unavailable
    assert re.search(
        r"^detector yolo: unavailable: no analysis DB at \S+: .*materialise detector_model", res.stdout, re.M
    )
    assert not list(data_root.iterdir())  # looking for a model created nothing
    n_ref = sum(truth.values())
    assert f"reference: SigMF annotations ({n_ref}; 0 without frequency edges" in res.stdout
    assert "IoU >= 0.50 in time x frequency" in res.stdout
    ((n_files, tp, refs, tp2, n_det),) = _summaries(res.stdout).values()
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert (n_files, refs, n_det) == (2, n_ref, len(lines)) and tp == tp2 == sum(d["matched"] for d in lines)
    assert 0 < tp < n_ref  # the energy detector's boxes are not the truth's (OOK bands come out wider)
    # the per-class table, time x frequency: each reference class's recall (any detection),
    # the detection class's precision; energy's "burst" names no reference class
    assert "  per class (time x frequency, IoU >= 0.50):" in res.stdout
    table = _tables(res.stdout)["energy"]
    assert set(table) == set(truth) | {"burst"} and "same-class" not in table["burst"]
    for label, n in truth.items():  # every class of the truth, with its count
        row = table[label]
        assert row["references"] == str(n) and row["detections"] == row["precision"] == "-", row
        assert row["recall"] == f"{int(row['found']) / n:.2f}"
    assert sum(int(table[k]["found"]) for k in truth) == tp
    assert table["burst"]["detections"] == str(n_det) and table["burst"]["matched"] == str(tp)
    assert table["burst"]["references"] == "-" and table["burst"]["precision"] == f"{tp / n_det:.2f}"
    assert re.search(r"AP50 \(any class\) \d\.\d\d; mAP50 n/a \(detector labels burst", res.stdout)
    # beside it, the held-back contest's rule (band edges are a convention): its own figures and table
    band = re.search(
        r"time IoU >= 0.50 with the reference's centre frequency in the band \(the held-back contest's rule\): "
        r"recall (\S+) \((\d+)/(\d+)\), precision (\S+) \((\d+)/(\d+)\)",
        res.stdout,
    )
    assert band, res.stdout
    assert int(band[3]) == n_ref and int(band[6]) == n_det and 0 < int(band[2]) <= n_ref
    assert "  per class (time IoU >= 0.50 with the reference's centre frequency in the band):" in res.stdout
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
    # the per-class table holds the time-and-frequency figures (the manifest's: time only)
    assert (
        "  per class (time and frequency: start within 0.02 s, rtl_433's estimate in the band +- 40 kHz):" in res.stdout
    )
    assert "  per class (time only: start within 0.02 s (the reference has no frequencies)):" in by_manifest.stdout
    for out, tp in ((res.stdout, int(freq[2])), (strict.stdout, strict_tp)):
        table = _tables(out)["energy"]
        assert set(table) >= {"ook", "burst"} and table["burst"]["matched"] == str(tp)
        assert sum(int(table[k]["found"]) for k in table if k != "burst") == tp
        assert sum(int(table[k]["references"]) for k in table if k != "burst") == n_bursts


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
    assert_one_error_line(
        _evaluate("--recordings", str(folder), "--reference", "sigmf", "--detector", " , "), "use energy, yolo"
    )
    sig = tmp_path / "sig"
    sig.mkdir()
    (sig / "x.sigmf-meta").write_text("{}")
    # yolo asked for by name: no model is an error (named as the default it is only "unavailable")
    assert_one_error_line(
        _evaluate("--recordings", str(sig), "--reference", "sigmf", "--detector", "yolo"), "detector_model"
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
    # the default: energy and the registry's current model, side by side
    both = _evaluate("--recordings", str(folder), "--reference", "sigmf", "--conf", "0.001", "--out", str(out))
    assert both.returncode == 0, both.stderr
    alone = _evaluate("--recordings", str(folder), "--reference", "sigmf", "--detector", "energy")
    got = _summaries(both.stdout)
    assert list(got) == ["energy", "yolo"] and got["energy"] == _summaries(alone.stdout)["energy"]
    assert "detector yolo (untrained-1)" in both.stdout and "unavailable" not in both.stdout
    assert "yolo" not in _tables(alone.stdout) and _tables(alone.stdout)["energy"] == _tables(both.stdout)["energy"]
    # the model names the reference's classes: its table adds the same-class recall
    table = _tables(both.stdout)["yolo"]
    for row in table.values():
        assert set(row) == {
            "class",
            "references",
            "found",
            "recall",
            "same-class",
            "detections",
            "matched",
            "precision",
        }
        if row["references"] != "-":
            assert float(row["same-class"]) <= float(row["recall"])
    assert sum(int(r["detections"]) for r in table.values() if r["detections"] != "-") == got["yolo"][4]
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert Counter(d["detector"] for d in lines) == {"yolo": got["yolo"][4], "energy": got["energy"][4]}
    assert all(d["label"] in CLASSES for d in lines if d["detector"] == "yolo")


def test_class_table_recall_by_reference_class_and_precision_by_detection_class():
    from sdr_assets.cli.evaluation import class_table
    from sdr_assets.ml.scoring import Box, Tally, match_iou

    refs = [Box(0, 1, 100, 200, "ook"), Box(2, 3, 100, 200, "ook"), Box(4, 5, 100, 200, "cw")]
    dets = [Box(0, 1, 100, 200, "ook", 0.9), Box(2, 3, 100, 200, "cw", 0.8), Box(6, 7, 100, 200, "cw", 0.7)]
    t = Tally()
    t.add(dets, refs, match_iou(dets, refs), match_iou(dets, refs, same_label=True))
    head, *rows = class_table(t, "IoU")[1:]
    assert class_table(t, "IoU")[0] == "  per class (IoU):"
    assert head.split() == [
        "class",
        "references",
        "found",
        "recall",
        "same-class",
        "detections",
        "matched",
        "precision",
    ]
    # the cw detection at 2-3 s finds the second ook (any class) but no cw: same-class recall 0.50 for ook
    assert [r.split() for r in rows] == [
        ["cw", "1", "0", "0.00", "0.00", "2", "1", "0.50"],
        ["ook", "2", "2", "1.00", "0.50", "1", "1", "1.00"],
    ]
    # a class-agnostic detector ("burst"): no same-class column, "-" where a class is on one side only
    energy = [Box(b.t_start_s, b.t_end_s, 100, 200, "burst", 0.5) for b in dets]
    t = Tally()
    t.add(energy, refs, match_iou(energy, refs), match_iou(energy, refs, same_label=True))
    head, *rows = class_table(t, "IoU")[1:]
    assert "same-class" not in head and [r.split() for r in rows] == [
        ["burst", "-", "-", "-", "3", "2", "0.67"],
        ["cw", "1", "0", "0.00", "-", "-", "-"],
        ["ook", "2", "2", "1.00", "-", "-", "-"],
    ]
    assert class_table(Tally(), "IoU") == ["  per class (IoU): no references and no detections"]
