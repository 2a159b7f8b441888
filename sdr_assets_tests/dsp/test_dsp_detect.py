"""Energy burst detector: synthetic bursts with known truth, and real rtl_433 recordings."""

import json
from pathlib import Path

import numpy as np
import pytest

from sdr_assets.dsp.detect import Burst, detect_bursts, match_bursts
from sdr_assets.dsp.iq import complex64_to_cu8, cu8_to_complex64

RTL433 = Path(__file__).resolve().parents[3] / "shared" / "data" / "rtl433"
FS = 1e6


def noise(n: int, rng: np.random.Generator, power: float = 1e-3) -> np.ndarray:
    return ((rng.standard_normal(n) + 1j * rng.standard_normal(n)) * np.sqrt(power / 2)).astype(np.complex64)


def ook_packet(
    x: np.ndarray,
    start_s: float,
    freq_hz: float,
    amp: float,
    n_pulses: int = 20,
    pulse_s: float = 0.0005,
    period_s: float = 0.0015,
) -> tuple[int, int]:
    """Add an OOK packet in place; returns its true [start, end) samples."""
    t = np.arange(x.size) / FS
    carrier = (amp * np.exp(2j * np.pi * freq_hz * t)).astype(np.complex64)
    for k in range(n_pulses):
        a = int((start_s + k * period_s) * FS)
        x[a : a + int(pulse_s * FS)] += carrier[a : a + int(pulse_s * FS)]
    return int(start_s * FS), int((start_s + (n_pulses - 1) * period_s + pulse_s) * FS)


def test_finds_an_ook_packet_in_time_and_band():
    rng = np.random.default_rng(0)
    x = noise(int(0.3 * FS), rng)
    true_start, true_end = ook_packet(x, 0.1234, 150e3, amp=0.05)  # ~ +40 dB per bin
    x = cu8_to_complex64(complex64_to_cu8(x))  # through the radio's 8 bits
    bursts = detect_bursts(x, FS)
    assert len(bursts) == 1
    b = bursts[0]
    assert isinstance(b, Burst)
    assert abs(b.start_sample - true_start) / FS < 0.001
    assert abs(b.end_sample - true_end) / FS < 0.001
    assert b.freq_lower_hz <= 150e3 <= b.freq_upper_hz  # baseband Hz, relative to the centre
    assert b.freq_upper_hz - b.freq_lower_hz < 50e3
    assert b.snr_db > 10 and b.peak_db > b.snr_db - 40


def test_weak_burst_is_found_and_noise_alone_gives_nothing():
    rng = np.random.default_rng(1)
    x = noise(int(0.3 * FS), rng)
    assert detect_bursts(x, FS) == []
    start, _ = ook_packet(x, 0.05, -200e3, amp=0.012, n_pulses=30)  # ~ +14 dB in its bin
    bursts = detect_bursts(x, FS)
    assert len(bursts) == 1 and abs(bursts[0].start_sample - start) / FS < 0.001
    assert bursts[0].freq_lower_hz <= -200e3 <= bursts[0].freq_upper_hz


def test_packets_apart_stay_apart_and_pulses_of_one_packet_merge():
    rng = np.random.default_rng(2)
    x = noise(int(0.4 * FS), rng)
    starts = [ook_packet(x, s, 50e3, amp=0.03)[0] for s in (0.05, 0.105, 0.2)]  # 25 ms gaps
    bursts = detect_bursts(x, FS)
    assert [round(b.start_sample / FS, 3) for b in bursts] == [round(s / FS, 3) for s in starts]
    merged = detect_bursts(x, FS, min_gap_s=0.03, gap_ratio=0.0)
    assert len(merged) == 2  # a 30 ms merge gap joins the first two


def test_concurrent_bursts_in_two_bands_when_asked():
    rng = np.random.default_rng(3)
    x = noise(int(0.2 * FS), rng)
    ook_packet(x, 0.05, -300e3, amp=0.03)
    ook_packet(x, 0.052, 300e3, amp=0.015)
    assert len(detect_bursts(x, FS)) == 1  # default: the weaker overlapping one is suppressed
    both = detect_bursts(x, FS, suppress_across_freq=False)
    assert sorted(round(b.freq_lower_hz, -5) for b in both) == [-300e3, 300e3]


def test_rejects_real_input():
    with pytest.raises(ValueError, match="complex"):
        detect_bursts(np.zeros(1000), FS)


def test_match_bursts_is_one_to_one_within_tolerance():
    assert match_bursts([0.10, 0.101, 0.5], [0.1, 0.3], tol_s=0.02) == (1, 2, 1)
    assert match_bursts([], [0.1]) == (0, 0, 1)
    assert match_bursts([0.1], []) == (0, 1, 0)
    assert match_bursts([0.119, 0.3], [0.1, 0.29]) == (2, 0, 0)
    assert match_bursts([0.121], [0.1]) == (0, 1, 1)


def evaluate_rtl433(manifest: dict) -> tuple[int, int, int]:
    tp = fp = fn = 0
    for rec in manifest["recordings"]:
        fs = float(rec["sample_rate_hz"])
        x = cu8_to_complex64(np.fromfile(RTL433 / rec["file"], dtype=np.uint8))
        detected = [b.start_sample / fs for b in detect_bursts(x, fs)]
        reference = [b["start_s"] for b in rec["rtl_433_bursts"]]
        a, b, c = match_bursts(detected, reference, tol_s=0.02)
        tp, fp, fn = tp + a, fp + b, fn + c
    return tp, fp, fn


@pytest.mark.skipif(not (RTL433 / "manifest.json").exists(), reason=f"no recordings at {RTL433}")
def test_real_recordings_recall_and_precision():
    manifest = json.loads((RTL433 / "manifest.json").read_text())
    tp, fp, fn = evaluate_rtl433(manifest)
    recall, precision = tp / (tp + fn), tp / (tp + fp)
    print(
        f"rtl433: {len(manifest['recordings'])} files, tp={tp} fp={fp} fn={fn}, "
        f"recall={recall:.3f} precision={precision:.3f}"
    )
    assert tp + fn == sum(len(r["rtl_433_bursts"]) for r in manifest["recordings"])
    assert recall >= 0.95 and precision >= 0.95


def _feed_power(det, cu8: np.ndarray, nfft: int, hop: int, piece: int) -> None:
    """Samples in uneven pieces and, as the spectrogram does, the power of every whole column."""
    from sdr_assets.dsp.stft import stft_power_cu8

    carry = b""
    for i in range(0, cu8.size, 2 * piece):
        b = cu8[i : i + 2 * piece].tobytes()
        det.add_samples(b)
        if det.own_stft:
            continue
        carry += b
        n_cols = 0 if len(carry) < 2 * nfft else 1 + (len(carry) // 2 - nfft) // hop
        if n_cols:
            det.add_power(stft_power_cu8(carry[: 2 * ((n_cols - 1) * hop + nfft)], nfft, hop))
            carry = carry[2 * n_cols * hop :]


def test_segment_detector_streams_like_detect_bursts_where_it_runs_its_own_stft():
    from sdr_assets.dsp.detect import segment_detector

    fs = 250e3
    rng = np.random.default_rng(7)
    x = ((rng.standard_normal(int(0.6 * fs)) + 1j * rng.standard_normal(int(0.6 * fs))) * 0.02).astype(np.complex64)
    t = np.arange(x.size) / fs
    for start, f in ((0.1, 40e3), (0.35, -70e3)):
        for k in range(20):
            a = int((start + k * 0.0015) * fs)
            x[a : a + 125] += (0.2 * np.exp(2j * np.pi * f * t[a : a + 125])).astype(np.complex64)
    cu8 = complex64_to_cu8(x)
    det = segment_detector(fs, 640, 640)  # a 2.56 ms window: too long to reuse; its own 256/64, 2 x 2 pooled
    assert det.own_stft and (det.grid.nfft, det.grid.hop, det.grid.pool_bins, det.grid.pool_cols) == (256, 64, 2, 2)
    _feed_power(det, cu8, 640, 640, piece=33_333)
    got = det.finish()
    assert len(got) == 2
    assert got == detect_bursts(cu8_to_complex64(cu8), fs, pool_bins=2, pool_cols=2, smooth_cols=5, remove_dc=False)


def test_segment_detector_reuses_a_short_window_pooled_and_finds_the_packet():
    from sdr_assets.dsp.detect import segment_detector

    fs = 3.2e6
    rng = np.random.default_rng(8)
    n = int(1.5 * fs)
    x = ((rng.standard_normal(n) + 1j * rng.standard_normal(n)) * 0.02).astype(np.complex64)
    t = np.arange(n) / fs
    true_start = int(0.7 * fs)
    for k in range(20):  # OOK: 0.5 ms on, 1 ms off
        a = true_start + int(k * 0.0015 * fs)
        x[a : a + 1600] += (0.2 * np.exp(2j * np.pi * 500e3 * t[a : a + 1600])).astype(np.complex64)
    cu8 = complex64_to_cu8(x)
    det = segment_detector(fs, 640, 640)  # 0.2 ms: the spectrogram's STFT, pooled to ~1 ms x 10 kHz
    assert not det.own_stft and (det.grid.pool_bins, det.grid.pool_cols) == (2, 5)
    _feed_power(det, cu8, 640, 640, piece=131_072)
    (b,) = det.finish()
    assert abs(b.start_sample - true_start) / fs < 0.001
    assert abs(b.end_sample - (true_start + int(19 * 0.0015 * fs) + 1600)) / fs < 0.001
    assert (
        b.freq_lower_hz <= 500e3 <= b.freq_upper_hz and b.freq_upper_hz - b.freq_lower_hz < 150e3
    )  # keyed edges: sidelobes


@pytest.mark.parametrize("nfft, hop, pool_bins, pool_cols", [(640, 640, 2, 5), (256, 64, 1, 4), (640, 640, 1, 1)])
def test_pooled_noise_cells_have_the_degrees_of_freedom_the_grid_says(nfft, hop, pool_bins, pool_cols):
    from sdr_assets.dsp.detect import CoarseGrid
    from sdr_assets.dsp.stft import stft_power

    g = CoarseGrid(1e6, nfft, hop, pool_bins, pool_cols)
    rng = np.random.default_rng(9)
    n = 2_000_000
    p = stft_power((rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(np.complex64), nfft, hop)
    k = p.shape[0] // pool_cols
    p = p[: k * pool_cols].reshape(k, pool_cols, nfft).sum(axis=1).reshape(k, nfft // pool_bins, pool_bins).sum(axis=2)
    assert p.mean() ** 2 / p.var() == pytest.approx(g.dof, rel=0.05)  # Gamma(dof): mean^2 / var = dof
