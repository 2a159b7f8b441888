"""The body of ``AnalysisDB.load_window``: ATTACH the snapshot read-only, copy, evict."""

import sqlite3
import time
from dataclasses import dataclass

from sdr_assets.errors import PartitionNotHeldError, StoreError
from sdr_assets.records import NS_PER_S, samples_to_ns
from sdr_assets.store.sensors import split_key
from sdr_assets.store.txn import Txn

PARTITIONED_TABLES = (
    "chunks",
    "gaps",
    "annotations",
    "frames",
    "labels",
    "detections",
    "decoded_messages",
    "decoded_packages",
    "decode_runs",
    "energy_bursts",
    "energy_runs",
)


@dataclass
class WindowStats:
    partition_key: str
    n_chunks: int
    n_samples: int
    n_gaps: int
    n_samples_lost: int  # recorded losses, clipped to the window
    first_seq: int | None
    last_seq: int | None
    duration_s: float  # window length
    covered_s: float  # stored samples / fs
    expected_samples: int  # duration_s * fs
    coverage: float  # stored samples in the window / (expected_samples - n_samples_lost)
    empty: bool
    sample_rate_hz: float = 0.0
    dropped_partitions: tuple[str, ...] = ()  # evicted by keep_partitions: delete their PNGs


def drop_partitions(conn: sqlite3.Connection, keys: list[str]) -> None:
    """Delete ``keys`` from every table with a partition_key (inside the caller's transaction)."""
    for key in keys:
        for table in PARTITIONED_TABLES + ("partitions",):
            conn.execute(f"DELETE FROM main.{table} WHERE partition_key = ?", (key,))


def load_window_into(
    conn: sqlite3.Connection,
    snap_uri: str,
    snapshot_name: str,
    partition_key: str,
    t_start_ns: int,
    t_end_ns: int,
    keep_partitions: int,
    require_held: bool,
):
    try:
        conn.execute("ATTACH DATABASE ? AS snap", (snap_uri,))
    except sqlite3.Error as exc:
        raise StoreError(f"cannot attach snapshot {snapshot_name} ({exc}); take a new snapshot.") from exc
    try:
        snap_tables = {r[0] for r in conn.execute("SELECT name FROM snap.sqlite_master WHERE type='table'")}
        if not {"chunks", "gaps", "annotations"} <= snap_tables:
            raise StoreError(f"{snapshot_name} is not a hot-DB snapshot (no chunks/gaps/annotations tables).")
        snap_last_seq, snap_t_end, snap_t_start, _ = _snap_figures(conn)
        if require_held and (snap_last_seq is None or snap_t_start > t_start_ns or snap_t_end < t_end_ns):
            held = "nothing" if snap_last_seq is None else f"[{snap_t_start}, {snap_t_end})"
            raise PartitionNotHeldError(
                f"partition {partition_key} [{t_start_ns}, {t_end_ns}) is not fully held by "
                f"{snapshot_name} (it holds {held}); wait for the window to close, or backfill "
                "only windows the hot DB still holds."
            )
        crc = "iq_crc32" if "iq_crc32" in {r[1] for r in conn.execute("PRAGMA snap.table_info(chunks)")} else "NULL"
        with Txn(conn, f"loading window {partition_key}", snapshot_name, wrap_errors=False):
            for table in ("chunks", "gaps", "annotations"):
                conn.execute(f"DELETE FROM main.{table} WHERE partition_key = ?", (partition_key,))
            _copy(conn, crc, partition_key, t_start_ns, t_end_ns, snapshot_name)
            stats = _stats(conn, partition_key, t_start_ns, t_end_ns)
            conn.execute(
                "INSERT OR REPLACE INTO main.partitions (partition_key, t_start_ns, t_end_ns, snapshot_path, "
                "snapshot_last_seq, n_chunks, n_samples, n_samples_lost, loaded_ns) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    partition_key,
                    t_start_ns,
                    t_end_ns,
                    snapshot_name,
                    snap_last_seq,
                    stats["n_chunks"],
                    stats["n_samples"],
                    stats["n_samples_lost"],
                    time.time_ns(),
                ),
            )
            dropped = [
                r[0]
                for r in conn.execute(
                    "SELECT partition_key FROM main.partitions WHERE partition_key != ? "
                    "ORDER BY loaded_ns DESC, t_start_ns DESC LIMIT -1 OFFSET ?",
                    (partition_key, keep_partitions - 1),
                )
            ]
            drop_partitions(conn, dropped)
    finally:
        conn.execute("DETACH DATABASE snap")
    return WindowStats(partition_key=partition_key, dropped_partitions=tuple(dropped), **stats)


def _snap_figures(conn: sqlite3.Connection):
    last = conn.execute(
        "SELECT seq, t_start_ns, n_samples, sample_rate_hz FROM snap.chunks ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    if last is None:
        return None, None, None, 0
    first = conn.execute("SELECT min(t_start_ns) FROM snap.chunks").fetchone()[0]
    end = last[1] + samples_to_ns(last[2], last[3])
    return last[0], end, first, None


def _copy(conn, crc: str, key: str, t0: int, t1: int, snapshot_name: str) -> None:
    sensor = split_key(key)[0]  # each hot DB numbers its chunks from 1: a chunk is (sensor, seq)
    try:
        conn.execute(
            "INSERT INTO main.chunks (sensor, seq, partition_key, capture_id, t_start_ns, sample_rate_hz, "
            "center_freq_hz, gain_db, n_samples, iq, iq_crc32) "
            f"SELECT ?, seq, ?, capture_id, t_start_ns, sample_rate_hz, center_freq_hz, gain_db, n_samples, iq, "
            f"{crc} FROM snap.chunks WHERE t_start_ns >= ? AND t_start_ns < ? ORDER BY t_start_ns",
            (sensor, key, t0, t1),
        )
    except sqlite3.IntegrityError as exc:
        other = conn.execute(
            "SELECT DISTINCT m.partition_key FROM main.chunks m JOIN snap.chunks s ON s.seq = m.seq "
            "WHERE m.sensor = ? AND s.t_start_ns >= ? AND s.t_start_ns < ? AND m.partition_key != ? "
            "LIMIT 3",
            (sensor, t0, t1, key),
        ).fetchall()
        raise StoreError(
            f"window {key} overlaps chunks already held by partition(s) {[r[0] for r in other]} "
            f"({exc}); partitions must not overlap: drop those first (AnalysisDB.drop_partition)."
        ) from exc
    conn.execute(
        "INSERT INTO main.gaps (gap_id, partition_key, capture_id, t_start_ns, t_end_ns, n_samples_lost, "
        "cause, detail) SELECT gap_id, ?, capture_id, t_start_ns, t_end_ns, n_samples_lost, cause, detail "
        "FROM snap.gaps WHERE t_start_ns < ? AND t_end_ns > ?",
        (key, t1, t0),
    )
    conn.execute(
        "INSERT INTO main.annotations (annotation_id, partition_key, capture_id, t_start_ns, t_end_ns, "
        "freq_lower_hz, freq_upper_hz, label, snr_db, origin) SELECT annotation_id, ?, capture_id, "
        "t_start_ns, t_end_ns, freq_lower_hz, freq_upper_hz, label, snr_db, origin "
        "FROM snap.annotations WHERE t_start_ns < ? AND t_end_ns > ?",
        (key, t1, t0),
    )


def _sample_rate(conn, key: str, t0: int) -> float:
    """fs of the window: its first chunk, else the snapshot's nearest chunk, else the capture."""
    for sql, args in (
        ("SELECT sample_rate_hz FROM main.chunks WHERE partition_key = ? ORDER BY t_start_ns LIMIT 1", (key,)),
        ("SELECT sample_rate_hz FROM snap.chunks WHERE t_start_ns < ? ORDER BY t_start_ns DESC LIMIT 1", (t0,)),
        ("SELECT sample_rate_hz FROM snap.chunks WHERE t_start_ns >= ? ORDER BY t_start_ns LIMIT 1", (t0,)),
        ("SELECT sample_rate_hz FROM snap.captures ORDER BY capture_id DESC LIMIT 1", ()),
    ):
        try:
            row = conn.execute(sql, args).fetchone()
        except sqlite3.OperationalError:  # a snapshot without a captures table
            row = None
        if row and row[0]:
            return float(row[0])
    return 0.0


def _samples_in_window(conn, key: str, t0: int, t1: int) -> float:
    """Stored samples whose time lies in [t0, t1): the partition's chunks clipped to the
    window, plus the tail of the snapshot's chunk that straddles t0 (it belongs to the
    previous partition, by its start), so chunk boundaries never read as missing samples."""
    total = 0.0
    rows = list(
        conn.execute("SELECT t_start_ns, n_samples, sample_rate_hz FROM main.chunks WHERE partition_key = ?", (key,))
    )
    rows += conn.execute(
        "SELECT t_start_ns, n_samples, sample_rate_hz FROM snap.chunks WHERE t_start_ns < ? "
        "ORDER BY t_start_ns DESC LIMIT 1",
        (t0,),
    ).fetchall()
    for c_t0, n, fs in rows:
        c_t1 = c_t0 + n * NS_PER_S / fs
        overlap = min(c_t1, t1) - max(c_t0, t0)
        if overlap > 0:
            total += overlap * fs / NS_PER_S
    return total


def _stats(conn, key: str, t0: int, t1: int) -> dict:
    n_chunks, n_samples, first_seq, last_seq, covered_s = conn.execute(
        "SELECT count(*), coalesce(sum(n_samples), 0), min(seq), max(seq), "
        "coalesce(sum(n_samples / sample_rate_hz), 0.0) FROM main.chunks WHERE partition_key = ?",
        (key,),
    ).fetchone()
    lost, n_gaps = 0, 0
    for g_t0, g_t1, g_lost in conn.execute(
        "SELECT t_start_ns, t_end_ns, n_samples_lost FROM main.gaps WHERE partition_key = ?", (key,)
    ):
        n_gaps += 1
        span = g_t1 - g_t0
        overlap = min(g_t1, t1) - max(g_t0, t0)
        lost += g_lost if span <= 0 else int(round(g_lost * overlap / span))
    rate = _sample_rate(conn, key, t0)
    duration_s = (t1 - t0) / NS_PER_S
    expected = int(round(duration_s * rate))
    denom = expected - lost
    in_window = _samples_in_window(conn, key, t0, t1)
    coverage = min(1.0, in_window / denom) if denom > 0 else (1.0 if n_samples else 0.0)
    return dict(
        n_chunks=n_chunks,
        n_samples=n_samples,
        n_gaps=n_gaps,
        n_samples_lost=lost,
        first_seq=first_seq,
        last_seq=last_seq,
        duration_s=duration_s,
        covered_s=covered_s,
        expected_samples=expected,
        coverage=coverage,
        empty=n_chunks == 0,
        sample_rate_hz=rate,
    )
