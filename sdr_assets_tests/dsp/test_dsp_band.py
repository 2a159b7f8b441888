"""dsp.band.occupied_band: where in Hz a short transmission is, from its samples."""

import numpy as np

from sdr_assets.dsp.band import occupied_band
from sdr_assets.dsp.iq import complex64_to_cu8, cu8_to_complex64

FS = 250_000.0


def _noise(n: int, rng, power: float = 1e-4) -> np.ndarray:
    return ((rng.standard_normal(n) + 1j * rng.standard_normal(n)) * np.sqrt(power / 2)).astype(np.complex64)


def _ook(n: int, freq_hz: float, amp: float = 0.3) -> np.ndarray:
    t = np.arange(n) / FS
    keying = (np.arange(n) // 500) % 2  # 2 ms on, 2 ms off
    return (amp * keying * np.exp(2j * np.pi * freq_hz * t)).astype(np.complex64)


def test_an_ook_carrier_is_found_in_a_few_khz_around_it():
    rng = np.random.default_rng(1)
    x = cu8_to_complex64(complex64_to_cu8(_noise(50_000, rng) + _ook(50_000, -61_000.0)))  # through 8 bits
    lo, hi = occupied_band(x, FS)
    assert lo < -61_000 < hi and hi - lo < 10_000


def test_the_two_tones_of_fsk_make_one_band():
    rng = np.random.default_rng(2)
    n = 40_000
    bits = (np.arange(n) // 100) % 3 == 0
    freq = np.where(bits, 30_000.0, -10_000.0)
    x = _noise(n, rng) + (0.3 * np.exp(2j * np.pi * np.cumsum(freq) / FS)).astype(np.complex64)
    lo, hi = occupied_band(x, FS)
    assert lo < -10_000 and hi > 30_000 and hi - lo < 60_000


def test_a_second_signal_far_away_stays_out_and_noise_alone_is_none():
    rng = np.random.default_rng(3)
    x = _noise(50_000, rng) + _ook(50_000, 40_000.0) + _ook(50_000, -90_000.0, amp=0.2)
    lo, hi = occupied_band(x, FS)
    assert lo < 40_000 < hi and lo > -50_000  # the cluster around the strongest only
    assert occupied_band(_noise(50_000, rng), FS) is None
    assert occupied_band(_noise(100, rng), FS) is None  # shorter than one FFT
