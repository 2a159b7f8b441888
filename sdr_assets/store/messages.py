"""Decoded messages, decoder packages and the device inventory in the analysis DB (migration 4).

- ``decoded_messages``: one row per message a decoder (rtl_433) printed, in absolute time
  (``t_start_ns`` = the segment's start + rtl_433's offset; ``t_end_ns`` from its package's
  width), the band it occupies (``freq_lower_hz``/``freq_upper_hz``), model / device id /
  channel, levels, the whole message as JSON, and lineage: the hot-DB chunk seqs its samples
  lie in and the decoder's version.
- ``decoded_packages``: every package the decoder's pulse detector found, decoded or not
  (``n_messages`` = 0): the boxes that teach the detector (``training_labels``).
- ``decode_runs``: one row per decoded partition (decoder, version, when, figures).
- ``message_detections`` (a view): message x detection pairs overlapping in time and band.
- ``device_sightings`` / ``device_inventory``: per sensor and window, each device's message
  times, SNRs and frequencies (kept when the circular buffer evicts the window); the inventory
  is derived from them (``decode.inventory``) and stored per sensor for the UI and SQL users.

The partition's rows of the first three tables are replaced together (``replace_decodes``)
and evicted with the partition (``store.window.PARTITIONED_TABLES``).
"""

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from sdr_assets.records import NS_PER_S, Segment, samples_to_ns, segments
from sdr_assets.store.chunks import ChunkRow
from sdr_assets.store.txn import Txn


def device_name(model: str, device_id: str | None, channel: str | None) -> str:
    """``Nexus-TH id 181 ch 2`` (id and channel left out where the model has none)."""
    return " ".join(p for p in (model, device_id and f"id {device_id}", channel and f"ch {channel}") if p)


@dataclass(frozen=True)
class PackageRecord:
    """A decoder package in absolute time and Hz (``package_id`` is None until stored)."""

    t_start_ns: int
    t_end_ns: int
    modulation: str  # "OOK" | "FSK"
    n_pulses: int
    freq_lower_hz: float
    freq_upper_hz: float
    band_from: str  # "iq" (measured on the samples) | "rtl_433" (its estimate +- a margin)
    freq1_hz: float | None
    freq2_hz: float | None
    rssi_db: float | None
    snr_db: float | None
    noise_db: float | None
    n_messages: int
    first_seq: int
    last_seq: int
    decoder_version: str
    package_id: int | None = None


@dataclass(frozen=True)
class MessageRecord:
    """A decoded message in absolute time and Hz (``message_id``/``package_id`` None until
    stored; a message belongs to the package that starts when it does)."""

    t_start_ns: int
    t_end_ns: int
    freq_hz: float | None
    freq2_hz: float | None
    freq_lower_hz: float
    freq_upper_hz: float
    model: str
    device_id: str | None
    channel: str | None
    modulation: str | None
    rssi_db: float | None
    snr_db: float | None
    noise_db: float | None
    message: dict = field(hash=False)
    first_seq: int = 0
    last_seq: int = 0
    decoder_version: str = ""
    message_id: int | None = None
    package_id: int | None = None

    @property
    def device_key(self) -> tuple[str, str, str]:
        """(model, id, channel) with '' for an absent id or channel: one device."""
        return self.model, self.device_id or "", self.channel or ""

    def name(self) -> str:
        return device_name(self.model, self.device_id, self.channel)


@dataclass(frozen=True)
class DecodeRun:
    partition_key: str
    decoder: str
    decoder_version: str
    decoded_ns: int
    n_segments: int
    n_samples: int
    n_messages: int
    n_packages: int
    seconds: float


@dataclass(frozen=True)
class Sighting:
    """One device in one window: its message times (ns), SNRs (dB) and frequencies (Hz)."""

    sensor: str
    partition_key: str
    model: str
    device_id: str
    channel: str
    times_ns: tuple[int, ...]
    snr_db: tuple[float | None, ...]
    freq_hz: tuple[float | None, ...]

    @property
    def device_key(self) -> tuple[str, str, str]:
        return self.model, self.device_id, self.channel


def _path(conn: sqlite3.Connection) -> str:
    """The main database file of ``conn`` (for error messages)."""
    return next((row[2] for row in conn.execute("PRAGMA database_list") if row[1] == "main"), "analysis DB")


# ---- reading the window's samples ------------------------------------------------------------
def segment_spans(conn: sqlite3.Connection, partition_key: str) -> list[Segment]:
    """The partition's contiguous segments (one decoder run each), in time order (records.segments)."""
    return segments(
        ChunkRow(seq, t0, fs, fc, n, None)
        for seq, t0, fs, fc, n in conn.execute(
            "SELECT seq, t_start_ns, sample_rate_hz, center_freq_hz, n_samples FROM chunks "
            "WHERE partition_key = ? ORDER BY t_start_ns, seq",
            (partition_key,),
        )
    )


def iter_segment_iq(conn: sqlite3.Connection, partition_key: str, seg: Segment) -> Iterator[bytes]:
    """The segment's cu8, chunk by chunk in time order (one chunk in memory at a time)."""
    cur = conn.execute(
        "SELECT iq FROM chunks WHERE partition_key = ? AND t_start_ns >= ? AND t_start_ns < ? ORDER BY t_start_ns, seq",
        (partition_key, seg.t_start_ns, seg.t_end_ns),
    )
    try:
        for (iq,) in cur:
            yield iq
    finally:
        cur.close()


def read_iq(conn: sqlite3.Connection, partition_key: str, seg: Segment, first_sample: int, end_sample: int) -> bytes:
    """cu8 of samples [first_sample, end_sample) of a segment (offsets from its start); two
    index seeks, only the chunks holding those samples are read."""
    t_a = seg.t_start_ns + samples_to_ns(first_sample, seg.sample_rate_hz)
    t_b = seg.t_start_ns + samples_to_ns(end_sample, seg.sample_rate_hz)
    row = conn.execute(
        "SELECT max(t_start_ns) FROM chunks WHERE partition_key = ? AND t_start_ns >= ? AND t_start_ns <= ?",
        (partition_key, seg.t_start_ns, t_a),
    ).fetchone()
    lower = seg.t_start_ns if row[0] is None else row[0]
    rows = conn.execute(
        "SELECT t_start_ns, iq FROM chunks WHERE partition_key = ? AND t_start_ns >= ? AND t_start_ns < ? "
        "AND t_start_ns < ? ORDER BY t_start_ns, seq",
        (partition_key, lower, t_b, seg.t_end_ns),
    ).fetchall()
    if not rows:
        return b""
    base = round((rows[0][0] - seg.t_start_ns) * seg.sample_rate_hz / NS_PER_S)  # sample index of rows[0]
    data = b"".join(iq for _, iq in rows)
    return data[2 * max(0, first_sample - base) : 2 * max(0, end_sample - base)]


# ---- decodes ---------------------------------------------------------------------------------
_PACKAGE_COLS = (
    "t_start_ns",
    "t_end_ns",
    "modulation",
    "n_pulses",
    "freq_lower_hz",
    "freq_upper_hz",
    "band_from",
    "freq1_hz",
    "freq2_hz",
    "rssi_db",
    "snr_db",
    "noise_db",
    "n_messages",
    "first_seq",
    "last_seq",
    "decoder_version",
)
_MESSAGE_COLS = (
    "t_start_ns",
    "t_end_ns",
    "freq_hz",
    "freq2_hz",
    "freq_lower_hz",
    "freq_upper_hz",
    "model",
    "device_id",
    "channel",
    "modulation",
    "rssi_db",
    "snr_db",
    "noise_db",
    "message_json",
    "first_seq",
    "last_seq",
    "decoder_version",
)


def replace_decodes(
    conn: sqlite3.Connection, run: DecodeRun, packages: Sequence[PackageRecord], messages: Sequence[MessageRecord]
) -> None:
    """Replace the partition's packages, messages and decode run in one transaction."""
    key = run.partition_key
    with Txn(conn, f"writing the decodes of {key}", _path(conn)):
        for table in ("decoded_messages", "decoded_packages", "decode_runs"):
            conn.execute(f"DELETE FROM {table} WHERE partition_key = ?", (key,))
        package_ids: dict[int, int] = {}
        sql = (
            f"INSERT INTO decoded_packages (partition_key, {', '.join(_PACKAGE_COLS)}) "
            f"VALUES (?{', ?' * len(_PACKAGE_COLS)})"
        )
        for p in packages:
            cur = conn.execute(sql, (key, *(getattr(p, c) for c in _PACKAGE_COLS)))
            package_ids.setdefault(p.t_start_ns, cur.lastrowid)
        sql = (
            f"INSERT INTO decoded_messages (partition_key, package_id, {', '.join(_MESSAGE_COLS)}) "
            f"VALUES (?, ?{', ?' * len(_MESSAGE_COLS)})"
        )
        conn.executemany(
            sql,
            [
                (
                    key,
                    package_ids.get(m.t_start_ns),
                    *(
                        json.dumps(m.message, sort_keys=True) if c == "message_json" else getattr(m, c)
                        for c in _MESSAGE_COLS
                    ),
                )
                for m in messages
            ],
        )
        conn.execute(
            "INSERT INTO decode_runs (partition_key, decoder, decoder_version, decoded_ns, n_segments, "
            "n_samples, n_messages, n_packages, seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key,
                run.decoder,
                run.decoder_version,
                run.decoded_ns,
                run.n_segments,
                run.n_samples,
                run.n_messages,
                run.n_packages,
                run.seconds,
            ),
        )


def decodes_available(conn: sqlite3.Connection) -> bool:
    """Whether the database has the decode tables (migration 4; a read-only copy may predate it)."""
    return (
        conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'decoded_messages'").fetchone()
        is not None
    )


def decode_run(conn: sqlite3.Connection, partition_key: str) -> DecodeRun | None:
    """The partition's decode run, or None when it was never decoded (or was evicted)."""
    row = conn.execute(
        "SELECT partition_key, decoder, decoder_version, decoded_ns, n_segments, n_samples, n_messages, "
        "n_packages, seconds FROM decode_runs WHERE partition_key = ?",
        (partition_key,),
    ).fetchone()
    return None if row is None else DecodeRun(*row)


def window_loaded_ns(conn: sqlite3.Connection, partition_key: str) -> int | None:
    """When the partition's window was (re)loaded into the analysis DB (None: not held)."""
    row = conn.execute("SELECT loaded_ns FROM partitions WHERE partition_key = ?", (partition_key,)).fetchone()
    return None if row is None else int(row[0])


def packages(conn: sqlite3.Connection, partition_key: str) -> list[PackageRecord]:
    rows = conn.execute(
        f"SELECT {', '.join(_PACKAGE_COLS)}, package_id FROM decoded_packages "
        "WHERE partition_key = ? ORDER BY t_start_ns, package_id",
        (partition_key,),
    )
    return [PackageRecord(*r) for r in rows]


def messages(conn: sqlite3.Connection, partition_key: str, limit: int | None = None) -> list[MessageRecord]:
    """The partition's messages in time order (the first ``limit`` when given)."""
    sql = MESSAGE_SELECT + " WHERE partition_key = ? ORDER BY t_start_ns, message_id"
    args: tuple = (partition_key,)
    if limit is not None:
        sql += " LIMIT ?"
        args += (int(limit),)
    return [message_from_row(r) for r in conn.execute(sql, args)]


MESSAGE_SELECT = f"SELECT {', '.join(_MESSAGE_COLS)}, message_id, package_id FROM decoded_messages"


def message_from_row(row) -> MessageRecord:
    """A row of :data:`MESSAGE_SELECT` as a record."""
    d = dict(zip(_MESSAGE_COLS + ("message_id", "package_id"), row))
    d["message"] = json.loads(d.pop("message_json"))
    return MessageRecord(**d)


@dataclass(frozen=True)
class MessageDetection:
    message_id: int
    detection_id: int


def message_detections(conn: sqlite3.Connection, partition_key: str) -> list[MessageDetection]:
    """Pairs of a message and a detection that overlap in time and band (the view)."""
    return [
        MessageDetection(*r)
        for r in conn.execute(
            "SELECT message_id, detection_id FROM message_detections WHERE partition_key = ? "
            "ORDER BY message_id, detection_id",
            (partition_key,),
        )
    ]


# ---- device sightings and the inventory -------------------------------------------------------
def replace_sightings(conn: sqlite3.Connection, sensor: str, partition_key: str, sightings: Iterable[Sighting]) -> None:
    """Replace one window's sightings of a sensor (re-materialising a window counts it once)."""
    with Txn(conn, f"writing the device sightings of {partition_key}", _path(conn)):
        conn.execute("DELETE FROM device_sightings WHERE sensor = ? AND partition_key = ?", (sensor, partition_key))
        conn.executemany(
            "INSERT INTO device_sightings (sensor, partition_key, model, device_id, channel, first_seen_ns, "
            "last_seen_ns, n_messages, times_ns_json, snr_db_json, freq_hz_json) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    s.sensor,
                    s.partition_key,
                    s.model,
                    s.device_id,
                    s.channel,
                    min(s.times_ns),
                    max(s.times_ns),
                    len(s.times_ns),
                    json.dumps(list(s.times_ns)),
                    json.dumps(list(s.snr_db)),
                    json.dumps(list(s.freq_hz)),
                )
                for s in sightings
                if s.times_ns
            ],
        )


def sightings(conn: sqlite3.Connection, sensor: str, before_ns: int, since_ns: int | None = None) -> list[Sighting]:
    """The sensor's sightings in windows that started before ``before_ns`` (and, with
    ``since_ns``, last saw their device at or after it), in time order (all the times of a row
    lie in its window)."""
    rows = conn.execute(
        "SELECT sensor, partition_key, model, device_id, channel, times_ns_json, snr_db_json, freq_hz_json "
        "FROM device_sightings WHERE sensor = ? AND first_seen_ns < ? AND last_seen_ns >= ? "
        "ORDER BY first_seen_ns",
        (sensor, before_ns, since_ns if since_ns is not None else -(2**62)),
    )
    return [
        Sighting(s, k, m, d, c, tuple(json.loads(t)), tuple(json.loads(snr)), tuple(json.loads(f)))
        for s, k, m, d, c, t, snr, f in rows
    ]


@dataclass(frozen=True)
class DeviceTotals:
    """A device's whole history in the sightings (however old): first/last seen, messages."""

    model: str
    device_id: str
    channel: str
    first_seen_ns: int
    last_seen_ns: int
    n_messages: int

    @property
    def device_key(self) -> tuple[str, str, str]:
        return self.model, self.device_id, self.channel

    def name(self) -> str:
        return device_name(self.model, self.device_id, self.channel)


@dataclass(frozen=True)
class DeviceRow(DeviceTotals):
    """A row of ``device_inventory``: the totals, and medians over the recent messages."""

    sensor: str = ""
    median_snr_db: float | None = None
    median_freq_hz: float | None = None
    usual_interval_s: float | None = None
    as_of_ns: int = 0


def device_totals(conn: sqlite3.Connection, sensor: str, before_ns: int) -> list[DeviceTotals]:
    """Per device of the sensor, over its sightings in windows that started before ``before_ns``."""
    return [
        DeviceTotals(*r)
        for r in conn.execute(
            "SELECT model, device_id, channel, min(first_seen_ns), max(last_seen_ns), sum(n_messages) "
            "FROM device_sightings WHERE sensor = ? AND first_seen_ns < ? GROUP BY model, device_id, channel "
            "ORDER BY min(first_seen_ns)",
            (sensor, before_ns),
        )
    ]


_DEVICE_COLS = (
    "sensor",
    "model",
    "device_id",
    "channel",
    "first_seen_ns",
    "last_seen_ns",
    "n_messages",
    "median_snr_db",
    "median_freq_hz",
    "usual_interval_s",
    "as_of_ns",
)


def replace_inventory(conn: sqlite3.Connection, sensor: str, rows: Sequence[DeviceRow]) -> None:
    with Txn(conn, f"writing the device inventory of {sensor}", _path(conn)):
        conn.execute("DELETE FROM device_inventory WHERE sensor = ?", (sensor,))
        conn.executemany(
            f"INSERT INTO device_inventory ({', '.join(_DEVICE_COLS)}) VALUES ({', '.join('?' * len(_DEVICE_COLS))})",
            [tuple(getattr(r, c) for c in _DEVICE_COLS) for r in rows],
        )


def inventory(conn: sqlite3.Connection, sensor: str) -> list[DeviceRow]:
    """The sensor's devices, most recently seen first."""
    return [
        DeviceRow(**dict(zip(_DEVICE_COLS, r)))
        for r in conn.execute(
            f"SELECT {', '.join(_DEVICE_COLS)} FROM device_inventory WHERE sensor = ? "
            "ORDER BY last_seen_ns DESC, model, device_id, channel",
            (sensor,),
        )
    ]
