"""Spectrogram frames of a partition: stream its chunks, STFT, 8-bit PNGs and an index table.

Frames are fixed length (frame_cols * hop samples). A frame never spans a recorded gap or a
retune: each contiguous segment is cut into frames, and its last partial frame is padded
with black on the right (its geometry still covers the full width, so every pixel maps back
to a time). Row 0 is the highest frequency.
"""

import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from sdr_assets.dsp import stft
from sdr_assets.dsp.iq import cu8_to_complex64
from sdr_assets.records import samples_to_ns
from sdr_assets.store.sensors import key_slug


@dataclass(frozen=True)
class FramesStats:
    n_frames: int
    expected_frames: int
    n_samples: int
    seconds: float
    stft_s: float
    png_s: float
    backend: str
    folder: str


def partition_folder(root: Path, partition_key: str) -> Path:
    return root / key_slug(partition_key)


def expected_frames(n_samples: int, nfft: int, hop: int, frame_cols: int) -> int:
    """Frames a contiguous segment of n_samples yields: full frames, plus a padded partial
    frame when at least nfft samples remain."""
    step = frame_cols * hop
    full = max(0, (n_samples - (nfft - hop)) // step)
    return full + (1 if n_samples - full * step >= nfft else 0)


def _segments(rows):
    """Group chunk rows into contiguous segments (same tuning, no time hole)."""
    seg, expect = [], None
    for seq, t_start_ns, fs, fc, n, iq in rows:
        key = (fs, fc)
        if seg and (key != seg[0][1] or abs(t_start_ns - expect) > samples_to_ns(1, fs)):
            yield seg
            seg = []
        seg.append(((seq, t_start_ns, n, iq), key))
        expect = t_start_ns + samples_to_ns(n, fs)
    if seg:
        yield seg


def render_partition(conn: sqlite3.Connection, partition_key: str, out_root: Path, *,
                     nfft: int, hop: int, frame_cols: int, backend: str = "numpy") -> FramesStats:
    """Render every frame of the partition (replacing earlier frames) and index them."""
    t0 = time.perf_counter()
    folder = partition_folder(out_root, partition_key)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    conn.execute("DELETE FROM frames WHERE partition_key = ?", (partition_key,))
    rows = conn.execute(
        "SELECT seq, t_start_ns, sample_rate_hz, center_freq_hz, n_samples, iq FROM chunks "
        "WHERE partition_key = ? ORDER BY t_start_ns, seq", (partition_key,))
    frame_samples = frame_cols * hop + max(0, nfft - hop)
    n_frames = expected = n_total = 0
    stft_s = png_s = 0.0
    pending = []
    for seg in _segments(rows):
        fs, fc = seg[0][1]
        seg_t0 = seg[0][0][1]
        seg_samples = sum(c[0][2] for c in seg)
        n_total += seg_samples
        expected += expected_frames(seg_samples, nfft, hop, frame_cols)
        buf = bytearray()
        seqs: list[int] = []
        frame_t0, done = seg_t0, 0
        for (seq, _t, _n, iq), _ in seg:
            buf += iq
            seqs.append(seq)
            while len(buf) >= 2 * frame_samples:
                a, b = _render_one(buf[: 2 * frame_samples], nfft, hop, frame_cols, backend)
                stft_s += a
                pending.append(_save(b, folder, partition_key, frame_t0, fs, fc, nfft, hop,
                                     frame_cols, seqs, out_root))
                png_s += pending[-1][1]
                del buf[: 2 * frame_cols * hop]
                done += frame_cols * hop
                frame_t0 = seg_t0 + samples_to_ns(done, fs)
                seqs = seqs[-1:]
        if len(buf) >= 2 * nfft:  # the padded partial frame
            a, b = _render_one(bytes(buf), nfft, hop, frame_cols, backend)
            stft_s += a
            pending.append(_save(b, folder, partition_key, frame_t0, fs, fc, nfft, hop,
                                 frame_cols, seqs, out_root))
            png_s += pending[-1][1]
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        "INSERT INTO frames (partition_key, t_start_ns, t_end_ns, freq_lower_hz, freq_upper_hz,"
        " center_freq_hz, sample_rate_hz, nfft, hop, width_px, height_px, first_seq, last_seq,"
        " path) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", [p[0] for p in pending])
    conn.execute("COMMIT")
    n_frames = len(pending)
    return FramesStats(n_frames, expected, n_total, time.perf_counter() - t0, stft_s, png_s,
                       backend, str(folder))


def _render_one(cu8: bytes, nfft: int, hop: int, frame_cols: int, backend: str):
    t = time.perf_counter()
    x = cu8_to_complex64(np.frombuffer(cu8, dtype=np.uint8))
    if backend == "torch-cuda":
        db = stft.stft_db_torch(x, nfft, hop)
    else:
        db = stft.stft_db(x, nfft, hop)
    db = db[:frame_cols]
    img = stft.normalize_frame_u8(db)
    if img.shape[1] < frame_cols:  # partial frame: pad black on the right
        img = np.pad(img, ((0, 0), (0, frame_cols - img.shape[1])))
    return time.perf_counter() - t, img


def _save(img, folder, partition_key, t_start_ns, fs, fc, nfft, hop, frame_cols, seqs, root):
    t = time.perf_counter()
    path = folder / f"{t_start_ns}.png"
    Image.fromarray(img).save(path, compress_level=1)
    geom = stft.FrameGeometry(t_start_ns, fs, fc, nfft, hop, img.shape[1], img.shape[0])
    row = (partition_key, t_start_ns, geom.t_end_ns, geom.freq_lower_hz, geom.freq_upper_hz,
           fc, fs, nfft, hop,
           img.shape[1], img.shape[0], seqs[0], seqs[-1], str(path.relative_to(root.parent)))
    return row, time.perf_counter() - t
