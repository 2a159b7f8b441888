"""Spectrogram frames of a partition: stream its chunks, STFT, 8-bit PNGs and an index table.

Frames are fixed length (frame_cols * hop samples). A frame never spans a recorded gap or a
retune: each contiguous segment is cut into frames, and its last partial frame is padded
with black on the right (its geometry still covers the full width, so every pixel maps back
to a time). Row 0 is the highest frequency.
"""

import shutil
import time
from dataclasses import astuple, dataclass, fields
from pathlib import Path

import numpy as np
from PIL import Image

from sdr_assets.dsp import stft
from sdr_assets.dsp.iq import cu8_to_complex64
from sdr_assets.records import contiguous_runs, samples_to_ns
from sdr_assets.store.db import connect_ro
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


def render_partition(
    db, partition_key: str, out_root: Path, *, nfft: int, hop: int, frame_cols: int, backend: str = "numpy"
) -> FramesStats:
    """Render every frame of the partition (replacing earlier frames) and index them in the
    frames table of ``db`` (the open ``AnalysisDB``)."""
    t0 = time.perf_counter()
    folder = partition_folder(out_root, partition_key)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    frame_samples = frame_cols * hop + max(0, nfft - hop)
    n_frames = expected = n_total = 0
    stft_s = png_s = 0.0
    pending = []
    for seg in contiguous_runs(db.iter_chunks(partition_key)):
        fs, fc = seg[0].sample_rate_hz, seg[0].center_freq_hz
        seg_t0 = seg[0].t_start_ns
        seg_samples = sum(c.n_samples for c in seg)
        n_total += seg_samples
        expected += expected_frames(seg_samples, nfft, hop, frame_cols)
        buf = bytearray()
        seqs: list[int] = []
        frame_t0, done = seg_t0, 0
        for c in seg:
            buf += c.iq
            seqs.append(c.seq)
            while len(buf) >= 2 * frame_samples:
                a, b = _render_one(buf[: 2 * frame_samples], nfft, hop, frame_cols, backend)
                stft_s += a
                pending.append(_save(b, folder, partition_key, frame_t0, fs, fc, nfft, hop, frame_cols, seqs, out_root))
                png_s += pending[-1][1]
                del buf[: 2 * frame_cols * hop]
                done += frame_cols * hop
                frame_t0 = seg_t0 + samples_to_ns(done, fs)
                seqs = seqs[-1:]
        if len(buf) >= 2 * nfft:  # the padded partial frame
            a, b = _render_one(bytes(buf), nfft, hop, frame_cols, backend)
            stft_s += a
            pending.append(_save(b, folder, partition_key, frame_t0, fs, fc, nfft, hop, frame_cols, seqs, out_root))
            png_s += pending[-1][1]
    db.replace_frames(partition_key, [p[0] for p in pending])
    n_frames = len(pending)
    return FramesStats(n_frames, expected, n_total, time.perf_counter() - t0, stft_s, png_s, backend, str(folder))


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
    row = FrameRow(
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
    return row, time.perf_counter() - t
