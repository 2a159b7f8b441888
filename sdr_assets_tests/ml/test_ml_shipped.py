"""The shipped model: a fresh data root registers it as current once (also when two processes
race), the registry row points at copies under models/, it can be turned off, and without
its files nothing changes. A stand-in (untrained weights, its ONNX export, a card) plays it."""

import json
import multiprocessing
import os
import shutil
from datetime import UTC, datetime, timedelta

import pytest

from sdr_assets.errors import ModelError
from sdr_assets.ml import shipped_model
from sdr_assets.ml.labels import CLASSES
from sdr_assets.ml.shipped_model import ensure_shipped_model
from sdr_assets.paths import DataPaths
from sdr_assets.store import registry
from sdr_assets.store.window import AnalysisDB
from sdr_assets_tests.ml.test_ml_pipeline import no_network  # noqa: F401 - the network-blocking fixture

VERSION = "shipped-20261201T020000-yolo11n"


@pytest.fixture(scope="session")
def stand_in(tmp_path_factory):
    """A folder laid out as sdr_assets/ml/shipped/ is: detector.pt, detector.onnx, model_card.json."""
    from sdr_assets.ml.train import export_onnx, save_untrained

    folder = tmp_path_factory.mktemp("shipped")
    weights = save_untrained(folder / "detector.pt")
    onnx = export_onnx(weights, imgsz=64)
    assert onnx == folder / "detector.onnx"
    card = {
        "version": VERSION,
        "classes": list(CLASSES),
        "imgsz": 64,
        "architecture": "yolo11n.yaml",
        "metrics_val": {"all": {"precision": 0.5, "recall": 0.4, "map50": 0.3, "map50_95": 0.1}, "cw": {"map50": 0.2}},
    }
    (folder / "model_card.json").write_text(json.dumps(card))
    return folder


@pytest.fixture
def shipped(stand_in, monkeypatch):
    monkeypatch.delenv(shipped_model.ENV_OFF, raising=False)  # conftest turns it off for the suite
    monkeypatch.setenv(shipped_model.ENV_DIR, str(stand_in))
    return stand_in


def test_a_fresh_root_registers_the_shipped_model_once(shipped, data_root):
    paths = DataPaths(data_root)
    with AnalysisDB(paths.analysis_db) as db:
        got = ensure_shipped_model(db, paths)
        assert got.registered and got.version == VERSION and VERSION in got.note
        row = registry.current_model(db)
        assert row.version == VERSION and row.is_current and row.classes == CLASSES
        assert (
            row.params["shipped"] is True
            and row.params["imgsz"] == 64
            and row.params["model_card"]["version"] == VERSION
        )
        assert row.metrics == {"precision": 0.5, "recall": 0.4, "map50": 0.3, "map50_95": 0.1}
        # the row points at copies in the data root, byte for byte the shipped files
        assert row.path == str(paths.models / VERSION / "detector.pt")
        assert row.onnx_path == str(paths.models / VERSION / "detector.onnx")
        for name in ("detector.pt", "detector.onnx", "model_card.json"):
            assert (paths.models / VERSION / name).read_bytes() == (shipped / name).read_bytes()
        assert not [p for p in (paths.models / VERSION).iterdir() if p.name.endswith(".tmp")]
        # again: nothing to do
        again = ensure_shipped_model(db, paths)
        assert not again.registered and again.note == "" and len(registry.list_models(db)) == 1
        # a trained model promoted later stays current: the shipped one never comes back by itself
        registry.register_model(db, "v2", row.path, row.onnx_path, [], {"imgsz": 64}, {}, CLASSES)
        registry.promote(db, "v2")
        assert not ensure_shipped_model(db, paths).registered and registry.current_model(db).version == "v2"


def test_the_shipped_model_detects(shipped, data_root, no_network):
    from sdr_assets.ml.infer import OnnxDetector, load_detector

    paths = DataPaths(data_root)
    with AnalysisDB(paths.analysis_db) as db:
        ensure_shipped_model(db, paths)
        det = load_detector(registry.current_model(db))
    assert isinstance(det, OnnxDetector) and det.imgsz == 64 and det.classes == CLASSES
    import numpy as np

    assert len(det([np.zeros((64, 64), dtype=np.uint8)])) == 1


def test_off_missing_or_broken(shipped, data_root, monkeypatch, tmp_path):
    paths = DataPaths(data_root)
    with AnalysisDB(paths.analysis_db) as db:
        monkeypatch.setenv(shipped_model.ENV_OFF, "1")
        got = ensure_shipped_model(db, paths)
        assert not got.registered and got.version is None and "SDR_ASSETS_NO_SHIPPED_MODEL=1" in got.note
        assert not shipped_model.shipped_available()
        monkeypatch.delenv(shipped_model.ENV_OFF)

        partial = tmp_path / "partial"
        partial.mkdir()
        shutil.copy(shipped / "model_card.json", partial)
        monkeypatch.setenv(shipped_model.ENV_DIR, str(partial))
        got = ensure_shipped_model(db, paths)
        assert not got.registered and "detector.pt, detector.onnx missing" in got.note and str(partial) in got.note

        broken = tmp_path / "broken"
        shutil.copytree(shipped, broken)
        (broken / "model_card.json").write_text(json.dumps({"version": "x", "classes": []}))
        monkeypatch.setenv(shipped_model.ENV_DIR, str(broken))
        with pytest.raises(ModelError, match="lacks imgsz, metrics_val"):
            ensure_shipped_model(db, paths)
        assert registry.list_models(db) == [] and not paths.models.exists()


def test_the_package_folder_is_the_default(monkeypatch):
    monkeypatch.delenv(shipped_model.ENV_DIR, raising=False)
    folder = shipped_model.shipped_dir()
    assert folder.parent.name == "ml" and folder.name == "shipped" and (folder.parent / "shipped_model.py").is_file()


def _ensure_in_another_process(root: str, barrier, results) -> None:
    from pathlib import Path

    paths = DataPaths(Path(root))
    with AnalysisDB(paths.analysis_db) as db:
        barrier.wait(timeout=120)  # every process imported and connected: all go at once
        results.put(ensure_shipped_model(db, paths).registered)


def test_processes_racing_on_a_fresh_root_register_it_once(shipped, data_root):
    AnalysisDB(data_root / "analysis.db").__enter__().close()  # the schema, before the race
    ctx = multiprocessing.get_context("spawn")  # fresh interpreters, as two services would be
    barrier, results = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_ensure_in_another_process, args=(str(data_root), barrier, results)) for _ in range(4)]
    for p in procs:
        p.start()
    flags = [results.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert sorted(flags) == [False, False, False, True]
    rows = registry.list_models(data_root / "analysis.db")
    assert [(r.version, r.is_current) for r in rows] == [(VERSION, True)]
    assert (data_root / "models" / VERSION / "detector.onnx").read_bytes() == (shipped / "detector.onnx").read_bytes()
    assert not [p for p in (data_root / "models" / VERSION).iterdir() if p.name.endswith(".tmp")]


def test_detections_on_a_fresh_root_come_from_the_shipped_model(shipped, data_root, no_network):
    import subprocess
    import sys
    from pathlib import Path

    from sdr_assets.defs.resources import DetectorSettings
    from sdr_assets_tests.helpers import materialize, meta

    start = (datetime.now(UTC) - timedelta(minutes=300)).replace(second=0, microsecond=0)
    uri = f"synthetic://?seed=3&rate=250000&start={(start + timedelta(seconds=2)):%Y-%m-%dT%H:%M:%SZ}&duration_s=5"
    out = subprocess.run(
        [str(Path(sys.executable).parent / "sdr-assets"), "capture", "--source", uri, "--no-realtime"],
        env=dict(os.environ, SDR_ASSETS_PARTITION_MINUTES="1"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    key = start.strftime("%Y-%m-%d-%H:%M")
    res = materialize(["hot_snapshot", "iq_window", "spectrograms", "detections"], key, detector=DetectorSettings())
    assert res.success
    m = meta(res, "detections")
    assert m["model_version"] == VERSION and m["detector"].startswith("yolo onnxruntime")
    assert VERSION in m["shipped_model"] and "note" not in m
    # evaluate --detector yolo on the same root finds it too
    from sdr_assets.cli.evaluation import current_yolo

    _, version, _ = current_yolo(DataPaths(data_root), conf=0.25)
    assert version == VERSION


def test_evaluate_registers_it_in_a_root_without_an_analysis_db(shipped, data_root):
    from sdr_assets.cli.evaluation import current_yolo

    assert not (data_root / "analysis.db").exists()
    _, version, name = current_yolo(DataPaths(data_root), conf=0.25)
    assert version == VERSION and name.startswith("yolo")
