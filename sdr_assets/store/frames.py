"""Spectrogram frames of a partition: stream its chunks, STFT, 8-bit PNGs and an index table.

Frames are fixed length (frame_cols * hop samples). A frame never spans a recorded gap or a
retune: each contiguous segment is cut into frames, and its last partial frame is padded
with black on the right (its geometry still covers the full width, so every pixel maps back
to a time). Row 0 is the highest frequency.
"""

import shutil
import struct
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple, dataclass, fields
from pathlib import Path

import numpy as np

from sdr_assets.dsp import stft
from sdr_assets.dsp.detect import segment_detector
from sdr_assets.records import samples_to_ns
from sdr_assets.store.bursts import EnergyBurstRow, EnergyRun
from sdr_assets.store.db import connect_ro
from sdr_assets.store.sensors import key_slug


@dataclass(frozen=True)
class FramesStats:
    n_frames: int
    expected_frames: int
    n_samples: int
    seconds: float  # wall
    stft_s: float  # CPU: cu8 -> power -> dB -> 8-bit image
    png_s: float  # CPU of the PNG encode and write (a worker thread)
    backend: str
    folder: str
    n_bursts: int | None = None  # the energy detector's, when it ran
    energy_s: float = 0.0  # CPU of the energy detector (the shared STFT excluded)


@dataclass(frozen=True)
class FrameRow:
    """One row of the frames table: a PNG and the geometry that maps its pixels to time and Hz.
    Column x covers [t_start_ns + x*hop/fs, ...); row 0 is freq_upper_hz."""

    frame_id: int
    partition_key: str
    t_start_ns: int
    t_end_ns: int
    freq_lower_hz: float
    freq_upper_hz: float
    center_freq_hz: float
    sample_rate_hz: float
    nfft: int
    hop: int
    width_px: int
    height_px: int
    first_seq: int  # hot-DB chunk seqs the frame was computed from
    last_seq: int
    path: str  # relative to the data root


_FRAME_COLUMNS = ", ".join(f.name for f in fields(FrameRow))


class FrameQueries:
    """The frames table, as methods of the analysis DB (``AnalysisDB`` mixes this in)."""

    def frames(self, *partition_keys: str) -> list[FrameRow]:
        """The frames of the partitions, in time order."""
        if not partition_keys:
            return []
        marks = ", ".join("?" * len(partition_keys))
        return [
            FrameRow(*r)
            for r in self.conn.execute(
                f"SELECT {_FRAME_COLUMNS} FROM frames WHERE partition_key IN ({marks}) ORDER BY t_start_ns, frame_id",
                partition_keys,
            )
        ]

    def replace_frames(self, partition_key: str, rows: list[FrameRow]) -> None:
        """The partition's frames become ``rows`` (their frame_id is assigned here), in one transaction."""
        cols = [f.name for f in fields(FrameRow)][1:]
        with self.transaction(f"writing the frames of {partition_key}") as conn:
            conn.execute("DELETE FROM frames WHERE partition_key = ?", (partition_key,))
            conn.executemany(
                f"INSERT INTO frames ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                [astuple(r)[1:] for r in rows],
            )


def partitions_with_frames(analysis_db: Path) -> list[str]:
    """Partition keys that have frames, the newest frame first ([] while the DB or its frames
    table does not exist yet). Read-only: a sensor may ask while assets write."""
    if not Path(analysis_db).exists():
        return []
    conn = connect_ro(analysis_db)
    try:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='frames'").fetchone():
            return []
        return [
            k
            for k, _ in conn.execute(
                "SELECT partition_key, max(t_start_ns) AS t FROM frames GROUP BY partition_key ORDER BY t DESC"
            )
        ]
    finally:
        conn.close()


def partition_folder(root: Path, partition_key: str) -> Path:
    return root / key_slug(partition_key)


def expected_frames(n_samples: int, nfft: int, hop: int, frame_cols: int) -> int:
    """Frames a contiguous segment of n_samples yields: full frames, plus a padded partial
    frame when at least nfft samples remain."""
    step = frame_cols * hop
    full = max(0, (n_samples - (nfft - hop)) // step)
    return full + (1 if n_samples - full * step >= nfft else 0)


def encode_png_gray(img: np.ndarray) -> bytes:
    """An 8-bit grayscale PNG of ``img`` (H x W uint8), every row filter type 0 (None) and the
    deflate stream STORED (zlib level 0: no compression). A spectrogram frame is mostly noise,
    which deflate hardly shrinks: measured on the shipped model's training frames, Huffman-only
    coding took 5.5-6.2 ms a 640 x 640 frame (about one frame's STFT, 5-7 ms) for 296-303 KiB,
    stored takes 0.3 ms for 401 KiB (Pillow's default: ~20 ms, 317 KiB). So the encode costs a
    twentieth of the FFT, for a third more disk (bounded by the frames' retention). Any PNG
    reader decodes it."""
    img = np.ascontiguousarray(img, dtype=np.uint8)
    if img.ndim != 2:
        raise ValueError(f"encode_png_gray expects an H x W image, got shape {img.shape}")
    h, w = img.shape
    rows = np.zeros((h, w + 1), np.uint8)  # a filter byte (0) before each row
    rows[:, 1:] = img
    z = zlib.compressobj(0, zlib.DEFLATED, 15, 9)
    idat = z.compress(rows.data) + z.flush()
    return b"".join(
        (
            _PNG_SIGNATURE,
            _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)),
            _png_chunk(b"IDAT", idat),
            _png_chunk(b"IEND", b""),
        )
    )


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(tag)))


def render_partition(
    db,
    partition_key: str,
    out_root: Path,
    *,
    nfft: int,
    hop: int,
    frame_cols: int,
    backend: str = "numpy",
    energy: dict | None = None,
) -> FramesStats:
    """Render every frame of the partition (replacing earlier frames) and index them in the
    frames table of ``db`` (the open ``AnalysisDB``).

    ``energy`` (detector parameters, ``{}`` for the defaults): also run the energy detector
    over the same samples, reusing this STFT where it can (``dsp.detect.segment_detector``),
    and replace the partition's stored bursts (``store.bursts``). Each PNG is encoded and
    written by a worker thread while the next frame's STFT runs."""
    t0 = time.perf_counter()
    folder = partition_folder(out_root, partition_key)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    frame_samples = frame_cols * hop + max(0, nfft - hop)
    expected = n_total = 0
    stft_s = png_s = 0.0
    rows: list[FrameRow] = []
    bursts: list[EnergyBurstRow] = []
    detectors = []
    writes = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="png") as pool:

        def emit(cu8, frame_t0, fs, fc, seqs, det):
            nonlocal stft_s
            a, img = _render_one(cu8, nfft, hop, frame_cols, backend, det)
            stft_s += a
            path = folder / f"{frame_t0}.png"
            writes.append(pool.submit(_write_png, img, path))
            rows.append(_row(img, path, partition_key, frame_t0, fs, fc, nfft, hop, seqs, out_root))

        for seg, with_iq in db.runs_with_iq(partition_key):
            fs, fc = seg[0].sample_rate_hz, seg[0].center_freq_hz
            seg_t0 = seg[0].t_start_ns
            seg_samples = sum(c.n_samples for c in seg)
            n_total += seg_samples
            expected += expected_frames(seg_samples, nfft, hop, frame_cols)
            det = None if energy is None else segment_detector(fs, nfft, hop, **energy)
            buf = bytearray()
            seqs: list[int] = []
            frame_t0, done = seg_t0, 0
            for c in with_iq:
                iq = c.iq
                if det is not None:
                    det.add_samples(iq)
                buf += iq
                seqs.append(c.seq)
                while len(buf) >= 2 * frame_samples:
                    emit(buf[: 2 * frame_samples], frame_t0, fs, fc, seqs, det)
                    del buf[: 2 * frame_cols * hop]
                    done += frame_cols * hop
                    frame_t0 = seg_t0 + samples_to_ns(done, fs)
                    seqs = seqs[-1:]
            if len(buf) >= 2 * nfft:  # the padded partial frame
                emit(bytes(buf), frame_t0, fs, fc, seqs, det)
            if det is not None:
                bursts.extend(_burst_row(b, seg_t0, fs, fc) for b in det.finish())
                detectors.append(det)
        for w in writes:
            png_s += w.result()
    db.replace_frames(partition_key, rows)
    energy_s = sum(d.seconds for d in detectors)
    if energy is not None:
        geometry = "; ".join(dict.fromkeys(d.describe() for d in detectors)) or "no samples"
        db.replace_energy_bursts(EnergyRun(partition_key, time.time_ns(), len(bursts), energy_s, geometry), bursts)
    return FramesStats(
        len(rows),
        expected,
        n_total,
        time.perf_counter() - t0,
        stft_s,
        png_s,
        backend,
        str(folder),
        len(bursts) if energy is not None else None,
        energy_s,
    )


def _burst_row(b, seg_t0_ns: int, fs: float, fc: float) -> EnergyBurstRow:
    return EnergyBurstRow(
        seg_t0_ns + samples_to_ns(b.start_sample, fs),
        seg_t0_ns + samples_to_ns(b.end_sample, fs),
        fc + b.freq_lower_hz,
        fc + b.freq_upper_hz,
        b.snr_db,
        b.peak_db,
    )


def _render_one(cu8, nfft: int, hop: int, frame_cols: int, backend: str, det=None):
    """(CPU seconds, the frame's 8-bit image); the power columns go to ``det`` first when it
    reuses them (their pooling is counted in the detector's seconds, not here)."""
    t = time.process_time()
    if backend == "torch-cuda":
        db = stft.stft_db_torch(np.frombuffer(cu8, dtype=np.uint8), nfft, hop)[:frame_cols]
        if det is not None and not det.own_stft:
            det.add_power(np.power(np.float32(10), db / np.float32(10)) - np.float32(stft.EPS_POWER))
    else:
        p = stft.stft_power_cu8(cu8, nfft, hop)[:frame_cols]
        if det is not None and not det.own_stft:
            t_det = det.seconds
            det.add_power(p)
            t -= det.seconds - t_det  # the detector's pooling is its own
        db = stft.power_to_db(p)
    img = stft.normalize_frame_u8(db)
    if img.shape[1] < frame_cols:  # partial frame: pad black on the right
        img = np.pad(img, ((0, 0), (0, frame_cols - img.shape[1])))
    return time.process_time() - t, img


def _write_png(img: np.ndarray, path: Path) -> float:
    t = time.thread_time()
    path.write_bytes(encode_png_gray(img))
    return time.thread_time() - t


def _row(img, path, partition_key, t_start_ns, fs, fc, nfft, hop, seqs, root) -> FrameRow:
    geom = stft.FrameGeometry(t_start_ns, fs, fc, nfft, hop, img.shape[1], img.shape[0])
    return FrameRow(
        0,
        partition_key,
        t_start_ns,
        geom.t_end_ns,
        geom.freq_lower_hz,
        geom.freq_upper_hz,
        fc,
        fs,
        nfft,
        hop,
        img.shape[1],
        img.shape[0],
        seqs[0],
        seqs[-1],
        str(path.relative_to(root.parent)),
    )
