"""The measurements of bench/frame_geometry.py: contrast, the detector-input resize, box placement."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from sdr_assets.dsp.iq import complex64_to_cu8
from sdr_assets.dsp.stft import FrameGeometry
from sdr_assets.dsp.synth import Emission

BENCH = Path(__file__).resolve().parents[2] / "bench" / "frame_geometry.py"


@pytest.fixture(scope="module")
def fg():
    spec = importlib.util.spec_from_file_location("frame_geometry_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_contrast_is_inside_mean_minus_ring_median(fg):
    img = np.full((40, 40), 10.0, dtype=np.float32)
    img[20:22, 10:14] = 60.0  # the box: rows 20-21, columns 10-13
    box = (10.0, 20.0, 14.0, 22.0)
    assert fg.box_contrast(img, box, margin_px=2) == pytest.approx(50.0)
    assert fg.box_contrast(img, box, margin_px=2, inside_percentile=90) == pytest.approx(50.0)
    # a bright neighbour filling most of the ring raises its median, unless passed as another box
    img[15:27, 14:20] = 200.0
    img[15:27, 4:10] = 200.0
    assert fg.box_contrast(img, box, margin_px=2) < 0
    others = [(14.0, 15.0, 20.0, 27.0), (4.0, 15.0, 10.0, 27.0)]
    assert fg.box_contrast(img, box, others, margin_px=2) == pytest.approx(50.0)
    assert np.isnan(fg.box_contrast(img, (50.0, 50.0, 60.0, 60.0)))


def test_a_tone_is_visible_on_its_row_and_nowhere_else(fg):
    fs, fc, f_hz = 250e3, 433.92e6, 40e3
    geom = fg.CURRENT
    n = geom.frame_samples
    rng = np.random.default_rng(3)
    t = np.arange(n) / fs
    x = 0.05 * np.exp(2j * np.pi * f_hz * t) + 0.01 * (rng.standard_normal(n) + 1j * rng.standard_normal(n))
    cu8 = complex64_to_cu8(x.astype(np.complex64))
    inp, r = fg.detector_input(fg.render_frame(cu8, 0, geom, geom.window_array()))
    assert inp.shape == (320, 320) and r == 0.5
    row = FrameGeometry(0, fs, fc, geom.nfft, geom.hop, geom.frame_cols, geom.nfft).freq_hz_to_y(fc + f_hz) * r
    assert int(np.argmax(inp.astype(np.float32).mean(axis=1))) == int(row)  # the brightest row is the tone's
    tone_box = (0.0, row - 0.5, 320.0, row + 0.5)
    assert fg.box_contrast(inp, tone_box) >= 4 * fg.VISIBLE_LEVELS
    for dy in (-40.0, 25.0, 60.0):  # the same box on noise
        assert abs(fg.box_contrast(inp, (0.0, row - 0.5 + dy, 320.0, row + 0.5 + dy))) < fg.VISIBLE_LEVELS


def test_detector_input_halves_a_640_frame_by_2x2_means(fg):
    img = np.random.default_rng(1).integers(0, 256, (640, 640)).astype(np.uint8)
    out, r = fg.detector_input(img)
    means = img.reshape(320, 2, 320, 2).astype(np.float32).mean(axis=(1, 3))
    assert r == 0.5 and out.shape == (320, 320)
    assert np.abs(out.astype(np.float32) - means).max() <= 1.0
    tall, r = fg.detector_input(np.zeros((1024, 640), np.uint8))  # long side to 320, aspect kept
    assert tall.shape == (320, 200) and r == 320 / 1024


def test_emission_box_matches_the_label_mapping_without_overlap_and_centres_windows_with(fg):
    fs, fc = 250e3, 433.92e6
    e = Emission(3 * 409600 + 6400, 3 * 409600 + 12800, fc - 1000.0, fc + 1000.0, "ook", 10.0)
    x0, y0, x1, y1 = fg.emission_box(e, 3, fg.Geometry("hann", 640, 640), fs, fc)
    assert (x0, x1) == pytest.approx((10.0, 20.0))  # labels.py: column x starts at sample x * hop
    g = FrameGeometry(0, fs, fc, 640, 640, 640, 640)
    assert (y0, y1) == pytest.approx((g.freq_hz_to_y(fc + 1000.0), g.freq_hz_to_y(fc - 1000.0)))
    ov75 = fg.Geometry("hann", 640, 160)
    e = Emission(ov75.step + 1600, ov75.step + 3200, fc - 1000.0, fc + 1000.0, "ook", 10.0)
    x0, _, x1, _ = fg.emission_box(e, 1, ov75, fs, fc)
    assert (x0, x1) == pytest.approx((10.0 - 1.5, 20.0 - 1.5))  # (nfft - hop) / 2 samples earlier
