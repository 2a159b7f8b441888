-- Hot database: written by exactly one writer (the capture service), tuned for ingest.
-- Migration 1. Times are ns since the Unix epoch (UTC, sample clock); frequencies in Hz.
CREATE TABLE captures (
    capture_id      INTEGER PRIMARY KEY,
    source_uri      TEXT    NOT NULL,
    source_kind     TEXT    NOT NULL,
    center_freq_hz  REAL    NOT NULL,
    sample_rate_hz  REAL    NOT NULL,
    gain_db         REAL,               -- NULL = automatic gain
    started_ns      INTEGER NOT NULL,   -- wall clock when the service started
    ended_ns        INTEGER,            -- NULL while running or after a crash
    end_reason      TEXT,               -- 'eof' | 'signal' | 'error: ...' | NULL (crash)
    meta_json       TEXT    NOT NULL DEFAULT '{}'
);

CREATE TABLE chunks (
    seq             INTEGER PRIMARY KEY,  -- monotonic, never reused (AUTOINCREMENT not needed: max(seq) only grows)
    capture_id      INTEGER NOT NULL,
    t_start_ns      INTEGER NOT NULL,
    sample_rate_hz  REAL    NOT NULL,
    center_freq_hz  REAL    NOT NULL,
    gain_db         REAL,
    n_samples       INTEGER NOT NULL,
    iq              BLOB    NOT NULL      -- cu8 bytes exactly as received
);
CREATE INDEX chunks_t_start ON chunks (t_start_ns);

CREATE TABLE gaps (
    gap_id          INTEGER PRIMARY KEY,
    capture_id      INTEGER NOT NULL,
    t_start_ns      INTEGER NOT NULL,
    t_end_ns        INTEGER NOT NULL,
    n_samples_lost  INTEGER NOT NULL,
    cause           TEXT    NOT NULL,
    detail          TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX gaps_t_start ON gaps (t_start_ns);

CREATE TABLE annotations (
    annotation_id   INTEGER PRIMARY KEY,
    capture_id      INTEGER NOT NULL,
    t_start_ns      INTEGER NOT NULL,
    t_end_ns        INTEGER NOT NULL,
    freq_lower_hz   REAL    NOT NULL,
    freq_upper_hz   REAL    NOT NULL,
    label           TEXT    NOT NULL,
    snr_db          REAL,
    origin          TEXT    NOT NULL
);
CREATE INDEX annotations_t_start ON annotations (t_start_ns);

-- Narrow metrics table: one row per (time, process, metric). The capture service writes
-- its per-second figures here; other processes log through the same single-writer queue.
CREATE TABLE telemetry (
    t_ns            INTEGER NOT NULL,
    capture_id      INTEGER,
    process         TEXT    NOT NULL,     -- 'capture' | 'training' | ...
    metric          TEXT    NOT NULL,     -- e.g. 'samples_received', 'commit_ms_p99', 'rss_mb'
    value           REAL    NOT NULL
);
CREATE INDEX telemetry_t ON telemetry (t_ns);
