-- Analysis database: a circular buffer of the last K partitions plus the model registry.
-- Migration 1. Written only by Dagster assets; never by the capture service.
CREATE TABLE partitions (
    partition_key   TEXT    PRIMARY KEY,  -- e.g. '2026-11-23-00:00'
    t_start_ns      INTEGER NOT NULL,
    t_end_ns        INTEGER NOT NULL,
    snapshot_path   TEXT,
    snapshot_last_seq INTEGER,
    n_chunks        INTEGER NOT NULL DEFAULT 0,
    n_samples       INTEGER NOT NULL DEFAULT 0,
    n_samples_lost  INTEGER NOT NULL DEFAULT 0,
    loaded_ns       INTEGER NOT NULL
);

CREATE TABLE chunks (
    seq             INTEGER PRIMARY KEY,  -- the hot DB's seq: lineage back to the raw samples
    partition_key   TEXT    NOT NULL,
    capture_id      INTEGER NOT NULL,
    t_start_ns      INTEGER NOT NULL,
    sample_rate_hz  REAL    NOT NULL,
    center_freq_hz  REAL    NOT NULL,
    gain_db         REAL,
    n_samples       INTEGER NOT NULL,
    iq              BLOB    NOT NULL
);
CREATE INDEX chunks_partition ON chunks (partition_key, t_start_ns);

CREATE TABLE gaps (
    gap_id          INTEGER PRIMARY KEY,  -- the hot DB's gap_id
    partition_key   TEXT    NOT NULL,
    capture_id      INTEGER NOT NULL,
    t_start_ns      INTEGER NOT NULL,
    t_end_ns        INTEGER NOT NULL,
    n_samples_lost  INTEGER NOT NULL,
    cause           TEXT    NOT NULL,
    detail          TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX gaps_partition ON gaps (partition_key);

CREATE TABLE annotations (
    annotation_id   INTEGER PRIMARY KEY,  -- the hot DB's annotation_id
    partition_key   TEXT    NOT NULL,
    capture_id      INTEGER NOT NULL,
    t_start_ns      INTEGER NOT NULL,
    t_end_ns        INTEGER NOT NULL,
    freq_lower_hz   REAL    NOT NULL,
    freq_upper_hz   REAL    NOT NULL,
    label           TEXT    NOT NULL,
    snr_db          REAL,
    origin          TEXT    NOT NULL
);
CREATE INDEX annotations_partition ON annotations (partition_key);

-- Spectrogram frames: every pixel maps back to a time and a frequency.
-- Column x covers [t_start_ns + x*hop/fs, ...); row 0 is freq_upper_hz (top), the last row freq_lower_hz.
CREATE TABLE frames (
    frame_id        INTEGER PRIMARY KEY,
    partition_key   TEXT    NOT NULL,
    t_start_ns      INTEGER NOT NULL,
    t_end_ns        INTEGER NOT NULL,
    freq_lower_hz   REAL    NOT NULL,
    freq_upper_hz   REAL    NOT NULL,
    center_freq_hz  REAL    NOT NULL,
    sample_rate_hz  REAL    NOT NULL,
    nfft            INTEGER NOT NULL,
    hop             INTEGER NOT NULL,
    width_px        INTEGER NOT NULL,
    height_px       INTEGER NOT NULL,
    first_seq       INTEGER NOT NULL,     -- hot-DB chunk seqs the frame was computed from
    last_seq        INTEGER NOT NULL,
    path            TEXT    NOT NULL
);
CREATE INDEX frames_partition ON frames (partition_key, t_start_ns);

CREATE TABLE labels (
    label_id        INTEGER PRIMARY KEY,
    frame_id        INTEGER NOT NULL,
    partition_key   TEXT    NOT NULL,
    class_name      TEXT    NOT NULL,
    x_center        REAL    NOT NULL,     -- YOLO normalised box
    y_center        REAL    NOT NULL,
    width           REAL    NOT NULL,
    height          REAL    NOT NULL,
    auto            INTEGER NOT NULL      -- 1 = energy-detector auto-label, 0 = ground truth
);
CREATE INDEX labels_frame ON labels (frame_id);

CREATE TABLE models (
    version         TEXT    PRIMARY KEY,  -- e.g. '20261123T020000-yolo11n'
    created_ns      INTEGER NOT NULL,
    path            TEXT    NOT NULL,     -- best.pt
    onnx_path       TEXT,
    partitions_json TEXT    NOT NULL,     -- data partitions it learnt from
    params_json     TEXT    NOT NULL,     -- hyper-parameters
    metrics_json    TEXT    NOT NULL,     -- map50, map50_95, precision, recall
    classes_json    TEXT    NOT NULL,
    is_current      INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE detections (
    detection_id    INTEGER PRIMARY KEY,
    partition_key   TEXT    NOT NULL,
    t_start_ns      INTEGER NOT NULL,
    t_end_ns        INTEGER NOT NULL,
    freq_lower_hz   REAL    NOT NULL,
    freq_upper_hz   REAL    NOT NULL,
    label           TEXT    NOT NULL,
    confidence      REAL    NOT NULL,
    model_version   TEXT    NOT NULL,     -- 'energy' when no model exists yet
    frame_id        INTEGER NOT NULL,
    first_seq       INTEGER NOT NULL,     -- hot-DB chunk seqs holding the box's samples
    last_seq        INTEGER NOT NULL
);
CREATE INDEX detections_partition ON detections (partition_key, t_start_ns);

CREATE TABLE telemetry (
    t_ns            INTEGER NOT NULL,
    capture_id      INTEGER,
    process         TEXT    NOT NULL,
    metric          TEXT    NOT NULL,
    value           REAL    NOT NULL
);
