"""Model registry on the analysis database's ``models`` table.

Every function takes the open ``AnalysisDB`` (or a connection, or the DB's path: then it opens
its own short connection).

At most one row has ``is_current = 1``: the model inference uses. A new model becomes
current only through :func:`promote`, normally after :func:`champion_challenger` found that
it beats both the current one and the energy detector on the same held-back frames, or
through :func:`register_current_if_none` (the shipped model, in a data root without one).
"""

import json
import math
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdr_assets.errors import ConfigError, StoreError
from sdr_assets.store.db import db_name
from sdr_assets.store.txn import Txn
from sdr_assets.store.window import AnalysisDB

ConnOrPath = AnalysisDB | sqlite3.Connection | str | Path

_COLUMNS = "version, created_ns, path, onnx_path, partitions_json, params_json, metrics_json, classes_json, is_current"


@dataclass(frozen=True)
class ModelRow:
    version: str
    created_ns: int
    path: str  # best.pt
    onnx_path: str | None
    partitions: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    classes: tuple[str, ...] = ()
    is_current: bool = False


@contextmanager
def _connection(conn_or_path: ConnOrPath, write: bool) -> Iterator[sqlite3.Connection]:
    if isinstance(conn_or_path, AnalysisDB):
        yield conn_or_path.conn
        return
    if isinstance(conn_or_path, sqlite3.Connection):
        yield conn_or_path
        return
    path = Path(conn_or_path)
    if not path.is_file():
        raise StoreError(f"analysis database {path} does not exist; create it first (the analysis DB migrations).")
    uri = f"file:{path.resolve()}" + ("" if write else "?mode=ro")
    conn = sqlite3.connect(uri, uri=True, timeout=30.0, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


@contextmanager
def _write(conn_or_path: ConnOrPath) -> Iterator[sqlite3.Connection]:
    """One BEGIN IMMEDIATE transaction (or a savepoint inside the caller's open transaction)."""
    with _connection(conn_or_path, write=True) as conn:
        with Txn(conn, "model registry write", db_name(conn)):
            yield conn


def _execute(conn: sqlite3.Connection, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
    try:
        return conn.execute(sql, args)
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            raise StoreError(f"the analysis database has no models table ({exc}); apply its migrations first.") from exc
        raise StoreError(f"model registry query failed: {exc}.") from exc


def _row(r: Sequence[Any]) -> ModelRow:
    return ModelRow(
        r[0],
        int(r[1]),
        r[2],
        r[3],
        json.loads(r[4]),
        json.loads(r[5]),
        json.loads(r[6]),
        tuple(json.loads(r[7])),
        bool(r[8]),
    )


def register_model(
    conn_or_path: ConnOrPath,
    version: str,
    path: str | Path,
    onnx_path: str | Path | None,
    partitions: Sequence[str],
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    classes: Sequence[str],
    created_ns: int | None = None,
) -> None:
    """Add a model (not current). A version already registered is an error."""
    created_ns = time.time_ns() if created_ns is None else int(created_ns)
    with _write(conn_or_path) as conn:
        try:
            _execute(
                conn,
                f"INSERT INTO models ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)",
                (
                    version,
                    created_ns,
                    str(path),
                    None if onnx_path is None else str(onnx_path),
                    json.dumps(list(partitions)),
                    json.dumps(dict(params), default=str),
                    json.dumps({k: float(v) for k, v in metrics.items()}),
                    json.dumps(list(classes)),
                ),
            )
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"model version {version!r} is already registered; pick a new version name.") from exc


def register_current_if_none(
    conn_or_path: ConnOrPath,
    version: str,
    path: str | Path,
    onnx_path: str | Path | None,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    classes: Sequence[str],
    created_ns: int | None = None,
) -> bool:
    """Register ``version`` as the current model, in one transaction, only while no model is
    current and ``version`` is not registered (the shipped model in a fresh data root): True
    when this call did it. Two processes racing on one data root: one registers, the other
    gets False."""
    created_ns = time.time_ns() if created_ns is None else int(created_ns)
    with _write(conn_or_path) as conn:
        taken = _execute(
            conn, "SELECT 1 FROM models WHERE is_current = 1 OR version = ? LIMIT 1", (version,)
        ).fetchone()
        if taken is not None:
            return False
        _execute(
            conn,
            f"INSERT INTO models ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)",
            (
                version,
                created_ns,
                str(path),
                None if onnx_path is None else str(onnx_path),
                "[]",
                json.dumps(dict(params), default=str),
                json.dumps({k: float(v) for k, v in metrics.items()}),
                json.dumps(list(classes)),
            ),
        )
    return True


def set_onnx_path(conn_or_path: ConnOrPath, version: str, onnx_path: str | Path) -> None:
    """Record the ONNX export of a registered model."""
    with _write(conn_or_path) as conn:
        if _execute(conn, "UPDATE models SET onnx_path = ? WHERE version = ?", (str(onnx_path), version)).rowcount != 1:
            raise StoreError(f"no model version {version!r} in the registry; register it first.")


def promote(conn_or_path: ConnOrPath, version: str) -> None:
    """Make ``version`` the one current model (every other row loses is_current), atomically."""
    with _write(conn_or_path) as conn:
        if _execute(conn, "SELECT 1 FROM models WHERE version = ?", (version,)).fetchone() is None:
            raise StoreError(f"no model version {version!r} in the registry; register it before promoting it.")
        _execute(conn, "UPDATE models SET is_current = (version = ?)", (version,))


def current_model(conn_or_path: ConnOrPath) -> ModelRow | None:
    """The current model, or None while none was promoted."""
    with _connection(conn_or_path, write=False) as conn:
        rows = _execute(conn, f"SELECT {_COLUMNS} FROM models WHERE is_current = 1").fetchall()
    if len(rows) > 1:
        raise StoreError(f"{len(rows)} models are marked current; promote one of them to repair the registry.")
    return _row(rows[0]) if rows else None


def get_model(conn_or_path: ConnOrPath, version: str) -> ModelRow:
    with _connection(conn_or_path, write=False) as conn:
        r = _execute(conn, f"SELECT {_COLUMNS} FROM models WHERE version = ?", (version,)).fetchone()
    if r is None:
        raise StoreError(f"no model version {version!r} in the registry; list them with list_models().")
    return _row(r)


def list_models(conn_or_path: ConnOrPath) -> list[ModelRow]:
    """Every registered model, oldest first."""
    with _connection(conn_or_path, write=False) as conn:
        rows = _execute(conn, f"SELECT {_COLUMNS} FROM models ORDER BY created_ns, version").fetchall()
    return [_row(r) for r in rows]


CONTEST_KEY = "f1"  # the one score the held-back contest is decided on (ml.contest)


@dataclass(frozen=True)
class Verdict:
    """Who won the held-back contest, and why (one sentence for the UI)."""

    promoted: bool
    winner: str  # "challenger" | "current model" | "energy detector" | "none"
    reason: str


def _score(metrics: Mapping[str, float], key: str, who: str) -> float:
    if key not in metrics:
        raise ConfigError(
            f"{who} metrics lack {key!r} (have {sorted(metrics)}); score every contestant on the same "
            "held-back frames first (ml.contest.score_detector)."
        )
    return float(metrics[key])


def champion_challenger(
    challenger_metrics: Mapping[str, float],
    champion_metrics_on_same_frames: Mapping[str, float] | None,
    energy_metrics_on_same_frames: Mapping[str, float],
    key: str = CONTEST_KEY,
) -> Verdict:
    """Should the challenger become the current model?

    All three metric dicts must come from the SAME held-back frames. The challenger wins only
    when its ``key`` is strictly higher than the energy detector's AND the current model's (the
    champion; None when there is none, or it cannot run). No champion is no free win: the energy
    detector is then the incumbent. A tie keeps the incumbent; a NaN challenger (nothing to score
    it on) never wins, nor does any challenger when the energy detector has no score; a NaN
    champion cannot defend.
    """
    new = _score(challenger_metrics, key, "challenger")
    energy = _score(energy_metrics_on_same_frames, key, "energy detector")
    old = None if champion_metrics_on_same_frames is None else _score(champion_metrics_on_same_frames, key, "champion")
    stays = "energy detector (no current model)" if old is None else "current model"
    if math.isnan(new) or math.isnan(energy):
        why = "no independent label on the held-back frames" if math.isnan(energy) else "the challenger has none"
        return Verdict(False, "none", f"no {key} to compare ({why}): the {stays} stays")
    # incumbents first: a tie goes to them
    scores = [("energy detector", energy), ("challenger", new)]
    if old is not None and not math.isnan(old):
        scores.insert(0, ("current model", old))
    winner, best = max(scores, key=lambda s: s[1])
    if winner == "challenger":
        beaten = " and ".join(f"the {who}'s {v:.3f}" for who, v in scores if who != "challenger")
        return Verdict(True, winner, f"the challenger's {key} {new:.3f} beats {beaten}: it becomes current")
    return Verdict(
        False, winner, f"the challenger's {key} {new:.3f} does not beat the {winner}'s {best:.3f}: the {stays} stays"
    )
