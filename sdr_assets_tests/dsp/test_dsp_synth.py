"""BandScenario: seeded, split-invariant, emissions inside the band and where they say."""

import numpy as np
import pytest

from sdr_assets.dsp.iq import cu8_to_complex64
from sdr_assets.dsp.stft import stft_db
from sdr_assets.dsp.synth import KINDS, MAX_SAMPLE_RATE_HZ, MIN_SAMPLE_RATE_HZ, PROFILES, BandScenario, Emission

FS = 2.4e6
FC = 433.92e6


def render_split(scenario: BandScenario, sizes) -> tuple[np.ndarray, list[Emission]]:
    parts, emissions = [], []
    for n in sizes:
        cu8, em = scenario.render(n)
        assert cu8.dtype == np.uint8 and cu8.size == 2 * n
        parts.append(cu8)
        emissions += em
    return np.concatenate(parts), emissions


def test_same_seed_same_bytes_whatever_the_split():
    n = 1_500_000
    whole, em_whole = BandScenario(7, FS, FC, emissions_per_s=30).render(n)
    rng = np.random.default_rng(0)
    sizes = []
    while sum(sizes) < n:
        sizes.append(min(int(rng.integers(1, 150_000)), n - sum(sizes)))
    sizes[:3] = [1, 1023, 1025]  # odd block-straddling sizes up front
    sizes[-1] = n - sum(sizes[:-1])
    split, em_split = render_split(BandScenario(7, FS, FC, emissions_per_s=30), sizes)
    assert np.array_equal(whole, split)
    assert em_whole == em_split and len(em_whole) > 10


def test_different_seed_different_stream():
    a, _ = BandScenario(1, FS, FC).render(10_000)
    b, _ = BandScenario(2, FS, FC).render(10_000)
    assert not np.array_equal(a, b)


def test_emissions_reported_once_in_the_call_where_they_start():
    sc = BandScenario(3, FS, FC, emissions_per_s=50)
    seen = []
    for _ in range(10):
        s0 = sc.sample_index
        _, em = sc.render(100_000)
        assert all(s0 <= e.start_sample < s0 + 100_000 for e in em)
        seen += em
    assert len(seen) == len({(e.start_sample, e.freq_lower_hz) for e in seen}) > 20


def test_emissions_inside_band_and_time_range():
    sc = BandScenario(4, FS, FC, emissions_per_s=60)
    _, em = sc.render(int(2 * FS))
    assert {e.label for e in em} == set(KINDS)
    for e in em:
        assert FC - 0.4 * FS - 1 <= e.freq_lower_hz < e.freq_upper_hz <= FC + 0.4 * FS + 1
        assert 0.005 * FS - 1 <= e.end_sample - e.start_sample <= 0.3 * FS + 1
        assert 6.0 <= e.snr_db <= 30.0


@pytest.mark.parametrize("kind", KINDS)
def test_energy_is_where_the_emission_says(kind):
    nfft = 256
    sc = BandScenario(
        5, FS, FC, emissions_per_s=8, kinds=(kind,), snr_db_range=(25.0, 25.0), duration_s_range=(0.02, 0.05)
    )
    cu8, em = sc.render(int(0.5 * FS))

    def alone(e):
        return not any(o is not e and o.start_sample < e.end_sample and o.end_sample > e.start_sample for o in em)

    e = next(e for e in em if e.end_sample < int(0.5 * FS) and alone(e))
    db = stft_db(cu8_to_complex64(cu8), nfft, nfft)
    bins = (np.arange(nfft) - nfft // 2) * FS / nfft + FC
    inside = (bins >= e.freq_lower_hz - FS / nfft) & (bins <= e.freq_upper_hz + FS / nfft)
    cols = slice(e.start_sample // nfft + 1, e.end_sample // nfft - 1)
    quiet = slice(0, max(1, em[0].start_sample // nfft - 1))
    # the band lights up (a chirp: one bin at a time; OOK: half the time) ...
    peak_in = np.percentile(db[cols][:, inside].max(axis=1), 75)
    peak_out = np.median(db[cols][:, ~inside].max(axis=1))
    assert peak_in > peak_out + 6
    assert abs(np.median(db[cols][:, ~inside]) - np.median(db[quiet])) < 1.5  # ... not the rest


def test_noise_level_follows_noise_dbfs():
    cu8, _ = BandScenario(6, FS, FC, noise_dbfs=-30.0, emissions_per_s=0).render(200_000)
    x = cu8_to_complex64(cu8)
    power_db = 10 * np.log10(np.mean(np.abs(x - x.mean()) ** 2))
    assert power_db == pytest.approx(-30.0, abs=0.5)


def test_bad_settings_are_value_errors():
    with pytest.raises(ValueError, match="kinds"):
        BandScenario(0, FS, FC, kinds=("morse",))
    with pytest.raises(ValueError, match="sample_rate_hz"):
        BandScenario(0, 0.0, FC)


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("rate_hz", [1.0, 100.0, 20_000.0, -1.0, float("nan"), float("inf"), 4.3e9])
def test_rates_the_band_cannot_hold_are_refused_up_front(profile, rate_hz):
    """Rate 1 and 100 once built fine and then failed in render() with numpy's
    'high - low < 0' (an OOK unit of 4 samples is wider than the band)."""
    with pytest.raises(ValueError, match=f"sample_rate_hz .* cannot be synthesised: profile {profile} needs"):
        BandScenario(0, rate_hz, FC, profile=profile)


@pytest.mark.parametrize("profile", PROFILES)
def test_the_slowest_accepted_rate_renders_every_kind(profile):
    fs = MIN_SAMPLE_RATE_HZ[profile]
    for seed in range(4):  # dense emissions: every kind is drawn many times
        sc = BandScenario(seed, fs, FC, profile=profile, emissions_per_s=30)
        emissions = []
        for _ in range(5):
            cu8, em = sc.render(int(fs))
            emissions += em
        assert cu8.dtype == np.uint8 and len(emissions) > 10
        assert all(FC - 0.5 * fs <= e.freq_lower_hz < e.freq_upper_hz <= FC + 0.5 * fs for e in emissions)
    assert MAX_SAMPLE_RATE_HZ >= 3.2e6  # every RTL-SDR rate stays possible
