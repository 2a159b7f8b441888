"""A whole window as one waterfall on one dB scale, computed from its IQ (for the report picture).

The spectrogram frames cannot give it: each frame PNG is normalised on its own (its 20th
percentile -> 0, ``dsp.stft.normalize_frame_u8``) and the scale is not stored, so two frames'
grey levels do not compare. Instead the window's chunks are read segment by segment
(``records.segments``: one tuning, no hole) and Hann-windowed FFTs of ``nfft`` samples are
taken at a fixed time stride, chosen so the whole window costs about ``max_ffts`` FFTs
whatever its rate (every chunk is read once; only the strided slices are transformed). Power
is scaled to dBFS per bin: a full-scale complex tone reads 0 dB (``|sum(window)|^2``).

Pooling to the picture: ``n_cols`` columns tile the window in time; a column takes the MAX
over the FFTs that fall in it (a 5 ms burst survives in a 50 ms column), and ``nfft //
n_rows`` adjacent bins are max-pooled into a row. Columns no segment covers stay NaN (a gap,
drawn as such). Rows run from the lowest frequency up (``origin="lower"``).
"""

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.fft

from sdr_assets.dsp.iq import CU8_PAIR_LUT, cu8_pairs
from sdr_assets.dsp.stft import hann_window
from sdr_assets.records import NS_PER_S, Segment
from sdr_assets.store import messages as chunks_of

DEFAULT_NFFT = 512
DEFAULT_COLS = 1000
DEFAULT_ROWS = 256
DEFAULT_FFTS_PER_COL = 16
_BATCH = 4096  # FFTs transformed at once


@dataclass
class Tile:
    """One segment's part of the picture: columns [col0, col1) of the window, its band, and
    dBFS (n_rows, col1 - col0), row 0 the lowest frequency, NaN where no FFT fell."""

    col0: int
    col1: int
    freq_lower_hz: float
    freq_upper_hz: float
    db: np.ndarray


@dataclass
class Waterfall:
    t_start_ns: int
    t_end_ns: int
    n_cols: int
    nfft: int
    tiles: list[Tile] = field(default_factory=list)
    n_samples: int = 0  # samples in the window's segments
    n_ffts: int = 0
    covered_ns: int = 0  # time the segments cover

    @property
    def col_ns(self) -> float:
        return (self.t_end_ns - self.t_start_ns) / self.n_cols

    def values(self) -> np.ndarray:
        """Every finite dB value of the picture (for the colour scale)."""
        parts = [t.db[np.isfinite(t.db)] for t in self.tiles]
        return np.concatenate(parts) if parts else np.empty(0, np.float32)


def window_waterfall(
    conn,
    partition_key: str,
    t_start_ns: int,
    t_end_ns: int,
    *,
    nfft: int = DEFAULT_NFFT,
    n_cols: int = DEFAULT_COLS,
    n_rows: int = DEFAULT_ROWS,
    ffts_per_col: int = DEFAULT_FFTS_PER_COL,
) -> Waterfall:
    """The partition's samples in [t_start_ns, t_end_ns) as one waterfall (see the module doc);
    ``conn`` is the analysis DB's connection."""
    if t_end_ns <= t_start_ns or n_cols < 1 or n_rows < 1 or nfft % n_rows or n_rows % 2:
        raise ValueError(f"bad waterfall geometry: window {t_start_ns}..{t_end_ns}, {n_cols} x {n_rows}, nfft {nfft}")
    wf = Waterfall(int(t_start_ns), int(t_end_ns), int(n_cols), int(nfft))
    stride_ns = (t_end_ns - t_start_ns) / (n_cols * ffts_per_col)
    win = (hann_window(nfft) / np.float32(np.sum(hann_window(nfft)))).astype(np.complex64)  # full-scale tone: 1
    for seg in chunks_of.segment_spans(conn, partition_key):
        if seg.t_end_ns <= t_start_ns or seg.t_start_ns >= t_end_ns or seg.n_samples < nfft:
            continue
        tile = _segment_tile(conn, partition_key, seg, wf, win, stride_ns, n_rows)
        if tile is not None:
            wf.tiles.append(tile)
        wf.n_samples += seg.n_samples
        wf.covered_ns += min(seg.t_end_ns, t_end_ns) - max(seg.t_start_ns, t_start_ns)
    return wf


def _segment_tile(conn, key: str, seg: Segment, wf: Waterfall, win: np.ndarray, stride_ns: float, n_rows: int):
    fs, nfft = seg.sample_rate_hz, wf.nfft
    f = nfft // n_rows
    stride = max(1, int(stride_ns * fs / NS_PER_S))
    starts = np.arange(0, seg.n_samples - nfft + 1, stride, dtype=np.int64)  # FFT starts, samples into the segment
    mid_ns = seg.t_start_ns + (starts + nfft / 2) * (NS_PER_S / fs)
    cols = np.floor((mid_ns - wf.t_start_ns) / wf.col_ns).astype(np.int64)
    keep = (cols >= 0) & (cols < wf.n_cols)
    starts, cols = starts[keep], cols[keep]
    if not starts.size:
        return None
    power = np.empty((starts.size, n_rows), np.float32)  # bins max-pooled into rows
    done = 0  # FFTs computed
    tail = np.empty(0, np.uint16)  # the last nfft - 1 samples of the previous chunks
    offset = 0  # segment sample index of tail[0]
    for iq in chunks_of.iter_segment_iq(conn, key, seg):
        codes = np.concatenate([tail, cu8_pairs(iq)])
        end = offset + codes.size
        n = int(np.searchsorted(starts, end - nfft, side="right"))  # starts whose nfft samples are here
        for b in range(done, n, _BATCH):
            m = min(n, b + _BATCH) - b
            first = int(starts[b] - offset)  # starts are evenly spaced: a strided view, no index array
            view = np.lib.stride_tricks.as_strided(
                codes[first:], shape=(m, nfft), strides=(stride * codes.itemsize, codes.itemsize), writeable=False
            )
            x = np.take(CU8_PAIR_LUT, view)
            x *= win
            spec = scipy.fft.fft(x, axis=-1, workers=1, overwrite_x=True).view(np.float32)
            p = spec[:, 0::2] ** 2 + spec[:, 1::2] ** 2
            pooled = p[:, 0::f]  # max over each row's f adjacent bins (strided: fast)
            for j in range(1, f):
                np.maximum(pooled, p[:, j::f], out=pooled)
            half = n_rows // 2  # fftshift: bins from -fs/2 up
            power[b : b + m, :half], power[b : b + m, half:] = pooled[:, n_rows - half :], pooled[:, : n_rows - half]
        done = n
        keep_n = min(codes.size, nfft - 1)
        tail, offset = codes[codes.size - keep_n :].copy(), end - keep_n
    starts, cols, power = starts[:done], cols[:done], power[:done]
    if not done:
        return None
    bounds = np.flatnonzero(np.r_[True, cols[1:] != cols[:-1]])
    pooled = np.maximum.reduceat(power, bounds, axis=0)
    col0, col1 = int(cols[0]), int(cols[-1]) + 1
    db = np.full((n_rows, col1 - col0), np.nan, np.float32)
    db[:, cols[bounds] - col0] = (10.0 * np.log10(pooled + 1e-20)).T
    bin_hz = fs / nfft
    lower = seg.center_freq_hz - (nfft // 2 + 0.5) * bin_hz
    return Tile(col0, col1, lower, lower + fs, db)


def db_scale(values: np.ndarray, floor_percentile: float = 20.0, min_span_db: float = 30.0) -> tuple[float, float]:
    """(vmin, vmax) of one colour scale for the whole window: the floor percentile (noise) up to
    the largest value, at least ``min_span_db`` apart (a window of noise stays dark)."""
    if not values.size:
        return -100.0, -100.0 + min_span_db
    lo = float(np.percentile(values, floor_percentile))
    hi = float(np.max(values))
    return lo, max(hi, lo + min_span_db) if math.isfinite(hi) else lo + min_span_db
