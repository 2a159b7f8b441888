"""Spectrogram layout, tone placement, image orientation and pixel geometry."""

import importlib.util
import math

import numpy as np
import pytest

from sdr_assets.dsp.iq import complex64_to_cu8, cu8_to_complex64
from sdr_assets.dsp.stft import (
    FrameGeometry,
    frames_from_cu8,
    hann_window,
    normalize_frame_u8,
    pick_backend,
    stft_db,
    stft_db_cu8,
    stft_db_torch,
    stft_power,
)

FS = 2.4e6
FC = 433.92e6


def tone(freq_hz: float, n: int, fs: float = FS, amp: float = 0.5) -> np.ndarray:
    t = np.arange(n) / fs
    return (amp * np.exp(2j * np.pi * freq_hz * t)).astype(np.complex64)


def noisy_tone_cu8(freq_hz: float, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = (rng.standard_normal(n) + 1j * rng.standard_normal(n)) * 0.02
    return complex64_to_cu8(tone(freq_hz, n) + noise.astype(np.complex64))


@pytest.mark.parametrize("k", [-320, -100, -1, 0, 1, 77, 319])
def test_tone_lands_in_its_bin(k):
    nfft = 640
    db = stft_db(tone(k * FS / nfft, nfft * 4), nfft, nfft)
    assert db.dtype == np.float32 and db.shape == (4, nfft)
    assert (db.argmax(axis=1) == k + nfft // 2).all()  # row order -fs/2 .. +fs/2


def test_full_scale_tone_level_is_window_sum_in_db():
    nfft = 640
    db = stft_db(tone(10 * FS / nfft, nfft, amp=1.0), nfft, nfft)
    expected = 20 * math.log10(hann_window(nfft).sum())
    assert db.max() == pytest.approx(expected, abs=0.01)


def test_odd_nfft_and_overlap_keep_the_bin_order():
    nfft, hop = 255, 100
    db = stft_db(tone(-40 * FS / nfft, 5000), nfft, hop)
    assert db.shape == (1 + (5000 - nfft) // hop, nfft)
    assert (db.argmax(axis=1) == -40 + nfft // 2).all()


def test_power_and_db_agree():
    x = tone(1e5, 4096)
    p = stft_power(x, 256, 128)
    np.testing.assert_allclose(10 * np.log10(p + 1e-10), stft_db(x, 256, 128), atol=1e-3)


def test_cu8_path_equals_complex_path_and_rejects_real_input():
    cu8 = noisy_tone_cu8(3e5, 640 * 8)
    np.testing.assert_array_equal(stft_db_cu8(cu8), stft_db(cu8_to_complex64(cu8)))
    with pytest.raises(ValueError, match="complex"):
        stft_db(np.zeros(1280, np.float32))


def test_frames_drop_the_partial_tail():
    cu8 = noisy_tone_cu8(3e5, 640 * 64 * 2 + 1000)
    frames = frames_from_cu8(cu8, nfft=64, hop=64, frame_cols=64)
    assert frames.shape == (20, 64, 64) and frames.dtype == np.float32
    assert len(frames_from_cu8(cu8[:100])) == 0


def test_image_top_row_is_highest_frequency_and_maps_back_via_geometry():
    freq_offset_hz = 0.3 * FS
    n = 640 * 640
    db = stft_db_cu8(noisy_tone_cu8(freq_offset_hz, n))
    img = normalize_frame_u8(db)
    assert img.dtype == np.uint8 and img.shape == (640, 640)
    row = int(np.argmax(img.astype(float).mean(axis=1)))
    assert row < 320  # positive offset -> upper half of the image
    geom = FrameGeometry(t_start_ns=1_000, sample_rate_hz=FS, center_freq_hz=FC)
    assert abs(geom.y_to_freq_hz(row) - (FC + freq_offset_hz)) <= geom.bin_hz
    assert int(geom.freq_hz_to_y(FC + freq_offset_hz)) == row
    # noise maps to the dark end, the tone to the bright end
    assert np.median(img) < 80 and img[row].mean() > 200


def test_geometry_edges_and_time_round_trip():
    g = FrameGeometry(
        t_start_ns=5_000_000_000, sample_rate_hz=FS, center_freq_hz=FC, nfft=640, hop=640, width_px=640, height_px=640
    )
    assert g.freq_upper_hz - g.freq_lower_hz == pytest.approx(FS)
    assert g.freq_upper_hz == pytest.approx(FC + FS / 2 - FS / 640 / 2)
    assert g.t_end_ns - g.t_start_ns == round(640 * 640 / FS * 1e9)
    assert g.t_ns_to_x(g.x_to_t_ns(123.0)) == pytest.approx(123.0, abs=1e-6)
    assert g.freq_hz_to_y(g.y_to_freq_hz(10)) == pytest.approx(10.5)
    assert g.y_edge_to_freq_hz(g.freq_hz_to_y(FC + 1e5)) == pytest.approx(FC + 1e5)
    # a resized image: twice the rows, each half a bin
    g2 = FrameGeometry(0, FS, FC, nfft=640, hop=640, width_px=640, height_px=1280)
    assert g2.row_hz == pytest.approx(g.bin_hz / 2) and g2.freq_upper_hz == g.freq_upper_hz


def test_pure_noise_frame_stays_dark():
    rng = np.random.default_rng(1)
    db = (rng.standard_normal((640, 640)) * 3).astype(np.float32)
    img = normalize_frame_u8(db)
    assert img.max() < 200  # the 30 dB minimum span keeps noise from being stretched


def test_pick_backend_names_one_of_two():
    assert pick_backend() in ("numpy", "torch-cuda")


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
@pytest.mark.parametrize("nfft,hop", [(640, 640), (255, 100)])
def test_torch_path_matches_numpy_within_0_05_db(nfft, hop):
    cu8 = noisy_tone_cu8(2e5, 640 * 40, seed=3)
    x = cu8_to_complex64(cu8)
    ref = stft_db(x, nfft, hop)
    for inp in (x, cu8):
        out = stft_db_torch(inp, nfft, hop, device="cpu")
        assert out.dtype == np.float32 and out.shape == ref.shape
        above_noise = ref > np.median(ref)
        assert np.abs(out - ref)[above_noise].max() < 0.05
