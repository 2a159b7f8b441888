"""SQLite connections and numbered migrations for the hot and analysis databases.

One writer per database opens it with :func:`connect_hot` (or :func:`connect_rw`): 64 KiB
pages (set before the first table exists), WAL, explicit ``BEGIN IMMEDIATE`` transactions
(``isolation_level=None``), a small page cache. Readers open with :func:`connect_ro`
(``mode=ro`` URI). Schema is one SQL text per migration, recorded in ``schema_migrations``,
each applied in its own transaction.
"""

import contextlib
import os
import sqlite3
import time
from importlib import resources
from pathlib import Path

from sdr_assets.errors import ConfigError, StoreError

PAGE_SIZE = 65536
JOURNAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024
BUSY_TIMEOUT_MS = 10_000
# The analysis DB's writers are batch steps: one waits for another sensor's window load (a 60 s
# window at 3.2 MS/s is 384 MB copied in one transaction, longer when sensors share the cores)
# rather than fail with "database is locked" (bench/chain.py, 4 sensors on one core).
ANALYSIS_BUSY_TIMEOUT_MS = 600_000
CACHE_SIZE_KIB = 8 * 1024  # 8 MiB of page cache: capture must fit on a 512 MB board
SYNCHRONOUS_MODES = ("NORMAL", "FULL", "OFF")
SQLITE_HEADER = b"SQLite format 3\x00"

# PRAGMA application_id marks which database a file is, so hot.db is never migrated as an
# analysis DB (or the other way round).
HOT_APP_ID = 0x53445248  # 'SDRH'
ANALYSIS_APP_ID = 0x53445241  # 'SDRA'

# Migration 2 (both DBs): a CRC-32 of each chunk's iq, written by the hot writer and carried
# into the analysis DB, so a snapshot's payload (not only its b-tree) can be verified; and
# a (metric, t_ns) index for telemetry history queries.
_HOT_V2 = """
ALTER TABLE chunks ADD COLUMN iq_crc32 INTEGER;
CREATE INDEX telemetry_metric_t ON telemetry (metric, t_ns);
"""
# Analysis migration 2 also lets a gap or annotation that crosses a partition boundary be
# held by both partitions: the key becomes (partition_key, id) instead of the id alone.
_ANALYSIS_V2 = """
ALTER TABLE chunks ADD COLUMN iq_crc32 INTEGER;
CREATE TABLE gaps_v2 (
    gap_id INTEGER NOT NULL, partition_key TEXT NOT NULL, capture_id INTEGER NOT NULL,
    t_start_ns INTEGER NOT NULL, t_end_ns INTEGER NOT NULL, n_samples_lost INTEGER NOT NULL,
    cause TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (partition_key, gap_id));
INSERT INTO gaps_v2 SELECT gap_id, partition_key, capture_id, t_start_ns, t_end_ns,
    n_samples_lost, cause, detail FROM gaps;
DROP TABLE gaps;
ALTER TABLE gaps_v2 RENAME TO gaps;
CREATE TABLE annotations_v2 (
    annotation_id INTEGER NOT NULL, partition_key TEXT NOT NULL, capture_id INTEGER NOT NULL,
    t_start_ns INTEGER NOT NULL, t_end_ns INTEGER NOT NULL, freq_lower_hz REAL NOT NULL,
    freq_upper_hz REAL NOT NULL, label TEXT NOT NULL, snr_db REAL, origin TEXT NOT NULL,
    PRIMARY KEY (partition_key, annotation_id));
INSERT INTO annotations_v2 SELECT annotation_id, partition_key, capture_id, t_start_ns,
    t_end_ns, freq_lower_hz, freq_upper_hz, label, snr_db, origin FROM annotations;
DROP TABLE annotations;
ALTER TABLE annotations_v2 RENAME TO annotations;
CREATE INDEX labels_partition ON labels (partition_key);
CREATE INDEX telemetry_t ON telemetry (t_ns);
CREATE INDEX telemetry_metric_t ON telemetry (metric, t_ns);
"""


# Analysis migration 3: several radio sensors share the analysis DB, and each hot DB numbers
# its chunks from 1, so a chunk is (sensor, seq): the sensor is the part of the partition key
# before '|' ('default' for the keys of the single-sensor days).
_ANALYSIS_V3 = """
CREATE TABLE chunks_v3 (
    sensor TEXT NOT NULL, seq INTEGER NOT NULL, partition_key TEXT NOT NULL,
    capture_id INTEGER NOT NULL, t_start_ns INTEGER NOT NULL, sample_rate_hz REAL NOT NULL,
    center_freq_hz REAL NOT NULL, gain_db REAL, n_samples INTEGER NOT NULL, iq BLOB NOT NULL,
    iq_crc32 INTEGER,
    PRIMARY KEY (sensor, seq));
INSERT INTO chunks_v3 SELECT
    CASE WHEN instr(partition_key, '|') > 0 THEN substr(partition_key, 1, instr(partition_key, '|') - 1)
         ELSE 'default' END,
    seq, partition_key, capture_id, t_start_ns, sample_rate_hz, center_freq_hz, gain_db, n_samples,
    iq, iq_crc32 FROM chunks;
DROP TABLE chunks;
ALTER TABLE chunks_v3 RENAME TO chunks;
CREATE INDEX chunks_partition ON chunks (partition_key, t_start_ns);
"""

# Analysis migration 4: what rtl_433 decoded in each window (messages, and every package it
# detected, decoded or not), when it ran, the devices each sensor has seen per window (kept
# across the circular buffer's evictions: the device inventory), which source each training
# label came from, and a view that links each message to the detections overlapping it in time
# and frequency (a view: always current, whichever of the two was materialised last).
_ANALYSIS_V4 = """
CREATE TABLE decode_runs (
    partition_key TEXT PRIMARY KEY, decoder TEXT NOT NULL, decoder_version TEXT NOT NULL,
    decoded_ns INTEGER NOT NULL, n_segments INTEGER NOT NULL, n_samples INTEGER NOT NULL,
    n_messages INTEGER NOT NULL, n_packages INTEGER NOT NULL, seconds REAL NOT NULL);
CREATE TABLE decoded_packages (
    package_id INTEGER PRIMARY KEY, partition_key TEXT NOT NULL,
    t_start_ns INTEGER NOT NULL, t_end_ns INTEGER NOT NULL,
    modulation TEXT NOT NULL, n_pulses INTEGER NOT NULL,
    freq_lower_hz REAL NOT NULL, freq_upper_hz REAL NOT NULL, band_from TEXT NOT NULL,
    freq1_hz REAL, freq2_hz REAL, rssi_db REAL, snr_db REAL, noise_db REAL,
    n_messages INTEGER NOT NULL, first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL,
    decoder_version TEXT NOT NULL);
CREATE INDEX decoded_packages_partition ON decoded_packages (partition_key, t_start_ns);
CREATE TABLE decoded_messages (
    message_id INTEGER PRIMARY KEY, partition_key TEXT NOT NULL, package_id INTEGER,
    t_start_ns INTEGER NOT NULL, t_end_ns INTEGER NOT NULL,
    freq_hz REAL, freq2_hz REAL, freq_lower_hz REAL NOT NULL, freq_upper_hz REAL NOT NULL,
    model TEXT NOT NULL, device_id TEXT, channel TEXT, modulation TEXT,
    rssi_db REAL, snr_db REAL, noise_db REAL, message_json TEXT NOT NULL,
    first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL, decoder_version TEXT NOT NULL);
CREATE INDEX decoded_messages_partition ON decoded_messages (partition_key, t_start_ns);
CREATE VIEW message_detections AS
    SELECT m.partition_key AS partition_key, m.message_id AS message_id,
           d.detection_id AS detection_id
    FROM decoded_messages m JOIN detections d
      ON d.partition_key = m.partition_key
     AND d.t_start_ns < m.t_end_ns AND d.t_end_ns > m.t_start_ns
     AND d.freq_lower_hz < m.freq_upper_hz AND d.freq_upper_hz > m.freq_lower_hz;
CREATE TABLE device_sightings (
    sensor TEXT NOT NULL, partition_key TEXT NOT NULL, model TEXT NOT NULL,
    device_id TEXT NOT NULL, channel TEXT NOT NULL,
    first_seen_ns INTEGER NOT NULL, last_seen_ns INTEGER NOT NULL, n_messages INTEGER NOT NULL,
    times_ns_json TEXT NOT NULL, snr_db_json TEXT NOT NULL, freq_hz_json TEXT NOT NULL,
    PRIMARY KEY (sensor, partition_key, model, device_id, channel));
CREATE TABLE device_inventory (
    sensor TEXT NOT NULL, model TEXT NOT NULL, device_id TEXT NOT NULL, channel TEXT NOT NULL,
    first_seen_ns INTEGER NOT NULL, last_seen_ns INTEGER NOT NULL, n_messages INTEGER NOT NULL,
    median_snr_db REAL, median_freq_hz REAL, usual_interval_s REAL, as_of_ns INTEGER NOT NULL,
    PRIMARY KEY (sensor, model, device_id, channel));
ALTER TABLE labels ADD COLUMN source TEXT NOT NULL DEFAULT 'annotation';
UPDATE labels SET source = 'energy' WHERE auto = 1;
"""


# Analysis migration 5: the energy detector's bursts per partition (store.bursts), written once
# per window while its spectrograms render, read by training_labels and detections.
_ANALYSIS_V5 = """
CREATE TABLE energy_runs (
    partition_key TEXT PRIMARY KEY, detected_ns INTEGER NOT NULL, n_bursts INTEGER NOT NULL,
    seconds REAL NOT NULL, geometry TEXT NOT NULL);
CREATE TABLE energy_bursts (
    burst_id INTEGER PRIMARY KEY, partition_key TEXT NOT NULL,
    t_start_ns INTEGER NOT NULL, t_end_ns INTEGER NOT NULL,
    freq_lower_hz REAL NOT NULL, freq_upper_hz REAL NOT NULL, snr_db REAL NOT NULL, peak_db REAL NOT NULL);
CREATE INDEX energy_bursts_partition ON energy_bursts (partition_key, t_start_ns);
"""


def _schema_text(name: str) -> str:
    return resources.files("sdr_assets.store").joinpath(name).read_text(encoding="utf-8")


def hot_migrations() -> list[tuple[int, str]]:
    """The hot DB's migrations: 1 = hot_schema.sql."""
    return [(1, _schema_text("hot_schema.sql")), (2, _HOT_V2)]


def analysis_migrations() -> list[tuple[int, str]]:
    """The analysis DB's migrations: 1 = analysis_schema.sql, then 2 to 5 above."""
    return [
        (1, _schema_text("analysis_schema.sql")),
        (2, _ANALYSIS_V2),
        (3, _ANALYSIS_V3),
        (4, _ANALYSIS_V4),
        (5, _ANALYSIS_V5),
    ]


def check_sqlite_file(path: Path) -> None:
    """Raise StoreError if ``path`` exists, is non-empty and is not an SQLite database.

    Only reads the first 16 bytes: a foreign file is never opened by SQLite, so never changed.
    """
    path = Path(path)
    if not path.exists():
        return
    if path.is_dir():
        raise StoreError(f"{path} is a folder, not a database file; remove it or choose another path.")
    with open(path, "rb") as fh:
        head = fh.read(len(SQLITE_HEADER))
    if head and head != SQLITE_HEADER:
        raise StoreError(
            f"{path} exists but is not an SQLite database (header {head[:16]!r}); it was left "
            f"untouched. Move it away (e.g. `mv {path} {path}.bak`) and start again."
        )


def _check_synchronous(synchronous: str) -> str:
    mode = str(synchronous).upper()
    if mode not in SYNCHRONOUS_MODES:
        raise ConfigError(
            f"synchronous={synchronous!r} is not valid; use one of {', '.join(SYNCHRONOUS_MODES)} "
            "(NORMAL: no loss on app crash, FULL: no loss on power cut, OFF: fastest, unsafe)."
        )
    return mode


def connect_rw(
    path,
    *,
    synchronous: str = "NORMAL",
    cache_size_kib: int = CACHE_SIZE_KIB,
    busy_timeout_ms: int = BUSY_TIMEOUT_MS,
) -> sqlite3.Connection:
    """Open (creating if missing) a database for its single writer; WAL, 64 KiB pages; a lock
    held by another connection is waited for up to ``busy_timeout_ms``."""
    mode = _check_synchronous(synchronous)
    path = Path(path)
    check_sqlite_file(path)
    if not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(path.resolve().as_uri(), uri=True, isolation_level=None, timeout=busy_timeout_ms / 1000)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {path}: {exc}; check the folder exists and is writable.") from exc
    try:
        conn.execute(f"PRAGMA page_size={PAGE_SIZE}")  # no-op once the file has tables
        got = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(got).lower() != "wal":
            raise StoreError(f"{path}: could not switch to WAL (journal_mode={got}); is the file on a network share?")
        conn.execute(f"PRAGMA synchronous={mode}")
        conn.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT_BYTES}")
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        conn.execute("PRAGMA temp_store=MEMORY")
        conn.execute(f"PRAGMA cache_size=-{int(cache_size_kib)}")
        conn.execute("PRAGMA secure_delete=OFF")  # this build defaults ON: retention would zero-fill
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StoreError(
            f"{path} cannot be used as a database ({exc}); it was left untouched. "
            f"Move it away (e.g. `mv {path} {path}.bak`) and start again."
        ) from exc
    except BaseException:
        conn.close()
        raise
    return conn


def connect_hot(path, *, synchronous: str = "NORMAL") -> sqlite3.Connection:
    """The capture service's writer connection to the hot DB (see module doc)."""
    return connect_rw(path, synchronous=synchronous)


def ro_uri(path) -> str:
    return Path(path).resolve().as_uri() + "?mode=ro"


def connect_ro(path, *, check_same_thread: bool = True) -> sqlite3.Connection:
    """A read-only connection (``file:...?mode=ro``); keep reads on the hot DB short.
    ``check_same_thread=False``: a connection handed between threads, one at a time."""
    path = Path(path)
    if not path.exists():
        raise StoreError(
            f"{path} does not exist yet; start the capture first (`sdr-assets capture ...`) or check $SDR_ASSETS_HOME."
        )
    check_sqlite_file(path)
    try:
        conn = sqlite3.connect(
            ro_uri(path),
            uri=True,
            isolation_level=None,
            timeout=BUSY_TIMEOUT_MS / 1000,
            check_same_thread=check_same_thread,
        )
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA query_only=1")
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {path} read-only: {exc}") from exc
    return conn


SQLITE_CORRUPT, SQLITE_NOTADB = 11, 26


@contextlib.contextmanager
def reading(path):
    """Around reads of ``path``: an sqlite3 error becomes one StoreError that names the file
    and says what to do (a damaged file: move it aside; the next capture starts a new one)."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
        if code in (SQLITE_CORRUPT, SQLITE_NOTADB):
            hint = (
                f"it is damaged (truncated or overwritten); move it aside (`mv {path} "
                f"{path}.damaged`) and the next capture starts a new one"
            )
        else:
            hint = "check the file and try again"
        raise StoreError(f"{path} cannot be read ({exc}); {hint}.") from None


def split_sql(script: str) -> list[str]:
    """Split an SQL script into complete statements (comments and strings respected)."""
    out, buf = [], ""
    for part in script.split(";"):
        buf += part + ";"
        if sqlite3.complete_statement(buf):
            if buf.strip(" \t\r\n;"):
                out.append(buf.strip())
            buf = ""
    if buf.strip(" \t\r\n;") and not _only_comments(buf):
        out.append(buf.strip())
    return out


def _only_comments(text: str) -> bool:
    lines = [ln.strip() for ln in text.strip(" \t\r\n;").splitlines()]
    return all(not ln or ln.startswith("--") for ln in lines)


def schema_version(conn: sqlite3.Connection) -> int:
    """Highest applied migration, 0 for a fresh database."""
    has = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_migrations'").fetchone()
    if not has:
        return 0
    return conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]


def db_name(conn: sqlite3.Connection) -> str:
    row = conn.execute("PRAGMA database_list").fetchone()
    return row[2] if row and row[2] else "<memory>"


def migrate(conn: sqlite3.Connection, migrations: list[tuple[int, str]], *, application_id: int = 0) -> int:
    """Apply every migration newer than the DB's version, each in its own BEGIN IMMEDIATE.

    Returns the version reached. Refuses (StoreError) a DB written by a newer schema, a DB
    with tables that is not ours, and (with ``application_id``) the other kind of our DBs.
    """
    name = db_name(conn)
    known = max(v for v, _ in migrations)
    try:
        current = schema_version(conn)
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        n_tables = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type='table' AND name NOT IN ('schema_migrations')"
        ).fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{name}: cannot read the schema ({exc}); move the file away and start again.") from exc
    # the kind of database first: the hot and analysis DBs number their versions apart
    if application_id and app_id not in (0, application_id):
        raise StoreError(
            f"{name} is a different sdr_assets database (application_id {app_id:#x}, expected "
            f"{application_id:#x}): hot.db and analysis.db are not interchangeable; check the path."
        )
    if current > known:
        raise StoreError(
            f"{name} was written by a newer sdr_assets (schema version {current}; this code knows "
            f"up to {known}); upgrade sdr_assets, or move the file away to start a fresh one."
        )
    if current == 0 and n_tables:
        raise StoreError(
            f"{name} holds tables but no sdr_assets schema_migrations: it is not one of our "
            "databases. Move it away or choose another path."
        )
    for version, sql in sorted(migrations):
        if version <= current:
            continue
        _apply_one(conn, name, version, sql, application_id)
    return max(current, known)


def _apply_one(conn, name, version, sql, application_id) -> None:
    from sdr_assets.store.txn import Txn, disk_full_hint, is_disk_full

    try:
        with Txn(conn, f"migration {version}", name, wrap_errors=False):
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_ns INTEGER NOT NULL)"
            )
            if schema_version(conn) >= version:  # another process got there first
                return
            for stmt in split_sql(sql):
                conn.execute(stmt)
            if application_id and version == 1:
                conn.execute(f"PRAGMA application_id={int(application_id)}")
            conn.execute("INSERT INTO schema_migrations (version, applied_ns) VALUES (?, ?)", (version, time.time_ns()))
    except sqlite3.Error as exc:
        hint = f"; {disk_full_hint(name)}" if is_disk_full(exc) else ""
        raise StoreError(f"{name}: migration {version} failed ({exc}); nothing of it was applied{hint}.") from exc


def file_bytes(path) -> int:
    """Size of a file, 0 when missing (for -wal files)."""
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


class DbHandle:
    """An opened-on-demand connection owned by one object (the hot writer, the analysis DB):
    ``with obj:`` opens and closes it; ``obj.conn`` is the open connection or a StoreError."""

    path: Path
    _conn: sqlite3.Connection | None = None

    def open(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()  # the last connection to close checkpoints and removes the WAL
            self._conn = None

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"{type(self).__name__}({self.path}) is not open; call open() first.")
        return self._conn
