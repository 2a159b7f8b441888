"""Spectrogram frames for 640 x 640 detector images, and their time/frequency geometry.

Layout: :func:`stft_db` returns float32 ``(n_cols, nfft)``: one row per STFT column
(time), one entry per frequency bin ordered from -fs/2 up to just below +fs/2 (the
fftshift order). Column ``c`` is the Hann-windowed FFT of samples
``[c * hop, c * hop + nfft)``; the value is ``10 * log10(|X|^2 + EPS_POWER)`` with ``X``
the plain DFT sum (no normalisation), so a full-scale tone gives about
``20 * log10(sum(window))`` dB and cu8 quantisation noise sits far above ``EPS_POWER``.

Images (:func:`normalize_frame_u8`) are transposed: height = nfft rows, width = columns,
row 0 = the HIGHEST frequency (image convention: top = freq_upper). :class:`FrameGeometry`
maps pixels to ns and Hz and back.

Speed: the fftshift is folded into the window (multiplying by (-1)^n shifts the spectrum
by nfft/2 bins, exact for even nfft), cu8 is converted with one 8-byte table gather per
sample, and the work runs in cache-sized blocks of columns with in-place float32 ops.
"""

import importlib
import importlib.util
import math
import os
from dataclasses import dataclass

import numpy as np
import scipy.fft

from sdr_assets.dsp.iq import CU8_PAIR_LUT, cu8_pairs
from sdr_assets.records import NS_PER_S

DEFAULT_NFFT = 640
DEFAULT_HOP = 640
DEFAULT_FRAME_COLS = 640
EPS_POWER = 1e-10
_DB_PER_LN = np.float32(10.0 / math.log(10.0))
_BLOCK_SAMPLES = 81920  # 128 columns of 640 complex64 = 640 KiB: stays in L2


def hann_window(nfft: int) -> np.ndarray:
    """Periodic (DFT-even) Hann window, float32: ``0.5 - 0.5 cos(2 pi n / nfft)`` (what
    scipy.signal.get_window("hann", nfft) gives, without importing scipy.signal: a second of
    start-up in every process)."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(nfft) / nfft)).astype(np.float32)


def _shifted_window(nfft: int, window: np.ndarray | None) -> tuple[np.ndarray, bool]:
    """Window with the fftshift folded in when nfft is even; returns (window, shift_done)."""
    w = hann_window(nfft) if window is None else np.asarray(window, dtype=np.float32)
    if w.shape != (nfft,):
        raise ValueError(f"window must have shape ({nfft},), got {w.shape}")
    if nfft % 2:
        return w.astype(np.complex64), False
    sign = np.where(np.arange(nfft) % 2 == 0, 1.0, -1.0).astype(np.float32)
    return (w * sign).astype(np.complex64), True


def _n_cols(n_samples: int, nfft: int, hop: int) -> int:
    if nfft < 1 or hop < 1:
        raise ValueError(f"nfft and hop must be >= 1, got nfft={nfft}, hop={hop}")
    return 0 if n_samples < nfft else 1 + (n_samples - nfft) // hop


def _frames_view(a: np.ndarray, nfft: int, hop: int, n_cols: int) -> np.ndarray:
    """(n_cols, nfft) view of a 1-D array, no copy."""
    if hop == nfft:
        return a[: n_cols * nfft].reshape(n_cols, nfft)
    return np.lib.stride_tricks.sliding_window_view(a[: (n_cols - 1) * hop + nfft], nfft)[::hop]


def _stft_blocks(src: np.ndarray, nfft: int, hop: int, window, gather: bool, db: bool = True) -> np.ndarray:
    """Core loop. ``src`` is complex64 samples, or uint16 cu8 codes when ``gather``."""
    n_cols = _n_cols(src.shape[0], nfft, hop)
    out = np.empty((n_cols, nfft), dtype=np.float32)
    if n_cols == 0:
        return out
    w, shifted = _shifted_window(nfft, window)
    frames = _frames_view(src, nfft, hop, n_cols)
    block_cols = max(1, _BLOCK_SAMPLES // nfft)
    buf = np.empty((block_cols, nfft), dtype=np.complex64)
    for c0 in range(0, n_cols, block_cols):
        c1 = min(c0 + block_cols, n_cols)
        b = buf[: c1 - c0]
        if gather:
            np.take(CU8_PAIR_LUT, frames[c0:c1], out=b)
            b *= w
        else:
            np.multiply(frames[c0:c1], w, out=b)
        spec = scipy.fft.fft(b, axis=-1, workers=1, overwrite_x=True)
        v = spec.view(np.float32)
        np.multiply(v, v, out=v)
        o = out[c0:c1]
        np.add(v[:, 0::2], v[:, 1::2], out=o)
        if not db:
            continue
        o += np.float32(EPS_POWER)
        np.log(o, out=o)
        o *= _DB_PER_LN
    if not shifted:
        out[:] = np.fft.fftshift(out, axes=-1)
    return out


def stft_db(
    x: np.ndarray, nfft: int = DEFAULT_NFFT, hop: int = DEFAULT_HOP, window: np.ndarray | None = None
) -> np.ndarray:
    """Power spectrogram in dB, float32 ``(n_cols, nfft)``, bins from -fs/2 to +fs/2.

    Samples after the last whole column are ignored. ``window`` defaults to a periodic
    Hann window of length ``nfft``.
    """
    x = np.asarray(x)
    if not np.iscomplexobj(x):
        raise ValueError(f"stft_db expects complex samples, got dtype {x.dtype}")
    x = np.ascontiguousarray(x.reshape(-1), dtype=np.complex64)
    return _stft_blocks(x, nfft, hop, window, gather=False)


def stft_power(
    x: np.ndarray, nfft: int = DEFAULT_NFFT, hop: int = DEFAULT_HOP, window: np.ndarray | None = None
) -> np.ndarray:
    """Like :func:`stft_db` but linear power ``|X|^2`` (float32, same layout)."""
    x = np.asarray(x)
    if not np.iscomplexobj(x):
        raise ValueError(f"stft_power expects complex samples, got dtype {x.dtype}")
    x = np.ascontiguousarray(x.reshape(-1), dtype=np.complex64)
    return _stft_blocks(x, nfft, hop, window, gather=False, db=False)


def stft_db_cu8(
    cu8: bytes | np.ndarray, nfft: int = DEFAULT_NFFT, hop: int = DEFAULT_HOP, window: np.ndarray | None = None
) -> np.ndarray:
    """Same as ``stft_db(cu8_to_complex64(cu8), ...)`` without the complex intermediate."""
    return _stft_blocks(cu8_pairs(cu8), nfft, hop, window, gather=True)


def stft_power_cu8(
    cu8: bytes | np.ndarray, nfft: int = DEFAULT_NFFT, hop: int = DEFAULT_HOP, window: np.ndarray | None = None
) -> np.ndarray:
    """Same as ``stft_power(cu8_to_complex64(cu8), ...)`` without the complex intermediate."""
    return _stft_blocks(cu8_pairs(cu8), nfft, hop, window, gather=True, db=False)


def power_to_db(p: np.ndarray) -> np.ndarray:
    """``10 * log10(p + EPS_POWER)`` in place (float32): :func:`stft_power` -> :func:`stft_db`."""
    p += np.float32(EPS_POWER)
    np.log(p, out=p)
    p *= _DB_PER_LN
    return p


def frames_from_cu8(
    cu8: bytes | np.ndarray,
    nfft: int = DEFAULT_NFFT,
    hop: int = DEFAULT_HOP,
    frame_cols: int = DEFAULT_FRAME_COLS,
    window: np.ndarray | None = None,
) -> np.ndarray:
    """Whole frames of dB spectrogram, float32 ``(n_frames, frame_cols, nfft)``.

    Frame ``k`` holds columns ``[k * frame_cols, (k + 1) * frame_cols)``, i.e. starts at
    sample ``k * frame_cols * hop``. Columns that do not fill a whole frame are dropped.
    """
    db = stft_db_cu8(cu8, nfft, hop, window)
    n_frames = db.shape[0] // frame_cols
    return db[: n_frames * frame_cols].reshape(n_frames, frame_cols, nfft)


def normalize_frame_u8(db: np.ndarray, floor_percentile: float = 20.0, min_span_db: float = 30.0) -> np.ndarray:
    """dB frame ``(cols, nfft)`` -> 8-bit image ``(nfft, cols)``, row 0 = highest frequency.

    Per frame: ``floor`` = the ``floor_percentile`` of the frame (estimated on every 7th
    value; noise dominates a band, so this is the noise floor) maps to 0, ``top`` =
    max(frame max, floor + ``min_span_db``) maps to 255, linear in dB in between (so a
    frame of pure noise stays dark instead of being stretched to full contrast).
    """
    db = np.asarray(db, dtype=np.float32)
    if db.ndim != 2:
        raise ValueError(f"normalize_frame_u8 expects (cols, nfft), got shape {db.shape}")
    floor = np.float32(np.percentile(db.reshape(-1)[::7], floor_percentile))
    top = max(np.float32(db.max()), floor + np.float32(min_span_db))
    img = db.T[::-1] - floor
    img *= np.float32(255.0) / (top - floor)
    np.clip(img, 0.0, 255.0, out=img)
    return img.astype(np.uint8)


@dataclass(frozen=True)
class FrameGeometry:
    """Where a spectrogram image sits in time and frequency.

    Continuous pixel coordinates: column ``x`` spans ``[x, x + 1)`` and starts at sample
    ``x * hop`` after ``t_start_ns``; row ``y`` spans ``[y, y + 1)``, row 0 at the top is the
    highest frequency bin. ``height_px`` may differ from ``nfft`` (a resized image): the
    band is then divided evenly among the rows. Bin ``k`` of an nfft-point fftshifted FFT is
    centred on ``(k - nfft // 2) * fs / nfft``; its edges are half a bin either side, so
    the image spans ``[freq_lower_hz, freq_upper_hz)``, exactly ``sample_rate_hz`` wide.
    """

    t_start_ns: int
    sample_rate_hz: float
    center_freq_hz: float
    nfft: int = DEFAULT_NFFT
    hop: int = DEFAULT_HOP
    width_px: int = DEFAULT_FRAME_COLS
    height_px: int = DEFAULT_NFFT

    @property
    def bin_hz(self) -> float:
        return self.sample_rate_hz / self.nfft

    @property
    def row_hz(self) -> float:
        return self.sample_rate_hz / self.height_px

    @property
    def col_ns(self) -> float:
        return self.hop * NS_PER_S / self.sample_rate_hz

    @property
    def freq_upper_hz(self) -> float:
        """Upper edge of the top row (the highest bin's centre + half a bin)."""
        top_bin = self.nfft - 1 - self.nfft // 2
        return self.center_freq_hz + (top_bin + 0.5) * self.bin_hz

    @property
    def freq_lower_hz(self) -> float:
        return self.freq_upper_hz - self.sample_rate_hz

    @property
    def t_end_ns(self) -> int:
        return self.x_to_t_ns(self.width_px)

    def x_to_t_ns(self, x: float) -> int:
        """Time of the left edge of (continuous) column x."""
        return self.t_start_ns + int(round(x * self.col_ns))

    def t_ns_to_x(self, t_ns: int) -> float:
        """Continuous column coordinate of time t (inverse of x_to_t_ns)."""
        return (t_ns - self.t_start_ns) / self.col_ns

    def y_to_freq_hz(self, y: float) -> float:
        """Frequency at the centre of row y (absolute Hz)."""
        return self.freq_upper_hz - (y + 0.5) * self.row_hz

    def y_edge_to_freq_hz(self, y: float) -> float:
        """Frequency at continuous row coordinate y (y = 0 is the top edge)."""
        return self.freq_upper_hz - y * self.row_hz

    def freq_hz_to_y(self, freq_hz: float) -> float:
        """Continuous row coordinate of freq_hz (0 = top edge); its row is floor(y)."""
        return (self.freq_upper_hz - freq_hz) / self.row_hz


def stft_db_torch(
    x: np.ndarray,
    nfft: int = DEFAULT_NFFT,
    hop: int = DEFAULT_HOP,
    device: str = "cuda",
    window: np.ndarray | None = None,
) -> np.ndarray:
    """:func:`stft_db` computed with torch on ``device`` (float32 numpy result, same layout).

    ``x`` is complex samples, or interleaved cu8 (bytes or a uint8 array), which is shipped
    to the device as is (2 bytes a sample) and converted there with the same table.

    torch is imported here, never at module level. Differences from the numpy path are
    float32 rounding only (well under 0.05 dB wherever the power is above the noise).
    """
    torch = importlib.import_module("torch")  # optional accelerator path, loaded on first use

    x = np.asarray(x) if isinstance(x, np.ndarray) else np.frombuffer(x, dtype=np.uint8)
    is_cu8 = x.dtype == np.uint8
    if is_cu8:  # ship 2 bytes a sample, convert on the device
        x = cu8_pairs(x)
    else:
        x = np.ascontiguousarray(x.reshape(-1), dtype=np.complex64)
    n_cols = _n_cols(x.shape[0], nfft, hop)
    if n_cols == 0:
        return np.empty((0, nfft), dtype=np.float32)
    w, shifted = _shifted_window(nfft, window)
    x = x[: (n_cols - 1) * hop + nfft]
    if is_cu8:
        lut = torch.from_numpy(CU8_PAIR_LUT).to(device)
        xt = lut[torch.from_numpy(x.view(np.int16)).to(device).int() & 0xFFFF]
    else:
        xt = torch.from_numpy(x).to(device)
    frames = xt.unfold(0, nfft, hop) * torch.from_numpy(w).to(device)
    p = torch.fft.fft(frames, dim=-1).abs().square_()
    db = (p + EPS_POWER).log10_().mul_(10.0)
    if not shifted:
        db = torch.fft.fftshift(db, dim=-1)
    return db.cpu().numpy().astype(np.float32, copy=False)


NVIDIA_DRIVER_PATHS = ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/nvidia0")


def nvidia_driver_loaded() -> bool:
    """Is an NVIDIA driver visible (its /proc entry or device nodes)? Without one torch sees no
    CUDA device, and importing torch to ask costs seconds of CPU per process."""
    return any(os.path.exists(p) for p in NVIDIA_DRIVER_PATHS)


def pick_backend() -> str:
    """ "torch-cuda" when torch imports and sees a CUDA device, else "numpy" (torch is not
    imported where no NVIDIA driver is loaded)."""

    if not nvidia_driver_loaded() or importlib.util.find_spec("torch") is None:
        return "numpy"
    torch = importlib.import_module("torch")  # only when present, and only here

    return "torch-cuda" if torch.cuda.is_available() else "numpy"
