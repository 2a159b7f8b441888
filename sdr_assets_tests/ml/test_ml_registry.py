"""Model registry on a real analysis database file: register, promote, the champion/challenger rule."""

import math
import sqlite3

import pytest

from sdr_assets.errors import ConfigError, StoreError
from sdr_assets.store import registry
from sdr_assets.store.registry import (
    ModelRow,
    champion_challenger,
    current_model,
    list_models,
    promote,
    register_model,
)

pytestmark = pytest.mark.calendar  # re-run under faketime +60days (test_calendar.py)


@pytest.fixture
def db(tmp_path):
    """An analysis DB with the migrations applied (store.db when present, else the schema text)."""
    path = tmp_path / "analysis.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        from sdr_assets.store.db import ANALYSIS_APP_ID, analysis_migrations, migrate

        migrate(conn, analysis_migrations(), application_id=ANALYSIS_APP_ID)
    except ImportError:
        from importlib import resources

        conn.executescript(resources.files("sdr_assets.store").joinpath("analysis_schema.sql").read_text())
    conn.close()
    return path


def _register(db, version, created_ns, map50=0.5, onnx=True):
    register_model(
        db,
        version,
        f"/models/{version}/best.pt",
        f"/models/{version}/best.onnx" if onnx else None,
        ["2026-11-23-00:00", "2026-11-23-01:00"],
        {"imgsz": 320, "epochs": 50},
        {"map50": map50, "map50_95": map50 / 2, "precision": 0.7, "recall": 0.6},
        ["cw", "ook", "fsk", "chirp", "wideband", "burst"],
        created_ns=created_ns,
    )


def _n_current(db):
    with sqlite3.connect(db) as c:
        return c.execute("SELECT count(*) FROM models WHERE is_current = 1").fetchone()[0]


def test_register_round_trips_and_nothing_is_current_until_promoted(db):
    assert current_model(db) is None and list_models(db) == []
    _register(db, "20261123T020000-yolo11n", 2, map50=0.61)
    _register(db, "20261122T020000-yolo11n", 1, onnx=False)
    rows = list_models(db)
    assert [r.version for r in rows] == ["20261122T020000-yolo11n", "20261123T020000-yolo11n"]  # oldest first
    r = rows[1]
    assert isinstance(r, ModelRow)
    assert r.path.endswith("best.pt") and r.onnx_path.endswith("best.onnx") and rows[0].onnx_path is None
    assert r.partitions == ["2026-11-23-00:00", "2026-11-23-01:00"]
    assert r.params == {"imgsz": 320, "epochs": 50} and r.metrics["map50"] == 0.61
    assert r.classes == ("cw", "ook", "fsk", "chirp", "wideband", "burst") and r.is_current is False
    assert current_model(db) is None


def test_promote_keeps_exactly_one_current(db):
    for i, v in enumerate(["a", "b", "c"]):
        _register(db, v, i)
    promote(db, "a")
    assert current_model(db).version == "a" and _n_current(db) == 1
    promote(db, "c")
    assert current_model(db).version == "c" and _n_current(db) == 1
    promote(db, "c")  # idempotent
    assert _n_current(db) == 1
    with pytest.raises(StoreError, match="no model version 'zzz'"):
        promote(db, "zzz")
    assert current_model(db).version == "c"  # a failed promote changes nothing


def test_duplicate_version_is_refused(db):
    _register(db, "v1", 1)
    with pytest.raises(StoreError, match="already registered"):
        _register(db, "v1", 2)
    assert len(list_models(db)) == 1


def test_set_onnx_path_and_get_model(db):
    _register(db, "v1", 1, onnx=False)
    registry.set_onnx_path(db, "v1", "/x/best.onnx")
    assert registry.get_model(db, "v1").onnx_path == "/x/best.onnx"
    with pytest.raises(StoreError):
        registry.set_onnx_path(db, "nope", "/x.onnx")


def test_works_on_an_open_connection_inside_the_callers_transaction(db):
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    _register(conn, "v1", 1)
    promote(conn, "v1")
    conn.execute("ROLLBACK")  # the caller's transaction owns the writes
    assert list_models(conn) == []
    _register(conn, "v2", 2)  # outside a transaction: committed on its own
    conn.close()
    assert [r.version for r in list_models(db)] == ["v2"]


def test_missing_database_or_table_says_what_to_do(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        current_model(tmp_path / "nope.db")
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    with pytest.raises(StoreError, match="no models table"):
        list_models(empty)


def _f1(v):
    return {"f1": v, "recall": v, "precision": v}


def test_champion_challenger_rules():
    # the energy detector defends: no current model is no free win
    v = champion_challenger(_f1(0.1), None, _f1(0.6))
    assert not v.promoted and v.winner == "energy detector"
    assert "0.100 does not beat the energy detector's 0.600" in v.reason and "no current model" in v.reason
    v = champion_challenger(_f1(0.7), None, _f1(0.6))
    assert v.promoted and v.winner == "challenger" and "beats the energy detector's 0.600" in v.reason
    assert not champion_challenger(_f1(0.6), None, _f1(0.6)).promoted  # a tie keeps the incumbent
    # it must beat both: the current model...
    v = champion_challenger(_f1(0.7), _f1(0.8), _f1(0.6))
    assert not v.promoted and v.winner == "current model" and "the current model stays" in v.reason
    assert not champion_challenger(_f1(0.8), _f1(0.8), _f1(0.6)).promoted
    # ...and the energy detector, even when the current model is worse than both
    v = champion_challenger(_f1(0.5), _f1(0.3), _f1(0.6))
    assert not v.promoted and v.winner == "energy detector" and "the current model stays" in v.reason
    v = champion_challenger(_f1(0.9), _f1(0.8), _f1(0.6))
    assert v.promoted and "beats the current model's 0.800 and the energy detector's 0.600" in v.reason
    # nothing to score on (no independent label held back): never promoted
    v = champion_challenger(_f1(math.nan), None, _f1(math.nan))
    assert not v.promoted and v.winner == "none" and "no independent label" in v.reason
    assert not champion_challenger(_f1(math.nan), _f1(0.2), _f1(0.1)).promoted
    # a champion that could not be scored does not defend; the energy detector still does
    assert champion_challenger(_f1(0.7), _f1(math.nan), _f1(0.6)).promoted
    assert champion_challenger({"map50": 0.4, "f1": 0.1}, None, {"map50": 0.0, "f1": 0.2}, key="map50").promoted
    with pytest.raises(ConfigError, match="challenger metrics lack 'f1'"):
        champion_challenger({"map50": 1.0}, None, _f1(0.5))
    with pytest.raises(ConfigError, match="energy detector metrics lack"):
        champion_challenger(_f1(1.0), None, {"map50": 0.5})
    with pytest.raises(ConfigError, match="champion metrics lack"):
        champion_challenger(_f1(1.0), {"precision": 0.5}, _f1(0.5))


def test_register_current_if_none_only_in_a_registry_without_a_current_model(db):
    classes = ["cw", "burst"]
    assert registry.register_current_if_none(db, "shipped-1", "/m/a.pt", "/m/a.onnx", {"shipped": True}, {}, classes)
    row = current_model(db)
    assert (row.version, row.params, row.partitions, row.onnx_path) == ("shipped-1", {"shipped": True}, [], "/m/a.onnx")
    assert not registry.register_current_if_none(db, "shipped-2", "/m/b.pt", None, {}, {}, classes)  # one is current
    _register(db, "trained", 5)
    assert current_model(db).version == "shipped-1" and len(list_models(db)) == 2


def test_register_current_if_none_never_registers_a_version_twice(db):
    _register(db, "shipped-1", 1)  # registered earlier, not current
    assert not registry.register_current_if_none(db, "shipped-1", "/m/a.pt", None, {}, {}, ["burst"])
    assert current_model(db) is None and len(list_models(db)) == 1


def test_warm_start_takes_the_champion_only_when_it_can_seed_the_training(tmp_path):
    from types import SimpleNamespace

    from sdr_assets.ml.labels import CLASSES
    from sdr_assets.ml.training import TrainingConfig, warm_start_source

    weights = tmp_path / "best.pt"
    weights.write_bytes(b"not really torch, only present")
    champ = SimpleNamespace(version="v1", path=str(weights), classes=tuple(CLASSES))
    lines: list[str] = []
    assert warm_start_source(TrainingConfig(warm_start=False), champ) == ("yolo11n.yaml", None)  # not asked
    cfg = TrainingConfig()  # warm start is the default
    assert warm_start_source(cfg, champ, lines.append) == (str(weights), "v1")
    assert warm_start_source(cfg, None, lines.append) == ("yolo11n.yaml", None)
    other = SimpleNamespace(version="v0", path=str(weights), classes=("cw", "burst"))
    assert warm_start_source(cfg, other, lines.append) == ("yolo11n.yaml", None)
    gone = SimpleNamespace(version="v2", path=str(tmp_path / "gone.pt"), classes=tuple(CLASSES))
    assert warm_start_source(cfg, gone, lines.append) == ("yolo11n.yaml", None)
    assert "no current model yet" in lines[1] and "v0" in lines[2] and "gone.pt" in lines[3]


def test_thin_frames_keeps_runs_of_frames_spread_over_time(tmp_path):
    from sdr_assets.ml.dataset import FrameLabels
    from sdr_assets.ml.training import THIN_BLOCK_FRAMES, thin_frames

    assert THIN_BLOCK_FRAMES == 10
    frames = [FrameLabels(i, tmp_path / f"{i}.png", 10_000 - i * 10) for i in range(1000)]  # ids run back in time
    kept = thin_frames(frames, 100)
    starts = [f.t_start_ns for f in kept]
    assert len(kept) == 100 and starts == sorted(starts) and starts[0] == 10  # from the oldest
    runs = [starts[i : i + 10] for i in range(0, 100, 10)]  # ten runs of ten consecutive frames...
    assert all(b - a == 10 for run in runs for a, b in zip(run, run[1:]))
    assert {r2[0] - r1[0] for r1, r2 in zip(runs, runs[1:])} == {1000}  # ...spread evenly over time
    assert len(thin_frames(frames, 0)) == 1000 and len(thin_frames(frames, 5000)) == 1000
    assert len(thin_frames(frames, 25)) == 20 and len(thin_frames(frames, 3)) == 3
