"""Model registry on a real analysis database file: register, promote, champion/challenger."""

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


def test_champion_challenger_rules():
    assert champion_challenger({"map50": 0.1}, None) is True  # no champion yet
    assert champion_challenger({"map50": 0.6}, {"map50": 0.5}) is True
    assert champion_challenger({"map50": 0.5}, {"map50": 0.5}) is False  # tie keeps the champion
    assert champion_challenger({"map50": 0.4}, {"map50": 0.5}) is False
    assert champion_challenger({"map50": math.nan}, {"map50": 0.0}) is False
    assert champion_challenger({"map50": 0.0}, {"map50": math.nan}) is True
    assert champion_challenger({"map50": 0.4, "map50_95": 0.3}, {"map50": 0.5, "map50_95": 0.2}, key="map50_95") is True
    with pytest.raises(ConfigError, match="challenger metrics lack"):
        champion_challenger({"precision": 1.0}, {"map50": 0.5})
    with pytest.raises(ConfigError, match="champion metrics lack"):
        champion_challenger({"map50": 1.0}, {"precision": 0.5})


def test_champion_challenger_drives_promotion(db):
    _register(db, "old", 1, map50=0.5)
    promote(db, "old")
    _register(db, "new", 2, map50=0.55)
    champion_on_same_val = {"map50": 0.52}  # re-evaluated on the challenger's validation frames
    if champion_challenger(list_models(db)[1].metrics, champion_on_same_val):
        promote(db, "new")
    assert current_model(db).version == "new"


def test_warm_start_takes_the_champion_only_when_it_can_seed_the_training(tmp_path):
    from types import SimpleNamespace

    from sdr_assets.ml.labels import CLASSES
    from sdr_assets.ml.training import TrainingConfig, warm_start_source

    weights = tmp_path / "best.pt"
    weights.write_bytes(b"not really torch, only present")
    champ = SimpleNamespace(version="v1", path=str(weights), classes=tuple(CLASSES))
    lines: list[str] = []
    assert warm_start_source(TrainingConfig(), champ) == ("yolo11n.yaml", None)  # not asked
    cfg = TrainingConfig(warm_start=True)
    assert warm_start_source(cfg, champ, lines.append) == (str(weights), "v1")
    assert warm_start_source(cfg, None, lines.append) == ("yolo11n.yaml", None)
    other = SimpleNamespace(version="v0", path=str(weights), classes=("cw", "burst"))
    assert warm_start_source(cfg, other, lines.append) == ("yolo11n.yaml", None)
    gone = SimpleNamespace(version="v2", path=str(tmp_path / "gone.pt"), classes=tuple(CLASSES))
    assert warm_start_source(cfg, gone, lines.append) == ("yolo11n.yaml", None)
    assert "no current model yet" in lines[1] and "v0" in lines[2] and "gone.pt" in lines[3]
