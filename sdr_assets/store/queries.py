"""Read-only queries for the HTTP API (and anything else that only reads): typed records.

Every function takes an open read-only connection (:func:`open_ro`) and returns frozen
dataclasses, never rows read by position. Reads of a hot DB are short and bounded (indexed
time ranges, a LIMIT): they go through what the capture writes (its telemetry rows), never
through its chunks. A sensor's rows in the analysis DB are found through its partition keys
(``SENSOR|TIME``; a bare time key is the ``default`` sensor's), so every lookup uses the
``(partition_key, t_start_ns)`` indexes.
"""

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from sdr_assets.records import samples_to_ns
from sdr_assets.store.db import connect_ro
from sdr_assets.store.messages import MESSAGE_SELECT, MessageRecord, message_from_row
from sdr_assets.store.sensors import split_key

API_BUSY_TIMEOUT_MS = 2_000  # a request waits this long for a lock, then says the DB is busy

Connection = sqlite3.Connection  # what the API holds per request (it never imports sqlite3)


def open_ro(path: Path | str, *, busy_timeout_ms: int = API_BUSY_TIMEOUT_MS) -> sqlite3.Connection:
    """A read-only connection usable from any one thread at a time (a streamed response moves
    between worker threads), with a short busy timeout."""
    conn = connect_ro(path, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    return conn


def has_table(conn: sqlite3.Connection, name: str) -> bool:
    return (
        conn.execute("SELECT 1 FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?", (name,)).fetchone()
        is not None
    )


def _in(values: Sequence) -> str:
    return "(" + ", ".join("?" * len(values)) + ")"


# ---- telemetry (any DB with a telemetry table) -------------------------------------------------
@dataclass(frozen=True)
class TelemetryRow:
    t_ns: int
    capture_id: int | None
    process: str
    metric: str
    value: float


@dataclass(frozen=True)
class MetricStats:
    process: str
    metric: str
    count: int
    min: float
    avg: float
    max: float
    first_t_ns: int
    last_t_ns: int


def _telemetry_where(since_ns: int, metric: str | None, process: str | None) -> tuple[str, list]:
    sql, args = " WHERE t_ns >= ?", [int(since_ns)]
    if metric is not None:
        sql += " AND metric = ?"
        args.append(metric)
    if process is not None:
        sql += " AND process = ?"
        args.append(process)
    return sql, args


def telemetry_rows(
    conn: sqlite3.Connection, since_ns: int, *, limit: int, metric: str | None = None, process: str | None = None
) -> tuple[list[TelemetryRow], bool]:
    """The newest ``limit`` rows at or after ``since_ns``, in time order, and whether older
    rows of the range were left out (an indexed read of at most ``limit + 1`` rows)."""
    where, args = _telemetry_where(since_ns, metric, process)
    rows = conn.execute(
        "SELECT t_ns, capture_id, process, metric, value FROM telemetry"
        + where
        + " ORDER BY t_ns DESC, rowid DESC LIMIT ?",
        (*args, int(limit) + 1),
    ).fetchall()
    truncated = len(rows) > limit
    return [TelemetryRow(*r) for r in reversed(rows[:limit])], truncated


def telemetry_stats(conn: sqlite3.Connection, since_ns: int, *, process: str | None = None) -> list[MetricStats]:
    """count/min/avg/max per (process, metric) of the rows at or after ``since_ns``."""
    where, args = _telemetry_where(since_ns, None, process)
    return [
        MetricStats(*r)
        for r in conn.execute(
            "SELECT process, metric, count(*), min(value), avg(value), max(value), min(t_ns), max(t_ns) "
            "FROM telemetry" + where + " GROUP BY process, metric ORDER BY process, metric",
            args,
        )
    ]


# ---- partitions of a sensor --------------------------------------------------------------------
@dataclass(frozen=True)
class PartitionSpan:
    partition_key: str
    t_start_ns: int
    t_end_ns: int
    n_chunks: int
    n_samples: int
    n_samples_lost: int


def sensor_partitions(conn: sqlite3.Connection, sensor: str) -> list[PartitionSpan]:
    """The partitions the analysis DB holds for ``sensor``, in time order."""
    rows = conn.execute(
        "SELECT partition_key, t_start_ns, t_end_ns, n_chunks, n_samples, n_samples_lost "
        "FROM partitions ORDER BY t_start_ns, partition_key"
    ).fetchall()
    return [PartitionSpan(*r) for r in rows if split_key(r[0])[0] == sensor]


# ---- detections --------------------------------------------------------------------------------
@dataclass(frozen=True)
class DetectionRecord:
    """A detection with its lineage: the frame it was found on, the hot-DB chunk seqs holding
    its samples, and the model version that found it."""

    detection_id: int
    partition_key: str
    t_start_ns: int
    t_end_ns: int
    freq_lower_hz: float
    freq_upper_hz: float
    label: str
    confidence: float
    model_version: str
    frame_id: int
    first_seq: int
    last_seq: int


_DETECTION_COLS = (
    "detection_id",
    "partition_key",
    "t_start_ns",
    "t_end_ns",
    "freq_lower_hz",
    "freq_upper_hz",
    "label",
    "confidence",
    "model_version",
    "frame_id",
    "first_seq",
    "last_seq",
)


@dataclass(frozen=True)
class SpanFilter:
    """Rows of some partitions overlapping [t_start_ns, t_end_ns) in time and
    [freq_min_hz, freq_max_hz] in frequency (None: unbounded)."""

    partition_keys: tuple[str, ...]
    t_start_ns: int | None = None
    t_end_ns: int | None = None
    freq_min_hz: float | None = None
    freq_max_hz: float | None = None

    def where(self) -> tuple[str, list]:
        sql, args = f"partition_key IN {_in(self.partition_keys)}", list(self.partition_keys)
        if self.t_end_ns is not None:
            sql += " AND t_start_ns < ?"
            args.append(int(self.t_end_ns))
        if self.t_start_ns is not None:
            sql += " AND t_end_ns > ?"
            args.append(int(self.t_start_ns))
        if self.freq_max_hz is not None:
            sql += " AND freq_lower_hz <= ?"
            args.append(float(self.freq_max_hz))
        if self.freq_min_hz is not None:
            sql += " AND freq_upper_hz >= ?"
            args.append(float(self.freq_min_hz))
        return sql, args


def detections(
    conn: sqlite3.Connection, span: SpanFilter, *, label: str | None = None, limit: int | None = None
) -> list[DetectionRecord]:
    """Detections in ``span`` (optionally of one label), in time order, the first ``limit``."""
    if not span.partition_keys:
        return []
    where, args = span.where()
    if label is not None:
        where += " AND label = ?"
        args.append(label)
    sql = f"SELECT {', '.join(_DETECTION_COLS)} FROM detections WHERE {where} ORDER BY t_start_ns, detection_id"
    if limit is not None:
        sql += " LIMIT ?"
        args.append(int(limit))
    return [DetectionRecord(*r) for r in conn.execute(sql, args)]


def detection(conn: sqlite3.Connection, detection_id: int) -> DetectionRecord | None:
    row = conn.execute(
        f"SELECT {', '.join(_DETECTION_COLS)} FROM detections WHERE detection_id = ?", (int(detection_id),)
    ).fetchone()
    return None if row is None else DetectionRecord(*row)


def detection_messages(conn: sqlite3.Connection, detection_ids: Sequence[int]) -> dict[int, list[int]]:
    """detection_id -> the decoded messages overlapping it (the message_detections view)."""
    if not detection_ids or not has_table(conn, "message_detections"):
        return {}
    out: dict[int, list[int]] = {}
    ids = [int(i) for i in detection_ids]
    for det_id, msg_id in conn.execute(
        f"SELECT detection_id, message_id FROM message_detections WHERE detection_id IN {_in(ids)} "
        "ORDER BY detection_id, message_id",
        ids,
    ):
        out.setdefault(det_id, []).append(msg_id)
    return out


# ---- ground truth ------------------------------------------------------------------------------
@dataclass(frozen=True)
class TruthRecord:
    """A ground-truth annotation the capture recorded (synthetic emissions, SigMF annotations)."""

    annotation_id: int
    partition_key: str
    capture_id: int
    t_start_ns: int
    t_end_ns: int
    freq_lower_hz: float
    freq_upper_hz: float
    label: str
    snr_db: float | None
    origin: str


def truth_annotations(conn: sqlite3.Connection, span: SpanFilter) -> list[TruthRecord]:
    """Ground truth in ``span``, in time order; one row per annotation (one crossing a partition
    boundary is held by both partitions: the first is kept)."""
    if not span.partition_keys:
        return []
    where, args = span.where()
    seen, out = set(), []
    for r in conn.execute(
        "SELECT annotation_id, partition_key, capture_id, t_start_ns, t_end_ns, freq_lower_hz, "
        f"freq_upper_hz, label, snr_db, origin FROM annotations WHERE {where} "
        "ORDER BY t_start_ns, annotation_id, partition_key",
        args,
    ):
        if r[0] not in seen:
            seen.add(r[0])
            out.append(TruthRecord(*r))
    return out


# ---- decoded messages --------------------------------------------------------------------------
def decoded_messages(
    conn: sqlite3.Connection,
    span: SpanFilter,
    *,
    model: str | None = None,
    device_id: str | None = None,
    channel: str | None = None,
    limit: int | None = None,
) -> list[MessageRecord]:
    """rtl_433 messages in ``span`` (optionally of one model / device id / channel), in time
    order, the first ``limit``; [] where the DB predates the decode tables."""
    if not span.partition_keys or not has_table(conn, "decoded_messages"):
        return []
    where, args = span.where()
    for col, value in (("model", model), ("device_id", device_id), ("channel", channel)):
        if value is not None:
            where += f" AND {col} = ?"
            args.append(value)
    sql = f"{MESSAGE_SELECT} WHERE {where} ORDER BY t_start_ns, message_id"
    if limit is not None:
        sql += " LIMIT ?"
        args.append(int(limit))
    return [message_from_row(r) for r in conn.execute(sql, args)]


def message_partitions(conn: sqlite3.Connection, message_ids: Sequence[int]) -> dict[int, str]:
    """message_id -> its partition key."""
    if not message_ids:
        return {}
    ids = [int(i) for i in message_ids]
    return dict(
        conn.execute(
            f"SELECT message_id, partition_key FROM decoded_messages WHERE message_id IN {_in(ids)}", ids
        ).fetchall()
    )


# ---- the samples of a span ---------------------------------------------------------------------
@dataclass(frozen=True)
class ChunkMeta:
    """A stored chunk without its samples."""

    seq: int
    partition_key: str
    t_start_ns: int
    sample_rate_hz: float
    center_freq_hz: float
    n_samples: int

    @property
    def t_end_ns(self) -> int:
        return self.t_start_ns + samples_to_ns(self.n_samples, self.sample_rate_hz)


def chunks_in_span(
    conn: sqlite3.Connection, sensor: str, partition_keys: Sequence[str], t_start_ns: int, t_end_ns: int
) -> list[ChunkMeta]:
    """The sensor's chunks (of ``partition_keys``) holding any sample of [t_start_ns, t_end_ns),
    in time order: the one that starts at or before t_start_ns (it may reach into the span) and
    every one that starts inside; two index seeks per partition, no sample read."""
    if not partition_keys:
        return []
    keys = list(partition_keys)
    lower = conn.execute(
        f"SELECT max(t_start_ns) FROM chunks WHERE partition_key IN {_in(keys)} AND t_start_ns <= ? AND sensor = ?",
        (*keys, int(t_start_ns), sensor),
    ).fetchone()[0]
    rows = conn.execute(
        "SELECT seq, partition_key, t_start_ns, sample_rate_hz, center_freq_hz, n_samples FROM chunks "
        f"WHERE partition_key IN {_in(keys)} AND t_start_ns >= ? AND t_start_ns < ? AND sensor = ? "
        "ORDER BY t_start_ns, seq",
        (*keys, int(t_start_ns if lower is None else lower), int(t_end_ns), sensor),
    )
    return [c for c in (ChunkMeta(*r) for r in rows) if c.t_end_ns > t_start_ns]


def chunk_iq(conn: sqlite3.Connection, sensor: str, seqs: Sequence[int]) -> Iterator[tuple[int, bytes]]:
    """(seq, cu8) of each chunk in ``seqs``, in that order, one chunk in memory at a time."""
    for seq in seqs:
        row = conn.execute("SELECT iq FROM chunks WHERE sensor = ? AND seq = ?", (sensor, int(seq))).fetchone()
        yield int(seq), (None if row is None else row[0])


def gap_starts(conn: sqlite3.Connection, partition_keys: Sequence[str], t_start_ns: int, t_end_ns: int) -> list[int]:
    """Start times of the recorded losses (samples lost > 0) overlapping the span."""
    if not partition_keys:
        return []
    keys = list(partition_keys)
    return sorted(
        {
            r[0]
            for r in conn.execute(
                f"SELECT t_start_ns FROM gaps WHERE partition_key IN {_in(keys)} AND n_samples_lost > 0 "
                "AND t_start_ns < ? AND t_end_ns > ?",
                (*keys, int(t_end_ns), int(t_start_ns)),
            )
        }
    )
