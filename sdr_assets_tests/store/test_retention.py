"""Retention of reports/, models/, datasets/ (store.retention) on real files and a real registry,
and through the assets that apply it: iq_window (reports, spectrograms) and detector_model
(models, datasets) under dagster.materialize."""

import os
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sdr_assets.defs.resources import DetectorSettings, SdrStore
from sdr_assets.errors import ConfigError
from sdr_assets.store import registry
from sdr_assets.store.retention import prune_datasets, prune_models, prune_reports
from sdr_assets.store.window import AnalysisDB
from sdr_assets_tests.helpers import failure_text, materialize, meta, pkey
from sdr_assets_tests.ml.test_ml_pipeline import no_network  # noqa: F401 - the network-blocking fixture

BIN = Path(sys.executable).parent
RATE_HZ = 250_000
CHAIN = ["hot_snapshot", "iq_window", "spectrograms"]
HOUR_NS = 3600 * 10**9


def _write(path: Path, n_bytes: int) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(n_bytes))
    return n_bytes


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def adb(tmp_path):
    path = tmp_path / "analysis.db"
    AnalysisDB(path).open()
    return path


def _register(adb, models: Path, version: str, created_ns: int, size: int = 1000) -> int:
    """A registry row and its files under models/<version>/; the bytes written."""
    weights = models / version / "train" / "weights" / "best.pt"
    n = _write(weights, size) + _write(weights.with_suffix(".onnx"), size // 2)
    registry.register_model(
        adb,
        version,
        weights,
        weights.with_suffix(".onnx"),
        ["default|2026-11-23-00:00"],
        {},
        {"map50": 0.5},
        ["cw"],
        created_ns=created_ns,
    )
    return n


# ---- reports/ -------------------------------------------------------------------------------
def test_reports_of_partitions_no_longer_held_are_deleted(tmp_path):
    reports = tmp_path / "reports"
    held, gone = "roof|2026-11-23-04:01", "roof|2026-11-23-04:00"
    sizes = {}
    for key in (held, gone):  # detection_report's <slug>.png and partition_plots' <slug>/
        slug = key.replace("|", "/").replace(":", "")
        for rel in (f"{slug}.png", f"{slug}/waterfall.png", f"{slug}/telemetry.png"):
            sizes[rel] = _write(reports / rel, 300 + len(sizes))
    sizes["2026-11-23-0400.png"] = _write(reports / "2026-11-23-0400.png", 77)  # a bare (one-sensor) key
    before = _files(reports)

    out = prune_reports(reports, [held])

    assert _files(reports) == {
        "roof/2026-11-23-0401.png",
        "roof/2026-11-23-0401/waterfall.png",
        "roof/2026-11-23-0401/telemetry.png",
    }
    removed = before - _files(reports)
    assert out.files == len(removed) == 4 and sorted(out.entries) == sorted(removed)
    assert out.bytes_freed == sum(sizes[r] for r in removed)
    assert not (reports / "roof" / "2026-11-23-0400").exists()  # emptied folders go too
    # nothing held: everything goes, the empty sensor folder included
    assert prune_reports(reports, []).files == 3 and list(reports.iterdir()) == []
    assert prune_reports(tmp_path / "absent", []).files == 0


# ---- models/ and datasets/ ------------------------------------------------------------------
def test_models_keep_the_current_one_and_the_newest_n(adb, tmp_path):
    models = tmp_path / "models"
    sizes = {
        v: _register(adb, models, v, created_ns=i * HOUR_NS, size=1000 + i)
        for i, v in enumerate(["v0", "v1", "v2", "v3"])
    }
    registry.promote(adb, "v0")  # the oldest is current: beyond keep, never deleted
    idle_before_ns = time.time_ns()
    stale = models / "failed-run"  # a training that never registered, idle for an hour
    sizes["failed-run"] = _write(stale / "train" / "last.pt", 123)
    os.utime(stale / "train" / "last.pt", ns=(idle_before_ns - HOUR_NS,) * 2)
    os.utime(stale / "train", ns=(idle_before_ns - HOUR_NS,) * 2)
    os.utime(stale, ns=(idle_before_ns - HOUR_NS,) * 2)
    busy = models / "still-training"  # unregistered but written after the pruning training began
    _write(busy / "train" / "last.pt", 50)
    os.utime(busy / "train" / "last.pt", ns=(idle_before_ns + HOUR_NS,) * 2)

    out = prune_models(adb, models, keep=1, idle_before_ns=idle_before_ns)

    assert sorted(p.name for p in models.iterdir()) == ["still-training", "v0", "v3"]
    assert sorted(out.entries) == ["failed-run", "v1", "v2"] and out.files == 5
    assert out.bytes_freed == sizes["v1"] + sizes["v2"] + sizes["failed-run"]
    # the registry keeps every row (metrics, lineage); the current model and its files are intact
    assert [m.version for m in registry.list_models(adb)] == ["v0", "v1", "v2", "v3"]
    cur = registry.current_model(adb)
    assert cur.version == "v0" and Path(cur.path).is_file() and Path(cur.onnx_path).is_file()
    # keep=0: only the current model stays
    assert prune_models(adb, models, keep=0, idle_before_ns=idle_before_ns).entries == ["v3"]
    with pytest.raises(ConfigError, match="keep_models=-1"):
        prune_models(adb, models, keep=-1, idle_before_ns=idle_before_ns)


def test_current_model_in_a_differently_named_folder_is_kept(adb, tmp_path):
    models = tmp_path / "models"
    weights = models / "imported" / "best.pt"
    _write(weights, 10)
    registry.register_model(adb, "v-old", weights, None, [], {}, {"map50": 0.1}, ["cw"], created_ns=1)
    _register(adb, models, "v-new", created_ns=2)
    registry.promote(adb, "v-old")
    out = prune_models(adb, models, keep=0, idle_before_ns=time.time_ns())
    assert weights.is_file() and out.entries == ["v-new"]


def test_datasets_keep_the_newest_n_and_hard_links_free_bytes_only_when_last(adb, tmp_path):
    models, datasets, frames = tmp_path / "models", tmp_path / "datasets", tmp_path / "spectrograms"
    for i, v in enumerate(["v0", "v1", "v2"]):
        _register(adb, models, v, created_ns=i * HOUR_NS)
    live = frames / "live.png"
    _write(live, 4000)
    evicted = frames / "evicted.png"
    _write(evicted, 3000)
    for v in ("v0", "v1", "v2"):  # images are hard links to the frames (as build_dataset makes them)
        images = datasets / v / "images" / "train"
        images.mkdir(parents=True)
        os.link(live, images / "live.png")
        os.link(evicted, images / "evicted.png")
        _write(datasets / v / "data.yaml", 100)
    evicted.unlink()  # iq_window dropped that partition's frames: only the datasets still hold them

    out = prune_datasets(adb, datasets, keep=1, idle_before_ns=time.time_ns())

    assert sorted(p.name for p in datasets.iterdir()) == ["v2"] and sorted(out.entries) == ["v0", "v1"]
    assert out.files == 6
    # every image still has another link (spectrograms/ or v2): no image bytes left the disk;
    # the yamls are single links
    assert out.bytes_freed == 2 * 100 and live.stat().st_nlink == 2
    out = prune_datasets(adb, datasets, keep=0, idle_before_ns=time.time_ns())  # v2 held evicted's last link
    assert out.bytes_freed == 100 + 3000 and list(datasets.iterdir()) == []


# ---- through the assets ---------------------------------------------------------------------
def _past_minute(minutes_ago: int) -> datetime:
    return (datetime.now(UTC) - timedelta(minutes=minutes_ago)).replace(second=0, microsecond=0)


def _capture(uri: str) -> None:
    env = dict(os.environ, SDR_ASSETS_PARTITION_MINUTES="1")
    out = subprocess.run(
        [str(BIN / "sdr-assets"), "capture", "--source", uri, "--no-realtime", "--partition-minutes", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr


def test_iq_window_drops_the_reports_and_frames_of_evicted_partitions(data_root):
    start = _past_minute(90)
    _capture(
        f"synthetic://?seed=3&rate={RATE_HZ}&kinds=cw&emissions_per_s=1&start={start:%Y-%m-%dT%H:%M:%SZ}&duration_s=125"
    )
    k1, k2 = (pkey(f"{start + timedelta(minutes=m):%Y-%m-%d-%H:%M}") for m in (0, 1))
    res = materialize(CHAIN + ["detections", "detection_report", "partition_plots"], k1)
    assert res.success, failure_text(res)
    reports, frames = data_root / "reports", data_root / "spectrograms"
    slug1 = k1.replace("|", "/").replace(":", "")
    assert _files(reports) == {f"{slug1}.png", f"{slug1}/waterfall.png", f"{slug1}/telemetry.png"}
    k1_frames = [p for p in (frames / slug1).iterdir()]
    assert k1_frames
    freed = sum(p.stat().st_size for p in k1_frames + [p for p in reports.rglob("*") if p.is_file()])

    res = materialize(CHAIN, k2, store=SdrStore(keep_partitions=1))  # the buffer holds one partition

    assert res.success, failure_text(res)
    m = meta(res, "iq_window")
    assert m["partitions_dropped"] == k1
    assert m["report_files_removed"] == 3 and m["spectrogram_files_removed"] == len(k1_frames)
    assert m["bytes_freed"] == freed
    assert _files(reports) == set() and not (frames / slug1).exists()
    assert any((frames / k2.replace("|", "/").replace(":", "")).iterdir())


def test_detector_model_prunes_old_models_and_datasets_after_training(data_root, no_network):
    start = _past_minute(24 * 60 + 95)  # yesterday: its day is a complete daily partition
    _capture(
        f"synthetic://?seed=11&rate={RATE_HZ}&kinds=cw&emissions_per_s=1.5"
        f"&start={(start + timedelta(seconds=5)):%Y-%m-%dT%H:%M:%SZ}&duration_s=12"
    )
    key = pkey(f"{start:%Y-%m-%d-%H:%M}")
    res = materialize(CHAIN + ["training_labels"], key)
    assert res.success, failure_text(res)
    models, datasets = data_root / "models", data_root / "datasets"
    adb = data_root / "analysis.db"
    for i, v in enumerate(["old-1", "old-2"]):  # earlier trainings, registered, none current
        _register(adb, models, v, created_ns=i + 1)
        _write(datasets / v / "data.yaml", 10)
    busy = models / "being-written"  # unregistered and newer than this training's start: kept
    _write(busy / "last.pt", 10)
    future_ns = time.time_ns() + HOUR_NS
    os.utime(busy / "last.pt", ns=(future_ns, future_ns))

    small = DetectorSettings(epochs=1, imgsz=64, batch=4, device="cpu")
    res = materialize(
        ["detector_model"], f"{start:%Y-%m-%d}", detector=small, store=SdrStore(keep_models=1, keep_datasets=1)
    )

    assert res.success, failure_text(res)
    m = meta(res, "detector_model")
    version = m["version"]
    assert m["promoted"] is False  # one epoch does not beat the energy detector (test_defs_detector.py)
    assert m["models_removed"] == "old-1, old-2" and m["datasets_removed"] == "old-1, old-2"
    assert m["model_files_removed"] == 4 and m["dataset_files_removed"] == 2 and m["model_bytes_freed"] > 0
    assert sorted(p.name for p in models.iterdir()) == sorted(["being-written", version])
    assert sorted(p.name for p in datasets.iterdir()) == [version]
    new = registry.get_model(adb, version)  # the newest training's files stay (keep_models=1)
    assert Path(new.path).is_file() and Path(new.onnx_path).is_file() and registry.current_model(adb) is None
    with sqlite3.connect(adb) as c:  # the rows stay: the models' history and lineage
        assert c.execute("SELECT count(*) FROM models").fetchone()[0] == 3


def test_a_negative_keep_fails_before_any_training(data_root):
    res = materialize(
        ["detector_model"], (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d"), store=SdrStore(keep_models=-1)
    )
    assert not res.success and "keep_models=-1: must be >= 0" in failure_text(res)
