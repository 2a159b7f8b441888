"""Export one partition of the analysis DB as SigMF: cu8 exactly as stored, annotated.

Layout (what the SigMF spec allows, and how we use it):

- One recording (``NAME.sigmf-data`` + ``NAME.sigmf-meta``) per run of one sample rate:
  ``core:sample_rate`` is global in SigMF, so a change of rate starts a new recording
  (``KEY_r1``, ``KEY_r2``, ...; a partition at one rate is one recording, ``KEY``).
- Inside a recording, one **capture segment** per contiguous run of chunks: a retune (new
  ``core:frequency``), a hole in time or a recorded gap starts a new segment with its own
  ``core:sample_start`` (index in the data file), ``core:datetime`` (UTC, ns) and
  ``core:global_index`` (the sample's index in the uninterrupted stream from the recording's
  first sample: the jump between two segments is the number of samples lost there).
- Ground truth (``annotations`` table), detections (``detections`` table) and what rtl_433
  decoded (``decoded_messages``: ``core:label`` = the device model, ``core:generator`` =
  ``rtl_433 VERSION``, the whole message in ``sdr_assets:message``) become SigMF annotations
  with ``core:sample_start``/``core:sample_count`` (clipped to the samples the recording holds;
  ``sdr_assets:clipped`` says so), RF edges ``core:freq_lower_edge``/``core:freq_upper_edge``, ``core:label``, ``core:generator`` and namespaced extras
  (``sdr_assets:origin``, ``sdr_assets:confidence``, ``sdr_assets:model_version``,
  ``sdr_assets:first_seq``/``last_seq``, ...), the namespace declared in ``core:extensions``.
- ``core:sha512`` of the data file, so any SigMF reader can verify the copy.

Read-only on the analysis DB; files are written under temporary names and renamed. An
application-level module (like cli.py): it joins store/ (the analysis DB) and sigmf/
(the format, its version and its metadata builders), so it sits beside them rather than in either part. No dagster.
"""

import hashlib
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from sdr_assets.errors import ConfigError, PartitionNotHeldError, StoreError
from sdr_assets.records import NS_PER_S, Segment, samples_to_ns, segments
from sdr_assets.sigmf import (
    DATA_SUFFIX,
    META_SUFFIX,
    annotation_item,
    capture_item,
    format_datetime_ns,
    global_meta,
    meta_text,
)
from sdr_assets.store import messages as decodes
from sdr_assets.store import queries
from sdr_assets.store.chunks import ChunkRow
from sdr_assets.store.files import OutputFiles
from sdr_assets.store.sensors import split_key
from sdr_assets.store.window import AnalysisDB

NAMESPACE = "sdr_assets"
EXTENSION = {"name": NAMESPACE, "version": "1.0.0", "optional": True}


@dataclass(frozen=True)
class CaptureSegment(Segment):
    """A contiguous run of chunks (``records.Segment``) as one SigMF capture segment."""

    sample_start: int = 0  # in the recording's data file


@dataclass
class Recording:
    meta_path: Path
    data_path: Path
    sample_rate_hz: float
    segments: list[CaptureSegment]
    n_ground_truth: int = 0
    n_detections: int = 0
    n_decodes: int = 0  # rtl_433 messages
    n_clipped: int = 0  # annotations cut at the edges of the samples held
    sha512: str = ""

    @property
    def n_samples(self) -> int:
        return sum(s.n_samples for s in self.segments)

    @property
    def n_annotations(self) -> int:
        return self.n_ground_truth + self.n_detections + self.n_decodes


@dataclass
class ExportResult:
    partition_key: str
    recordings: list[Recording] = field(default_factory=list)
    n_bytes: int = 0
    seconds: float = 0.0
    n_outside: int = 0  # annotations/detections with no sample in any recording (in a gap)


def base_name(partition_key: str) -> str:
    """``roof|2026-11-23-04:00`` -> ``roof_2026-11-23-0400`` (one file name, no folders)."""
    return partition_key.replace(":", "").replace("|", "_")


def export_partition(
    analysis_db: Path | str,
    partition_key: str,
    out_dir: Path | str,
    *,
    with_annotations: bool = True,
    progress: bool = False,
) -> ExportResult:
    """Write the partition as SigMF recording(s) under ``out_dir`` (see the module doc)."""
    t0 = time.perf_counter()
    analysis_db = Path(analysis_db)
    if not analysis_db.exists():
        raise StoreError(
            f"no analysis DB at {analysis_db}; materialise iq_window for "
            f"{partition_key} first (or check $SDR_ASSETS_HOME)."
        )
    with OutputFiles("--out") as out:  # nothing is renamed into place unless all is written
        with AnalysisDB(analysis_db, read_only=True) as db:
            _require_partition(db, partition_key)
            recordings = _plan(db, partition_key, _out_folder(out_dir))
            res = ExportResult(partition_key, recordings)
            res.n_bytes = _write_data(db, partition_key, recordings, progress, out)
            if with_annotations:
                truth, dets = db.annotations(partition_key), db.detections(partition_key)
                decoded = decodes.messages(db.conn, partition_key) if decodes.decodes_available(db.conn) else []
            else:
                truth, dets, decoded = [], [], []
        placed: set = set()
        for rec in recordings:
            anns = place_annotations(rec, truth, dets, decoded, placed)
            _write_meta(rec, partition_key, anns, len(recordings), out)
        out.commit()
    res.n_outside = len(truth) + len(dets) + len(decoded) - len(placed)
    res.seconds = time.perf_counter() - t0
    return res


def _out_folder(out_dir) -> Path:
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise ConfigError(
            f"--out {out} is a file; pass a folder to write the SigMF recording into (it is created if missing)."
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the folder {out} ({exc.strerror}); pass a writable folder as --out.") from exc
    return out


def place_annotations(rec: Recording, truth, dets, decoded, placed: set) -> list[dict]:
    """The SigMF annotations of ``rec``: ground truth (:class:`~sdr_assets.store.queries.TruthRecord`),
    detections (``DetectionRecord``) and decoded messages (``MessageRecord``) that have samples in
    it, in sample order; counts them on ``rec`` and adds (kind, id) of each to ``placed``."""
    anns = []
    for kind, rows in (("truth", truth), ("detection", dets)):
        for row in rows:
            item = _sigmf_annotation(rec, kind, row)
            if item is not None:
                anns.append(item)
                placed.add((kind, row.annotation_id if kind == "truth" else row.detection_id))
                rec.n_clipped += bool(item.get(f"{NAMESPACE}:clipped"))
                if kind == "truth":
                    rec.n_ground_truth += 1
                else:
                    rec.n_detections += 1
    for m in decoded:
        item = _decode_annotation(rec, m)
        if item is not None:
            anns.append(item)
            placed.add(("decode", m.message_id))
            rec.n_clipped += bool(item.get(f"{NAMESPACE}:clipped"))
            rec.n_decodes += 1
    anns.sort(key=lambda a: (a["core:sample_start"], a[f"{NAMESPACE}:origin"] == "detection"))
    return anns


def _require_partition(db: AnalysisDB, key: str) -> None:
    held = [p.partition_key for p in db.partitions()]
    if key not in held:
        listing = ", ".join(held) if held else "none"
        sensor, time_key = split_key(key)
        raise PartitionNotHeldError(
            f"partition {key!r} is not in the analysis DB (it holds: {listing}); materialise "
            f"iq_window for it first (`sdr-assets backfill --sensor {sensor} --from {time_key} "
            f"--to {time_key}`)."
        )
    if next(db.iter_chunks(key, with_iq=False), None) is None:
        raise StoreError(f"partition {key} holds no samples (the capture was not running then); nothing to export.")


def _plan(db: AnalysisDB, key: str, out_dir: Path) -> list[Recording]:
    """Split the partition's chunks (time order) into recordings (one rate) and segments."""
    gap_starts = [g.t_start_ns for g in db.gaps(key) if g.n_samples_lost > 0]
    runs = segment_runs(db.iter_chunks(key, with_iq=False), gap_starts)
    base = base_name(key)
    recs = []
    for i, segs in enumerate(runs, 1):
        name = base if len(runs) == 1 else f"{base}_r{i}"
        recs.append(
            Recording(out_dir / (name + META_SUFFIX), out_dir / (name + DATA_SUFFIX), segs[0].sample_rate_hz, segs)
        )
    return recs


def segment_runs(chunks, gap_starts: list[int]) -> list[list[CaptureSegment]]:
    """Runs of one sample rate (recordings), each a list of capture segments, from chunks (or
    pieces of chunks) in time order, items like :class:`ChunkRow`: a segment is one
    ``records.segments`` segment (a retune, a hole in time or a recorded loss starts a new one)."""
    runs: list[list[CaptureSegment]] = []
    for s in segments(chunks, gap_starts):
        if not runs or s.sample_rate_hz != runs[-1][-1].sample_rate_hz:
            runs.append([])
            start = 0
        else:
            start = runs[-1][-1].sample_start + runs[-1][-1].n_samples
        runs[-1].append(
            CaptureSegment(
                s.t_start_ns, s.n_samples, s.sample_rate_hz, s.center_freq_hz, s.first_seq, s.last_seq, start
            )
        )
    return runs


def _write_data(db: AnalysisDB, key: str, recs: list[Recording], progress: bool, out: OutputFiles) -> int:
    """Stream every chunk's iq, in the order planned, into its recording's data file (under
    its temporary name until ``out`` commits)."""
    from tqdm import tqdm

    total = 2 * sum(r.n_samples for r in recs)
    chunks = db.iter_chunks(key)
    written = 0
    try:
        bar_shown = progress and sys.stderr.isatty()  # (piped, the frames would only bury an error line)
        with tqdm(
            total=total, unit="B", unit_scale=True, desc=f"export {key}", disable=not bar_shown, file=sys.stderr
        ) as bar:
            for rec in recs:
                need = 2 * rec.n_samples
                sha512, got = hashlib.sha512(), 0
                with out.open(rec.data_path) as fh:
                    while got < need:
                        chunk = next(chunks, None)
                        if chunk is None:
                            raise StoreError(
                                f"partition {key} changed while it was exported (rows missing); run the export again."
                            )
                        iq = chunk.iq
                        fh.write(iq)
                        sha512.update(iq)
                        got += len(iq)
                        bar.update(len(iq))
                    fh.flush()
                    os.fsync(fh.fileno())
                if got != need:
                    raise StoreError(
                        f"partition {key}: chunk sizes disagree with n_samples "
                        f"({got} bytes read, {need} expected); re-materialise iq_window."
                    )
                rec.sha512 = sha512.hexdigest()
                written += got
    finally:
        chunks.close()  # before the DB closes, also when a write failed
    return written


def sample_span(segments: list[CaptureSegment], t_start_ns: int, t_end_ns: int) -> tuple[int, int, bool] | None:
    """[first, end) sample indices in the data file of a time span, clipped to the samples the
    segments hold, and whether it was clipped; None when no sample of it is held."""
    inside = [s for s in segments if s.t_end_ns > t_start_ns and s.t_start_ns < t_end_ns]
    if not inside:
        return None
    a, b = inside[0], inside[-1]
    off = max(0, round((t_start_ns - a.t_start_ns) * a.sample_rate_hz / NS_PER_S))
    first = a.sample_start + min(off, a.n_samples)
    off = min(b.n_samples, round((t_end_ns - b.t_start_ns) * b.sample_rate_hz / NS_PER_S))
    last = b.sample_start + max(off, 0)
    if last <= first:
        return None
    # clipped: an edge lay where no sample is held (before/after the samples, or in a gap)
    return first, last, t_start_ns < a.t_start_ns or t_end_ns > b.t_end_ns


def _core_item(
    rec: Recording, t_start_ns: int, t_end_ns: int, freq_lower_hz: float, freq_upper_hz: float, label: str
) -> dict | None:
    """The core fields of an annotation over [t_start_ns, t_end_ns), plus our absolute times and
    ``clipped``; None when the recording holds none of its samples."""
    span = sample_span(rec.segments, t_start_ns, t_end_ns)
    if span is None:
        return None
    first, end, clipped = span
    item = annotation_item(first, end - first, freq_lower_hz, freq_upper_hz, label)
    item.update({f"{NAMESPACE}:t_start_ns": int(t_start_ns), f"{NAMESPACE}:t_end_ns": int(t_end_ns)})
    if clipped:
        item[f"{NAMESPACE}:clipped"] = True
    return item


def _sigmf_annotation(rec: Recording, kind: str, row) -> dict | None:
    """``row``: an annotation (``kind`` "truth") or a detection of the analysis DB."""
    item = _core_item(rec, row.t_start_ns, row.t_end_ns, row.freq_lower_hz, row.freq_upper_hz, row.label)
    if item is None:
        return None
    ns = NAMESPACE
    if kind == "truth":
        item["core:generator"] = f"sdr_assets ground truth ({row.origin})"
        item[f"{ns}:origin"] = row.origin
        item[f"{ns}:annotation_id"] = int(row.annotation_id)
        item[f"{ns}:capture_id"] = int(row.capture_id)
        if row.snr_db is not None:
            item[f"{ns}:snr_db"] = round(float(row.snr_db), 2)
    else:
        item["core:generator"] = f"sdr_assets detector {row.model_version}"
        item[f"{ns}:origin"] = "detection"
        item[f"{ns}:confidence"] = round(float(row.confidence), 4)
        item[f"{ns}:model_version"] = row.model_version
        item[f"{ns}:detection_id"] = int(row.detection_id)
        item[f"{ns}:frame_id"] = int(row.frame_id)
        item[f"{ns}:first_seq"] = int(row.first_seq)
        item[f"{ns}:last_seq"] = int(row.last_seq)
    return item


def _decode_annotation(rec: Recording, m: "decodes.MessageRecord") -> dict | None:
    """A decoded message: label = its model, the message itself in ``sdr_assets:message``."""
    item = _core_item(rec, m.t_start_ns, m.t_end_ns, m.freq_lower_hz, m.freq_upper_hz, m.model)
    if item is None:
        return None
    ns = NAMESPACE
    item["core:generator"] = f"rtl_433 {m.decoder_version}"
    item[f"{ns}:origin"] = "rtl_433"
    item[f"{ns}:device"] = m.name()
    item[f"{ns}:message"] = m.message
    item[f"{ns}:message_id"] = int(m.message_id)
    item[f"{ns}:first_seq"] = int(m.first_seq)
    item[f"{ns}:last_seq"] = int(m.last_seq)
    if m.snr_db is not None:
        item[f"{ns}:snr_db"] = round(float(m.snr_db), 2)
    return item


def _write_meta(rec: Recording, key: str, annotations: list[dict], n_recordings: int, out: OutputFiles) -> None:
    description = (
        f"sdr_assets partition {key}: {rec.n_samples} samples in "
        f"{len(rec.segments)} capture segment(s), cu8 exactly as captured"
    )
    doc = meta_document(
        rec,
        annotations,
        description,
        {f"{NAMESPACE}:partition_key": key, f"{NAMESPACE}:recordings_in_partition": n_recordings},
    )
    out.write(rec.meta_path, meta_text(doc))


def meta_document(rec: Recording, annotations: list[dict], description: str, extra_global: dict) -> dict:
    """The ``.sigmf-meta`` document of a recording (``rec.sha512`` set) and its annotations."""
    s0 = rec.segments[0]
    fs = rec.sample_rate_hz
    captures = []
    for s in rec.segments:
        item = capture_item(
            s.sample_start,
            s.center_freq_hz,
            s.t_start_ns,
            global_index=max(0, round((s.t_start_ns - s0.t_start_ns) * fs / NS_PER_S)),
        )
        item.update({f"{NAMESPACE}:first_seq": s.first_seq, f"{NAMESPACE}:last_seq": s.last_seq})
        captures.append(item)
    glob = global_meta(
        fs,
        description=description,
        sha512=rec.sha512,
        extensions=[EXTENSION],
        extra={
            **extra_global,
            f"{NAMESPACE}:first_seq": s0.first_seq,
            f"{NAMESPACE}:last_seq": rec.segments[-1].last_seq,
        },
    )
    return {"global": glob, "captures": captures, "annotations": annotations}


# ---- a span of one sensor's samples as one SigMF archive, streamed ------------------------------
TAR_BLOCK = 512
TAR_RECORD = 20 * TAR_BLOCK  # tarfile's record size: an archive's length is a multiple of it


@dataclass(frozen=True)
class _Piece:
    """Samples [first, end) of one stored chunk (offsets in the chunk)."""

    chunk: queries.ChunkMeta
    first: int
    end: int

    @property
    def t_start_ns(self) -> int:
        return self.chunk.t_start_ns + samples_to_ns(self.first, self.chunk.sample_rate_hz)


def _first_sample_at_or_after(chunk: queries.ChunkMeta, t_ns: int) -> int:
    """The index of the chunk's first sample whose time (chunk start + samples_to_ns) is >= t_ns."""
    fs = chunk.sample_rate_hz
    k = max(0, math.floor((t_ns - chunk.t_start_ns) * fs / NS_PER_S) - 1)
    while k < chunk.n_samples and chunk.t_start_ns + samples_to_ns(k, fs) < t_ns:
        k += 1
    return min(k, chunk.n_samples)


def _pad(n_bytes: int, unit: int = TAR_BLOCK) -> int:
    return -n_bytes % unit


def _tar_header(name: str, size: int, mtime: int, directory: bool = False) -> bytes:
    import tarfile

    info = tarfile.TarInfo(name)
    info.size, info.mtime = (0, mtime) if directory else (size, mtime)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o755 if directory else 0o644  # as sigmf's SigMFArchive writes them
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


class SpanArchive:
    """A SigMF archive (``NAME.sigmf``: a tar holding ``NAME/NAME.sigmf-data`` and
    ``NAME/NAME.sigmf-meta``) of one sensor's samples in [t_start_ns, t_end_ns), read from the
    analysis DB across its partitions: cu8 exactly as stored (the first and last chunk cut at the
    span's edges), one capture segment per contiguous run (a retune, a hole or a recorded loss
    starts a new one; ``core:global_index`` jumps by the samples lost), ground truth, detections
    and decoded messages as annotations: the recording :func:`export_partition` writes, as a
    stream whose length is known before the first byte.

    Everything but the samples is read when the object is made (errors then, before a response
    starts); :meth:`blocks` then streams the samples chunk by chunk. ``conn``: a read-only
    connection, best inside one read transaction so the span cannot change while it streams.
    ``freq_min_hz``/``freq_max_hz`` keep the chunks whose tuned band overlaps them and the
    annotations inside them (samples are never filtered). A span holding two sample rates is a
    ConfigError (SigMF has one rate per recording); more than ``max_bytes`` of samples is a
    TooLargeError; no sample held is a PartitionNotHeldError.
    """

    def __init__(
        self,
        conn,
        sensor: str,
        t_start_ns: int,
        t_end_ns: int,
        *,
        freq_min_hz: float | None = None,
        freq_max_hz: float | None = None,
        max_bytes: int | None = None,
        name: str | None = None,
        with_annotations: bool = True,
    ):
        from sdr_assets.errors import TooLargeError

        self._conn, self.sensor = conn, sensor
        self.t_start_ns, self.t_end_ns = int(t_start_ns), int(t_end_ns)
        self.name = name or f"{sensor}_{_compact_utc(t_start_ns)}"
        parts = queries.sensor_partitions(conn, sensor)
        keys = [p.partition_key for p in parts if p.t_start_ns < t_end_ns]
        chunks = [
            c
            for c in queries.chunks_in_span(conn, sensor, keys, t_start_ns, t_end_ns)
            if _band_overlaps(c, freq_min_hz, freq_max_hz)
        ]
        self._pieces = [
            p
            for p in (
                _Piece(c, _first_sample_at_or_after(c, t_start_ns), _first_sample_at_or_after(c, t_end_ns))
                for c in chunks
            )
            if p.end > p.first
        ]
        if not self._pieces:
            held = "; ".join(f"{_iso(p.t_start_ns)} .. {_iso(p.t_end_ns)}" for p in parts) or "nothing"
            band = "" if freq_min_hz is None and freq_max_hz is None else " in that band"
            raise PartitionNotHeldError(
                f"the analysis DB holds no sample of sensor {sensor!r} in {_iso(t_start_ns)} .. "
                f"{_iso(t_end_ns)}{band} (its windows: {held}); ask for a span inside them."
            )
        runs = segment_runs(
            [
                ChunkRow(
                    p.chunk.seq, p.t_start_ns, p.chunk.sample_rate_hz, p.chunk.center_freq_hz, p.end - p.first, None
                )
                for p in self._pieces
            ],
            queries.gap_starts(conn, keys, t_start_ns, t_end_ns),
        )
        if len(runs) > 1:
            changes = ", ".join(f"{r[0].sample_rate_hz:.0f} S/s from {_iso(r[0].t_start_ns)}" for r in runs)
            raise ConfigError(
                f"the span holds samples at {len(runs)} sample rates ({changes}); a SigMF "
                "recording has one: ask for a span on one side of the change."
            )
        segs = runs[0]
        self.recording = Recording(
            Path(self.name + META_SUFFIX), Path(self.name + DATA_SUFFIX), segs[0].sample_rate_hz, segs
        )
        self.n_bytes = 2 * self.recording.n_samples
        if max_bytes is not None and self.n_bytes > max_bytes:
            fs = self.recording.sample_rate_hz
            raise TooLargeError(
                f"the span holds {self.n_bytes / 1e6:.1f} MB of samples, over the limit of "
                f"{max_bytes / 1e6:.1f} MB (about {max_bytes / 2 / fs:.1f} s at {fs:.0f} S/s); ask for a "
                "shorter span (from/to) and fetch it in parts."
            )
        anns: list[dict] = []
        self.n_outside = 0
        if with_annotations:
            span = queries.SpanFilter(tuple(keys), t_start_ns, t_end_ns, freq_min_hz, freq_max_hz)
            truth, dets = queries.truth_annotations(conn, span), queries.detections(conn, span)
            decoded = queries.decoded_messages(conn, span)
            placed: set = set()
            anns = place_annotations(self.recording, truth, dets, decoded, placed)
            self.n_outside = len(truth) + len(dets) + len(decoded) - len(placed)
        extra = {
            f"{NAMESPACE}:sensor": sensor,
            f"{NAMESPACE}:span_t_start_ns": self.t_start_ns,
            f"{NAMESPACE}:span_t_end_ns": self.t_end_ns,
            f"{NAMESPACE}:partition_keys": sorted({p.chunk.partition_key for p in self._pieces}),
        }
        if freq_min_hz is not None or freq_max_hz is not None:
            extra[f"{NAMESPACE}:freq_min_hz"] = freq_min_hz
            extra[f"{NAMESPACE}:freq_max_hz"] = freq_max_hz
        self._description = (
            f"sdr_assets sensor {sensor}, {_iso(t_start_ns)} .. {_iso(t_end_ns)}: "
            f"{self.recording.n_samples} samples in {len(segs)} capture segment(s), "
            "cu8 exactly as captured"
        )
        self._annotations, self._extra = anns, extra
        self.recording.sha512 = "0" * 128  # same length as the real digest: the meta's size is known now
        self._meta_len = len(self._meta_bytes())
        self._mtime = int(time.time())
        folder = self.name + "/"
        self._head = _tar_header(folder, 0, self._mtime, directory=True) + _tar_header(
            folder + self.recording.data_path.name, self.n_bytes, self._mtime
        )
        self._meta_head = _tar_header(folder + self.recording.meta_path.name, self._meta_len, self._mtime)
        body = (
            len(self._head)
            + self.n_bytes
            + _pad(self.n_bytes)
            + len(self._meta_head)
            + self._meta_len
            + _pad(self._meta_len)
            + 2 * TAR_BLOCK
        )
        self._tail_pad = _pad(body, TAR_RECORD)
        self.content_length = body + self._tail_pad

    @property
    def file_name(self) -> str:
        return self.name + ".sigmf"

    def _meta_bytes(self) -> bytes:
        doc = meta_document(self.recording, self._annotations, self._description, self._extra)
        return meta_text(doc).encode("utf-8")

    def blocks(self):
        """The archive's bytes: headers, then each piece of each chunk, then the meta (with the
        samples' sha512); exactly :attr:`content_length` bytes."""
        yield self._head
        sha512, sent = hashlib.sha512(), 0
        pieces = self._pieces
        for piece, (seq, iq) in zip(pieces, queries.chunk_iq(self._conn, self.sensor, [p.chunk.seq for p in pieces])):
            if iq is None or len(iq) != 2 * piece.chunk.n_samples:
                raise StoreError(f"chunk {seq} of sensor {self.sensor} changed while it was streamed; ask again.")
            part = memoryview(iq)[2 * piece.first : 2 * piece.end]
            sha512.update(part)
            sent += len(part)
            yield part
        if sent != self.n_bytes:
            raise StoreError(f"streamed {sent} bytes of samples, {self.n_bytes} planned; ask again.")
        self.recording.sha512 = sha512.hexdigest()
        meta = self._meta_bytes()
        if len(meta) != self._meta_len:
            raise StoreError("the SigMF metadata changed length while streaming; ask again.")
        yield (
            b"\0" * _pad(self.n_bytes)
            + self._meta_head
            + meta
            + b"\0" * _pad(self._meta_len)
            + b"\0" * (2 * TAR_BLOCK + self._tail_pad)
        )


def _band_overlaps(chunk: "queries.ChunkMeta", freq_min_hz: float | None, freq_max_hz: float | None) -> bool:
    half = chunk.sample_rate_hz / 2
    return (freq_min_hz is None or chunk.center_freq_hz + half >= freq_min_hz) and (
        freq_max_hz is None or chunk.center_freq_hz - half <= freq_max_hz
    )


def _iso(t_ns: int) -> str:
    return format_datetime_ns(int(t_ns))


def _compact_utc(t_ns: int) -> str:
    """``20261123T040000.123456789Z``: a time for a file name."""
    return _iso(t_ns).replace("-", "").replace(":", "")
