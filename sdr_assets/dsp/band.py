"""The band a short transmission occupies, from its samples (a decoder's package: where in Hz).

rtl_433 says WHEN a package is (its pulses, to the sample) but its frequency estimate is an
average of its FM discriminator: on the 22 recordings in ``shared/data/rtl433`` it is 0.5 to
15 kHz off the carrier the spectrum shows (GT-WT-02: -21 kHz for a carrier at -60 kHz). A
label box needs the real band, so it is measured here:

1. Mean periodogram of ``x`` (Hann, ``nfft`` bins, blocks of ``nfft`` without overlap), fftshifted;
   the bins at DC (+-``dc_bins``) take the value of their neighbours (the dongle's DC spike).
2. Floor = median bin; peak = strongest bin. Below ``min_snr_db`` of peak over floor there is
   nothing to measure (None).
3. Bins above ``max(peak - drop_db, floor + min_snr_db)`` in runs; runs closer than ``join_hz``
   to the run holding the peak join it (the two tones of FSK, an OOK carrier's sidebands).
   The band is that cluster's outer edges (bin edges), in baseband Hz.
"""

import numpy as np

from sdr_assets.dsp.stft import hann_window


def occupied_band(
    x: np.ndarray,
    sample_rate_hz: float,
    *,
    nfft: int = 256,
    drop_db: float = 15.0,
    min_snr_db: float = 6.0,
    join_hz: float = 50e3,
    dc_bins: int = 1,
) -> tuple[float, float] | None:
    """(freq_lower_hz, freq_upper_hz) relative to the centre, or None (see the module doc)."""
    n_blocks = len(x) // nfft
    if n_blocks == 0:
        return None
    blocks = np.asarray(x[: n_blocks * nfft], dtype=np.complex64).reshape(n_blocks, nfft)
    spec = np.fft.fftshift(np.fft.fft(blocks * hann_window(nfft), axis=1), axes=1)
    power = (np.abs(spec) ** 2).mean(axis=0)
    mid = nfft // 2
    lo, hi = max(0, mid - dc_bins), min(nfft, mid + dc_bins + 1)
    neighbours = np.concatenate([power[max(0, lo - 2) : lo], power[hi : hi + 2]])
    if neighbours.size:
        power[lo:hi] = neighbours.mean()
    db = 10.0 * np.log10(power + 1e-20)
    floor, k = float(np.median(db)), int(np.argmax(db))
    if db[k] - floor < min_snr_db:
        return None
    above = db > max(db[k] - drop_db, floor + min_snr_db)
    bin_hz = sample_rate_hz / nfft
    join_bins = int(round(join_hz / bin_hz))
    first = last = k
    while first > 0:  # grow left over runs of bins below the threshold shorter than join_bins
        nxt = np.flatnonzero(above[max(0, first - 1 - join_bins) : first])
        if nxt.size == 0:
            break
        first = max(0, first - 1 - join_bins) + int(nxt[0])
    while last < nfft - 1:
        nxt = np.flatnonzero(above[last + 1 : last + 2 + join_bins])
        if nxt.size == 0:
            break
        last = last + 1 + int(nxt[-1])
    return (first - mid - 0.5) * bin_hz, (last - mid + 0.5) * bin_hz
