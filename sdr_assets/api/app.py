"""The read-only HTTP API: telemetry, database figures, detections, decoded messages, devices and
samples (a SigMF archive), as a FastAPI app over one data root.

Every request opens its own read-only connection (``store.queries.open_ro``) and closes it: a
database deleted, replaced or damaged while the server runs is seen by the next request, which
answers 503 with the reason while the endpoints of the other databases keep answering. The
analysis DB is read for everything but the capture's figures; those come from the telemetry rows
the capture writes into its hot DB (a short indexed read, never its chunks).

Errors answer ``{"error": "..."}``: 400 a bad parameter (unknown ones too), 404 nothing held
there, 413 a span over the size limit, 503 a database that is missing, locked or damaged.
"""

import contextlib
import dataclasses
import json
import math
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import anyio
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse

from sdr_assets.api import params
from sdr_assets.decode.inventory import DEFAULT_MISSING_AFTER, device_states
from sdr_assets.errors import (
    ConfigError,
    PartitionNotHeldError,
    SdrAssetsError,
    StoreError,
    TooLargeError,
)
from sdr_assets.paths import DataPaths
from sdr_assets.records import NS_PER_S, utc_iso
from sdr_assets.store import messages as store_messages
from sdr_assets.store import queries
from sdr_assets.store.db import reading
from sdr_assets.store.sensors import list_sensors, split_key

DEFAULT_MAX_IQ_BYTES = 256 * 10**6
MAX_ROWS = 10_000
MAX_TELEMETRY_ROWS = 100_000
DEFAULT_MARGIN_S = 0.1
MAX_MARGIN_S = 60.0
API_VERSION = "1"

# Which capture metrics answer each question of /api/telemetry/stats (by name; a metric may
# be in one group only). Resource metrics another process writes (e.g. gpu_*) join by name.
METRIC_GROUPS = {
    "ingest_rate": ("ingest_mb_s", "samples_received_per_s", "samples_stored_per_s"),
    "samples_lost": ("samples_lost", "samples_lost_per_s"),
    "commit_latency": ("commit_ms_p50", "commit_ms_p99", "commit_ms_max"),
    "cpu": ("cpu_percent",),
    "ram": ("rss_mb",),
    "gpu": (),
}


def metric_group(metric: str) -> str | None:
    for group, names in METRIC_GROUPS.items():
        if metric in names:
            return group
    m = metric.lower()
    if m.startswith("samples_lost_"):
        return "samples_lost"
    if "gpu" in m:
        return "gpu"
    if "cpu" in m:
        return "cpu"
    if "rss" in m or "mem" in m or "ram" in m:
        return "ram"
    return None


@dataclass(frozen=True)
class ApiSettings:
    root: Path  # the data root ($SDR_ASSETS_HOME)
    max_iq_bytes: int = DEFAULT_MAX_IQ_BYTES
    missing_after: float = DEFAULT_MISSING_AFTER


class NotFound(SdrAssetsError):
    """What the request names does not exist (HTTP 404)."""


class SafeJSONResponse(JSONResponse):
    """JSON where a non-finite float (never valid JSON) becomes null."""

    def render(self, content) -> bytes:
        try:
            return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
        except ValueError:
            return json.dumps(_finite(content), ensure_ascii=False, separators=(",", ":")).encode()


def _finite(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def _iso(t_ns: int | None) -> str | None:
    if t_ns is None:
        return None
    return utc_iso(t_ns, digits=9)


def _record(obj, **extra) -> dict:
    out = dataclasses.asdict(obj)
    for key in [k for k in out if k.endswith("_ns")]:
        out[key[:-3]] = _iso(out[key])
    out.update(extra)
    return out


def _error(status: int, message: str) -> SafeJSONResponse:
    return SafeJSONResponse({"error": message}, status_code=status)


# ---- databases -----------------------------------------------------------------------------------
def _connect(path: Path, what: str) -> queries.Connection:
    """A read-only connection to one of our databases (StoreError, a 503, when it is missing or
    holds none of our tables: ``what`` says what to do); call inside ``reading(path)``."""
    conn = queries.open_ro(path)
    try:
        if not queries.has_table(conn, "telemetry"):
            raise StoreError(f"{path} holds no sdr_assets tables yet; {what}.")
    except BaseException:
        conn.close()
        raise
    return conn


@contextlib.contextmanager
def _open(path: Path, what: str) -> Iterator[queries.Connection]:
    """A read-only connection for one request; sqlite3 errors become StoreError (503)."""
    with reading(path):
        conn = _connect(path, what)
        try:
            yield conn
        finally:
            conn.close()


_ANALYSIS_HINT = "materialise iq_window for a window first (Dagster, or `sdr-assets backfill`)"


def _analysis(settings: ApiSettings):
    return _open(DataPaths(settings.root).analysis_db, _ANALYSIS_HINT)


def _hot(settings: ApiSettings, sensor: str):
    return _open(
        DataPaths(settings.root, sensor).hot_db,
        f"start the capture of sensor {sensor!r} (`sdr-assets capture --sensor {sensor} ...`)",
    )


def _keys(conn: queries.Connection, sensor: str) -> tuple[str, ...]:
    return tuple(p.partition_key for p in queries.sensor_partitions(conn, sensor))


# ---- the app -------------------------------------------------------------------------------------
def create_app(settings: ApiSettings) -> FastAPI:
    app = FastAPI(
        title="sdr_assets API",
        version=API_VERSION,
        default_response_class=SafeJSONResponse,
        description="Read-only access to one data root: capture telemetry, database figures, detections, "
        "decoded messages, the device inventory and the samples themselves (SigMF). Times are "
        "ISO 8601 UTC or integer ns since the Unix epoch; frequencies are Hz.",
    )
    paths = DataPaths(settings.root)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError):
        parts = []
        for err in exc.errors():
            loc = ".".join(str(x) for x in err.get("loc", ())[1:]) or "request"
            parts.append(f"{loc}={err.get('input')!r}: {err.get('msg')}")
        return _error(400, "; ".join(parts) or "bad request")

    @app.exception_handler(SdrAssetsError)
    async def _known(request: Request, exc: SdrAssetsError):
        if isinstance(exc, ConfigError):
            return _error(400, str(exc))
        if isinstance(exc, NotFound | PartitionNotHeldError):
            return _error(404, str(exc))
        if isinstance(exc, TooLargeError):
            return _error(413, str(exc))
        if isinstance(exc, StoreError):
            return _error(503, str(exc))
        return _error(500, str(exc))

    def only(*names: str):
        """A dependency: refuse query parameters the endpoint does not know, and repeated ones."""
        allowed = set(names)

        def check(request: Request) -> None:
            keys = [k for k, _ in request.query_params.multi_items()]
            unknown = sorted(set(keys) - allowed)
            if unknown:
                raise ConfigError(
                    f"unknown parameter(s) {', '.join(unknown)}; this endpoint takes "
                    f"{', '.join(sorted(allowed)) or 'none'}."
                )
            repeated = sorted({k for k in keys if keys.count(k) > 1})
            if repeated:
                raise ConfigError(f"parameter(s) {', '.join(repeated)} given more than once; give each once.")

        return Depends(check)

    Sensor = Annotated[
        str,
        Query(description="The sensor (`default`, or one registered with `sdr-assets sensors add`).", max_length=100),
    ]
    From = Annotated[
        str | None, Query(alias="from", max_length=100, description="Start of the span: ISO 8601 UTC or integer ns.")
    ]
    To = Annotated[str | None, Query(max_length=100, description="End of the span (exclusive).")]
    Fmin = Annotated[float | None, Query(description="Lower edge of the band, Hz.")]
    Fmax = Annotated[float | None, Query(description="Upper edge of the band, Hz.")]

    @app.get("/api", dependencies=[only()], summary="What this API serves")
    def index():
        return {
            "title": app.title,
            "version": API_VERSION,
            "data_root": str(settings.root),
            "docs": "/docs",
            "endpoints": sorted(r.path for r in app.routes if getattr(r, "path", "").startswith("/api/")),
        }

    # ---- telemetry ----------------------------------------------------------------------------
    @app.get(
        "/api/telemetry/history",
        dependencies=[only("sensor", "hours", "limit", "metric", "db")],
        summary="Telemetry rows of the last hours (newest `limit`, in time order)",
    )
    def telemetry_history(
        sensor: Sensor = "default",
        hours: float = 1.0,
        limit: Annotated[int, Query(description=f"At most this many rows (1..{MAX_TELEMETRY_ROWS}).")] = 1000,
        metric: Annotated[str | None, Query(max_length=200, description="One metric, e.g. ingest_mb_s.")] = None,
        db: Annotated[
            str,
            Query(
                pattern="^(hot|analysis)$",
                description="hot: the sensor's capture (default); analysis: training and other processes.",
            ),
        ] = "hot",
    ):
        sensor = params.sensor(paths, sensor)
        h, n = params.hours(hours), params.limit(limit, MAX_TELEMETRY_ROWS)
        metric = params.text("metric", metric)
        since_ns = time.time_ns() - int(h * 3600 * NS_PER_S)
        source = _hot(settings, sensor) if db == "hot" else _analysis(settings)
        with source as conn:
            rows, truncated = queries.telemetry_rows(conn, since_ns, limit=n, metric=metric)
        return {
            "sensor": sensor,
            "db": db,
            "hours": h,
            "since_ns": since_ns,
            "since": _iso(since_ns),
            "count": len(rows),
            "truncated": truncated,
            "rows": [dataclasses.asdict(r) for r in rows],
        }

    @app.get(
        "/api/telemetry/stats",
        dependencies=[only("sensor", "hours", "db")],
        summary="min/avg/max per metric of the last hours: ingest rate, samples lost, commit latency, CPU, RAM, GPU",
    )
    def telemetry_stats(
        sensor: Sensor = "default", hours: float = 1.0, db: Annotated[str, Query(pattern="^(hot|analysis)$")] = "hot"
    ):
        sensor = params.sensor(paths, sensor)
        h = params.hours(hours)
        since_ns = time.time_ns() - int(h * 3600 * NS_PER_S)
        with _hot(settings, sensor) if db == "hot" else _analysis(settings) as conn:
            stats = queries.telemetry_stats(conn, since_ns)
        groups: dict[str, list] = {g: [] for g in METRIC_GROUPS}
        for s in stats:
            g = metric_group(s.metric)
            if g is not None:
                groups[g].append(_record(s))
        notes = {g: "no such metric recorded in this span" for g, rows in groups.items() if not rows}
        return {
            "sensor": sensor,
            "db": db,
            "hours": h,
            "since_ns": since_ns,
            "since": _iso(since_ns),
            "groups": groups,
            "notes": notes,
            "metrics": [_record(s) for s in stats],
        }

    @app.get(
        "/api/database/stats",
        dependencies=[only()],
        summary="Per database: size, rows per table, oldest/newest samples, free disk",
    )
    def database_stats():
        from sdr_assets.store.telemetry import database_stats as figures

        dbs = [("analysis", None, paths.analysis_db)]
        errors = []
        dbs += [("hot", s.name, s.hot_db) for s in list_sensors(paths, on_error=errors.append)]
        out = []
        for kind, sensor, path in dbs:
            entry = {"db": kind, "sensor": sensor, "path": str(path), "ok": False}
            try:
                entry["free_disk_bytes"] = shutil.disk_usage(path.parent if path.parent.exists() else paths.root).free
            except OSError as exc:
                entry["free_disk_error"] = str(exc)
            try:
                with reading(path):
                    got = figures(path)
            except StoreError as exc:
                entry["error"] = str(exc)
            else:
                entry.update(
                    got,
                    ok=True,
                    oldest_chunk_t_start=_iso(got["oldest_chunk_t_start_ns"]),
                    newest_chunk_t_end=_iso(got["newest_chunk_t_end_ns"]),
                )
            out.append(entry)
        return {"databases": out, "errors": errors}

    # ---- detections, messages, devices --------------------------------------------------------
    @app.get(
        "/api/detections",
        dependencies=[only("sensor", "from", "to", "label", "freq_min_hz", "freq_max_hz", "limit")],
        summary="Detections in a span and band, with lineage (chunk seqs, frame, model version)",
    )
    def get_detections(
        sensor: Sensor = "default",
        t_from: From = None,
        to: To = None,
        label: Annotated[str | None, Query(max_length=200)] = None,
        freq_min_hz: Fmin = None,
        freq_max_hz: Fmax = None,
        limit: Annotated[int, Query(description=f"1..{MAX_ROWS}")] = 1000,
    ):
        sensor = params.sensor(paths, sensor)
        t0, t1 = params.span(t_from, to)
        lo, hi = params.band(freq_min_hz, freq_max_hz)
        label, n = params.text("label", label), params.limit(limit, MAX_ROWS)
        with _analysis(settings) as conn:
            span = queries.SpanFilter(_keys(conn, sensor), t0, t1, lo, hi)
            rows = queries.detections(conn, span, label=label, limit=n + 1)
            msgs = queries.detection_messages(conn, [r.detection_id for r in rows[:n]])
        return {
            "sensor": sensor,
            "count": min(len(rows), n),
            "truncated": len(rows) > n,
            "detections": [
                _record(
                    r,
                    sensor=split_key(r.partition_key)[0],
                    message_ids=msgs.get(r.detection_id, []),
                    iq_url=f"/api/iq?detection_id={r.detection_id}",
                )
                for r in rows[:n]
            ],
        }

    @app.get(
        "/api/messages",
        dependencies=[
            only("sensor", "from", "to", "model", "device_id", "channel", "freq_min_hz", "freq_max_hz", "limit")
        ],
        summary="What rtl_433 decoded in a span: filter by model, device id, channel, band",
    )
    def get_messages(
        sensor: Sensor = "default",
        t_from: From = None,
        to: To = None,
        model: Annotated[str | None, Query(max_length=200)] = None,
        device_id: Annotated[str | None, Query(max_length=200)] = None,
        channel: Annotated[str | None, Query(max_length=200)] = None,
        freq_min_hz: Fmin = None,
        freq_max_hz: Fmax = None,
        limit: Annotated[int, Query(description=f"1..{MAX_ROWS}")] = 1000,
    ):
        sensor = params.sensor(paths, sensor)
        t0, t1 = params.span(t_from, to)
        lo, hi = params.band(freq_min_hz, freq_max_hz)
        model, device_id = params.text("model", model), params.text("device_id", device_id)
        channel, n = params.text("channel", channel), params.limit(limit, MAX_ROWS)
        with _analysis(settings) as conn:
            span = queries.SpanFilter(_keys(conn, sensor), t0, t1, lo, hi)
            rows = queries.decoded_messages(conn, span, model=model, device_id=device_id, channel=channel, limit=n + 1)
            keys = queries.message_partitions(conn, [m.message_id for m in rows[:n]])
        return {
            "sensor": sensor,
            "count": min(len(rows), n),
            "truncated": len(rows) > n,
            "messages": [_record(m, device=m.name(), partition_key=keys.get(m.message_id)) for m in rows[:n]],
        }

    @app.get(
        "/api/devices",
        dependencies=[only("sensor", "missing_after")],
        summary="The device inventory of a sensor, with new/missing flags",
    )
    def get_devices(
        sensor: Sensor = "default",
        missing_after: Annotated[
            float, Query(description="Missing after this many usual intervals of silence.")
        ] = settings.missing_after,
    ):
        sensor = params.sensor(paths, sensor)
        after = params.finite("missing_after", missing_after, lo=1.0, hi=1000.0, example="3")
        with _analysis(settings) as conn:
            rows = store_messages.inventory(conn, sensor) if queries.has_table(conn, "device_inventory") else []
            parts = queries.sensor_partitions(conn, sensor)
        as_of = max((r.as_of_ns for r in rows), default=None)
        w0 = next((p.t_start_ns for p in parts if p.t_end_ns == as_of), None)
        states = device_states(rows, w0, as_of, after) if rows else []
        return {
            "sensor": sensor,
            "as_of_ns": as_of,
            "as_of": _iso(as_of),
            "window_start_ns": w0,
            "missing_after": after,
            "count": len(states),
            "devices": [
                _record(
                    s.device,
                    name=s.device.name(),
                    new=s.new,
                    missing=s.missing,
                    missing_since_ns=s.due_ns if s.missing else None,
                )
                for s in states
            ],
        }

    # ---- samples ------------------------------------------------------------------------------
    @app.get(
        "/api/iq",
        dependencies=[only("sensor", "from", "to", "freq_min_hz", "freq_max_hz", "detection_id", "margin_s")],
        summary="The samples of a span (or of one detection, with a margin) as a SigMF archive",
        response_class=StreamingResponse,
        responses={
            200: {
                "content": {"application/x-tar": {}},
                "description": "NAME.sigmf: NAME/NAME.sigmf-data + NAME/NAME.sigmf-meta",
            }
        },
    )
    async def get_iq(
        sensor: Sensor = "default",
        t_from: From = None,
        to: To = None,
        freq_min_hz: Fmin = None,
        freq_max_hz: Fmax = None,
        detection_id: Annotated[
            int | None, Query(description="Instead of a span: the samples of this detection.")
        ] = None,
        margin_s: Annotated[
            float, Query(description="With detection_id: seconds added on each side.")
        ] = DEFAULT_MARGIN_S,
    ):
        archive, conn = await anyio.to_thread.run_sync(
            _plan_iq, settings, paths, sensor, t_from, to, freq_min_hz, freq_max_hz, detection_id, margin_s
        )
        return StreamingResponse(
            _stream(archive, conn),
            media_type="application/x-tar",
            headers={
                "Content-Length": str(archive.content_length),
                "Content-Disposition": f'attachment; filename="{archive.file_name}"',
                "X-Samples": str(archive.recording.n_samples),
                "X-Sample-Rate-Hz": f"{archive.recording.sample_rate_hz:.0f}",
            },
        )

    return app


def _plan_iq(
    settings: ApiSettings, paths: DataPaths, sensor, t_from, to, freq_min_hz, freq_max_hz, detection_id, margin_s
):
    """Validate, open the analysis DB in one read transaction and plan the archive (every error
    comes out here, before the response starts); the caller streams it and closes ``conn``."""
    from sdr_assets.sigmf.export import SpanArchive

    lo, hi = params.band(freq_min_hz, freq_max_hz)
    if detection_id is not None:
        if t_from is not None or to is not None:
            raise ConfigError("give detection_id alone, or from and to; not both.")
        if not 1 <= detection_id < 2**63:
            raise ConfigError(f"detection_id={detection_id} is not a detection id (a positive integer).")
        margin = params.finite("margin_s", margin_s, lo=0.0, hi=MAX_MARGIN_S, example="0.1")
    else:
        sensor = params.sensor(paths, sensor)
        t0, t1 = params.span(t_from, to, required=True)
    path = paths.analysis_db
    with reading(path):
        conn = _connect(path, _ANALYSIS_HINT)
        try:
            conn.execute("BEGIN")  # one read snapshot for the planning and the whole stream
            name = None
            if detection_id is not None:
                det = queries.detection(conn, detection_id)
                if det is None:
                    raise NotFound(
                        f"detection_id={detection_id}: no such detection in the analysis DB "
                        "(evicted with its window, or never found); list them with /api/detections."
                    )
                sensor = split_key(det.partition_key)[0]
                pad_ns = int(margin * NS_PER_S)
                t0, t1 = max(0, det.t_start_ns - pad_ns), det.t_end_ns + pad_ns
                name = f"{sensor}_detection{detection_id}"
            archive = SpanArchive(
                conn, sensor, t0, t1, freq_min_hz=lo, freq_max_hz=hi, max_bytes=settings.max_iq_bytes, name=name
            )
        except BaseException:
            conn.close()
            raise
    return archive, conn


async def _stream(archive, conn: queries.Connection):
    """The archive's blocks, each read in a worker thread; the connection closes at the end, on
    an error and when the client goes away."""
    blocks = archive.blocks()
    try:
        while True:
            block = await anyio.to_thread.run_sync(next, blocks, None)
            if block is None:
                return
            yield block
    finally:
        blocks.close()
        conn.close()
