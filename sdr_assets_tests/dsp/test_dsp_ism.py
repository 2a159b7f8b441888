"""The synthetic ISM band (dsp/ism.py, BandScenario profile="ism"): labels, package rule, seed."""

import numpy as np
import pytest

from sdr_assets.capture.synthetic import parse_synthetic_query
from sdr_assets.dsp import ism
from sdr_assets.dsp.iq import cu8_to_complex64
from sdr_assets.dsp.synth import BandScenario
from sdr_assets.errors import ConfigError

FS = 250_000.0
FC = 433.92e6


def _transmissions(n: int, kinds=ism.ISM_KINDS, snr=(20.0, 20.0)) -> list[ism.Transmission]:
    return [ism.transmission(np.random.default_rng([7, k]), 0, FS, FC, 1e-3, kinds, snr) for k in range(n)]


def test_package_rule_is_rtl433s():
    ms = 1e-3
    # 1 ms pulses 5 ms apart: gaps under 10 ms never end a package
    assert len(ism.packages_s(np.arange(5) * 6 * ms, np.arange(5) * 6 * ms + ms)) == 1
    # 15 ms gaps after 1 ms pulses: over 10 ms and over 10 x 1 ms -> one package per pulse
    starts = np.arange(4) * 16 * ms
    assert ism.packages_s(starts, starts + ms) == [(s, s + ms) for s in starts]
    # the same gaps after a 2 ms pulse: under 10 x the longest pulse -> one package
    assert len(ism.packages_s(starts, starts + 2 * ms)) == 1
    # a gap over 100 ms always ends the package, whatever the pulses
    assert len(ism.packages_s(np.array([0.0, 0.2]), np.array([0.05, 0.25]))) == 2


def test_labels_cover_every_pulse_and_split_only_at_long_gaps():
    for t in _transmissions(40):
        on = np.abs(t.wave) > 0.5 * np.abs(t.wave).max()  # rise times smear edges by a few samples
        inside = np.zeros(on.size, bool)
        for a, b in t.pkgs:
            assert b > a
            inside[a - t.start : b - t.start] = True
            assert on[a - t.start : a - t.start + 64].any(), "a package starts on a pulse"
        assert on[~inside].sum() <= 2 * len(t.pkgs), "every pulse lies in a package (up to rounding)"
        for (_, b), (a, _) in zip(t.pkgs, t.pkgs[1:]):
            assert a - b > ism.PKG_MIN_GAP_S * FS, "packages are split only by gaps over 10 ms"
            assert not on[b - t.start + 2 : a - t.start - 2].any()


def test_labels_hold_the_energy_in_frequency():
    for t in _transmissions(40):
        w = t.wave
        spec = np.fft.fftshift(np.abs(np.fft.fft(w)) ** 2)
        f_hz = FC + np.fft.fftshift(np.fft.fftfreq(w.size, 1 / FS))
        in_band = spec[(f_hz >= t.f_lo_hz) & (f_hz <= t.f_hi_hz)].sum() / spec.sum()
        assert in_band > 0.5, (t.label, in_band)
        assert FC - 0.5 * FS < t.f_lo_hz < t.f_hi_hz < FC + 0.5 * FS
        assert t.label in ism.ISM_KINDS


def test_scenario_labels_land_where_the_energy_is():
    sc = BandScenario(3, FS, FC, profile="ism", kinds=("ook",), emissions_per_s=0.5, snr_db_range=(30, 30))
    cu8, emissions = sc.render(int(20 * FS))
    x = cu8_to_complex64(cu8)
    x = x - x.mean()
    assert emissions and all(e.label == "ook" for e in emissions)
    for e in emissions:
        if e.end_sample > x.size or e.start_sample < int(0.02 * FS):
            continue
        mid_hz = (e.freq_lower_hz + e.freq_upper_hz) / 2 - FC
        seg = x[e.start_sample : e.start_sample + 256] * np.exp(-2j * np.pi * mid_hz / FS * np.arange(256))
        before = x[e.start_sample - 4096 : e.start_sample - 4096 + 256] * np.exp(
            -2j * np.pi * mid_hz / FS * np.arange(256)
        )
        # the first ~1 ms of a package, mixed to its band centre, carries far more energy than noise
        assert np.abs(np.fft.fft(seg)).max() > 3 * np.median(np.abs(np.fft.fft(before)))


def test_emissions_are_reported_in_the_call_their_start_falls_in():
    sc = BandScenario(5, FS, FC, profile="ism")
    s0 = 0
    for n in (100_000, 333_333, 1_000_000, 50_000, 2_000_000):
        _, ems = sc.render(n)
        assert all(s0 <= e.start_sample < s0 + n for e in ems)
        s0 += n


def test_deterministic_by_seed_whatever_the_split():
    a = BandScenario(11, FS, FC, profile="ism")
    b = BandScenario(11, FS, FC, profile="ism")
    n = int(6 * FS)  # crosses an epoch of the background
    xa, ea = a.render(n)
    parts = [b.render(k) for k in (1, 70_000, 400_001, n - 470_002)]
    assert np.array_equal(xa, np.concatenate([p[0] for p in parts]))
    assert ea == [e for p in parts for e in p[1]]
    xc, _ = BandScenario(12, FS, FC, profile="ism").render(n)
    assert not np.array_equal(xa, xc)


def test_background_changes_per_epoch_with_a_dc_spike():
    sc = BandScenario(2, FS, FC, profile="ism", emissions_per_s=0.0)
    x = cu8_to_complex64(sc.render(3 * ism.EPOCH_SAMPLES)[0])
    floors = [float(np.median(np.abs(x[k * ism.EPOCH_SAMPLES : (k + 1) * ism.EPOCH_SAMPLES]) ** 2)) for k in range(3)]
    assert max(floors) / min(floors) > 1.2, floors  # another floor each epoch (like another recording)
    for k in range(3):
        e = sc._ism.epoch(k)
        got = x[k * ism.EPOCH_SAMPLES : (k + 1) * ism.EPOCH_SAMPLES].mean()
        assert abs(got - e["dc"]) < 0.02 + 0.5 * abs(e["dc"])


def test_profile_through_the_synthetic_query():
    assert parse_synthetic_query("profile=ism&seed=2") == {"profile": "ism", "seed": 2}
    with pytest.raises(ConfigError, match="profile"):
        parse_synthetic_query("profile=lte")
    with pytest.raises(ValueError, match="ism"):
        BandScenario(1, FS, FC, profile="ism", kinds=("chirp",))
