"""An ISM band as rtl_433 sees it: short-range devices (OOK/FSK) on an RTL-SDR, for
:class:`~sdr_assets.dsp.synth.BandScenario` with ``profile="ism"``.

A TRANSMISSION is what one device sends at once: OOK messages in PWM, PPM or Manchester bit
coding (short pulse 100-1000 us, bit period 0.5-4 ms) after an optional preamble and sync
pulse (sometimes a lone sync pulse 10-25 ms ahead), 20-150 ms long, repeated 1-10 times with
2-30 ms gaps; or 2-FSK packets (deviation 10-80 kHz, 1-20 kbit/s, preamble + sync word +
payload), repeated 1-4 times; rarely a plain carrier keyed on for 20-500 ms. Carriers sit
within +-100 kHz of the centre, pulses key on with a short frequency transient and hard
edges (key clicks: splatter across the band), the level is drawn as an in-band SNR (strong
ones clip at cu8 full scale, as most real recordings do).

LABELS are what rtl_433 reports: the transmission's pulses (an FSK packet or a carrier is one
pulse of the envelope) split into packages by rtl_433's end-of-package rule
(``dsp.packages.packages_from_pulses``: a gap over 100 ms, or over both 10 ms and 10 x the
longest pulse so far, ends a package); one :class:`Emission` per package, class ``ook``,
``fsk`` or ``cw``.

The BACKGROUND changes every ``EPOCH_SAMPLES`` (about 4 s at 250 kS/s), like another
recording: noise floor -32 to -9 dBFS, a DC offset (the RTL-SDR's centre spike), 0-3 steady
spurs, an IQ image (the mirror at -f, 20-35 dB down). Occasional wideband clicks (1-20 ms)
are distractors. Background and clicks carry no label. Every value is a function of the
seed and the absolute sample index only, so the stream does not depend on how it is split.
"""

import math

import numpy as np

from sdr_assets.dsp.packages import packages_from_pulses

ISM_KINDS = ("ook", "fsk", "cw")
EPOCH_SAMPLES = 1 << 20
EDGE_HZ = 100e3  # carriers within +-EDGE_HZ (and within 0.4 fs)
NOISE_DBFS_RANGE = (-32.0, -9.0)
MAX_AMPLITUDE = 2.0  # full scale = 1; stronger signals are capped here (then clip in cu8)
CLICKS_PER_S = 0.2  # wideband clicks (distractors), on average
PKG_MIN_GAP_S, PKG_MAX_GAP_S, PKG_GAP_RATIO = 0.010, 0.1, 10.0
_TWO_PI = 2.0 * math.pi


def packages_s(starts_s: np.ndarray, ends_s: np.ndarray) -> list[tuple[float, float]]:
    """rtl_433's end-of-package rule on pulses in seconds: [(start_s, end_s), ...]."""
    return packages_from_pulses(
        np.asarray(starts_s, float), np.asarray(ends_s, float), PKG_MIN_GAP_S, PKG_MAX_GAP_S, PKG_GAP_RATIO
    )


class Transmission:
    """One device's transmission: a precomputed complex64 waveform from ``start`` (absolute
    sample) and its packages (absolute sample spans) for the labels."""

    def __init__(
        self,
        start: int,
        wave: np.ndarray,
        pkgs: list[tuple[int, int]],
        f_lo_hz: float,
        f_hi_hz: float,
        label: str,
        snr_db: float,
    ):
        self.start, self.wave, self.end = start, wave, start + wave.size
        self.pkgs, self.f_lo_hz, self.f_hi_hz = pkgs, f_lo_hz, f_hi_hz
        self.label, self.snr_db = label, snr_db

    def add_into(self, out: np.ndarray, s0: int) -> None:
        a, b = max(self.start, s0), min(self.end, s0 + out.size)
        if a < b:
            out[a - s0 : b - s0] += self.wave[a - self.start : b - self.start]


def _ook_pulses(g: np.random.Generator) -> tuple[list[tuple[float, float]], float]:
    """Pulse list (start_s, end_s) of an OOK transmission and its short pulse (s)."""
    short = math.exp(g.uniform(math.log(100e-6), math.log(1000e-6)))
    coding = ("pwm", "ppm", "manchester")[int(g.integers(3))]
    period = min(max(g.uniform(2.0, 4.0) * short, 0.5e-3), 4e-3)
    msg_s = g.uniform(0.020, 0.150)
    n_bits = max(8, int(msg_s / period))
    repeats = int(g.integers(1, 11))
    gap_s = g.uniform(0.002, 0.030)
    preamble = int(g.integers(0, 13)) if g.random() < 0.5 else 0
    sync_s = short * g.uniform(2.0, 10.0) if g.random() < 0.5 else 0.0
    sync_gap_s = short * g.uniform(4.0, 20.0)
    lone = g.uniform(0.010, 0.025) if g.random() < 0.15 else 0.0
    out: list[tuple[float, float]] = []
    t = 0.0
    if lone:
        out.append((0.0, short))
        t = short + lone
    for _ in range(repeats):
        for _ in range(preamble):
            out.append((t, t + period / 2))
            t += period
        if sync_s:
            out.append((t, t + sync_s))
            t += sync_s + sync_gap_s
        bits = g.integers(0, 2, n_bits)
        for bit in bits:
            if coding == "pwm":
                on = period - short if bit else short
                out.append((t, t + on))
                t += period
            elif coding == "ppm":
                out.append((t, t + short))
                t += short + (2 * short if bit else short) * g.uniform(1.9, 2.1) / 2
            else:  # manchester: half a bit on, half off (order by the bit); join adjacent ons
                a = t + (0 if bit else short)
                if out and abs(out[-1][1] - a) < 1e-9:
                    out[-1] = (out[-1][0], a + short)
                else:
                    out.append((a, a + short))
                t += 2 * short
        t = out[-1][1] + gap_s
    return out, short


def _fsk_pulses(g: np.random.Generator) -> tuple[list[tuple[float, float]], float, float, np.ndarray]:
    """(packet spans, bit rate, deviation Hz, bits of each packet concatenated) of FSK."""
    rate = math.exp(g.uniform(math.log(1e3), math.log(20e3)))
    dev = g.uniform(10e3, 80e3)
    n_bits = int(g.integers(16, 65)) + 16 + int(g.integers(40, 201))
    n_bits = min(n_bits, max(24, int(0.15 * rate)))  # a packet at most ~150 ms
    repeats = int(g.integers(1, 5))
    gap_s = g.uniform(0.002, 0.030)
    dur = n_bits / rate
    spans = [(k * (dur + gap_s), k * (dur + gap_s) + dur) for k in range(repeats)]
    pre = np.arange(n_bits) % 2
    bits = np.concatenate(
        [np.where(np.arange(n_bits) < n_bits // 3, pre, g.integers(0, 2, n_bits)) for _ in range(repeats)]
    )
    return spans, rate, dev, bits


def _envelope(pulses: list[tuple[float, float]], fs: float, n: int, rise_s: float) -> np.ndarray:
    env = np.zeros(n, np.float32)
    for a, b in pulses:
        env[int(round(a * fs)) : int(round(b * fs))] = 1.0
    k = int(round(rise_s * fs))
    if k > 1:
        env = np.convolve(env, np.ones(k, np.float32) / k, mode="same").astype(np.float32)
    return env


def transmission(
    g: np.random.Generator,
    start: int,
    fs: float,
    center_freq_hz: float,
    noise_power: float,
    kinds: tuple[str, ...],
    snr_db_range: tuple[float, float],
) -> Transmission:
    """A random device transmission starting at absolute sample ``start``."""
    kind = kinds[int(g.integers(len(kinds)))] if g.random() > 0.08 or "cw" not in kinds else "cw"
    if kind == "cw" and len(kinds) > 1 and g.random() < 0.5:
        kind = [k for k in kinds if k != "cw"][int(g.integers(len(kinds) - 1))]
    edge = min(EDGE_HZ, 0.4 * fs)
    if kind == "fsk":
        spans, rate, dev, bits = _fsk_pulses(g)
        dev = min(dev, 0.8 * edge)
        half = dev + rate / 2
    elif kind == "ook":
        spans, short = _ook_pulses(g)
        half = min(max(1.0 / short, 2e3), 10e3)
    else:
        dur = g.uniform(0.020, 0.500)
        spans, half = [(0.0, dur)], 2e3
    n = int(round(spans[-1][1] * fs)) + 1
    fc = g.uniform(-edge + half, edge - half)
    drift_hz = g.normal(0, 1500)  # over the whole transmission (crystal warming)
    rel = np.arange(n, dtype=np.float64) / n
    freq = fc + drift_hz * rel
    env = _envelope(spans, fs, n, g.choice([0.0, 0.0, 5e-6, 20e-6]))
    if kind == "fsk":
        per = bits.size // len(spans)  # bits of one packet; the bit clock restarts per packet
        t_s = np.arange(n) / fs
        pk_start = np.array([a for a, _ in spans])
        k = np.clip(np.searchsorted(pk_start, t_s, side="right") - 1, 0, len(spans) - 1)
        sym = k * per + np.clip(((t_s - pk_start[k]) * rate).astype(np.int64), 0, per - 1)
        freq = freq + np.where(bits[sym] > 0, dev, -dev)
    elif kind == "ook":  # key-on transient: the carrier settles from an offset at each pulse start
        df0, tau = g.uniform(-15e3, 15e3), short * g.uniform(0.05, 0.3)
        starts = np.zeros(n, bool)
        for a, _ in spans:
            starts[min(n - 1, int(round(a * fs)))] = True
        last = np.maximum.accumulate(np.where(starts, np.arange(n), 0))
        freq = freq + df0 * np.exp(-(np.arange(n) - last) / (tau * fs))
    phase = np.cumsum(freq / fs) + g.random()
    snr_db = float(g.uniform(*snr_db_range))
    amp = min(math.sqrt(10 ** (snr_db / 10) * noise_power * 2 * half / fs), MAX_AMPLITUDE)
    ang = ((phase - np.floor(phase)) * _TWO_PI).astype(np.float32)
    wave = (np.cos(ang) + 1j * np.sin(ang)).astype(np.complex64) * (env * np.float32(amp))
    f_lo = center_freq_hz + fc - half - abs(drift_hz) / 2
    f_hi = center_freq_hz + fc + half + abs(drift_hz) / 2
    pk = packages_s(np.array([a for a, _ in spans]), np.array([b for _, b in spans]))
    pkgs = [(start + int(round(a * fs)), start + int(round(b * fs))) for a, b in pk]
    return Transmission(start, wave.astype(np.complex64), pkgs, f_lo, f_hi, kind, snr_db)


class IsmBackground:
    """Per-epoch noise level, DC offset, spurs, IQ image, and wideband clicks (no labels)."""

    def __init__(self, seed: int, fs: float, base_noise_power: float):
        self.seed, self.fs, self.base_noise_power = seed, fs, base_noise_power
        self._cache: dict[int, dict] = {}

    def epoch(self, k: int) -> dict:
        e = self._cache.get(k)
        if e is None:
            g = np.random.default_rng([self.seed, 3, k])
            noise_dbfs = g.uniform(*NOISE_DBFS_RANGE)
            power = 10 ** (noise_dbfs / 10)
            bin_noise = power / 640  # noise in one bin of a 640-point FFT
            n_spurs = int(g.integers(0, 4))
            spurs = [
                (g.uniform(-0.45, 0.45), math.sqrt(bin_noise * 10 ** (g.uniform(5, 30) / 10)), g.random())
                for _ in range(n_spurs)
            ]
            dc = 10 ** (g.uniform(-45, -12) / 20) * np.exp(2j * math.pi * g.random())
            image = 10 ** (g.uniform(-35, -20) / 20) * np.exp(2j * math.pi * g.random())
            clicks = []
            n_clicks = int(g.poisson(CLICKS_PER_S * EPOCH_SAMPLES / self.fs))
            for _ in range(n_clicks):
                c0 = int(g.integers(EPOCH_SAMPLES))
                clicks.append(
                    (
                        k * EPOCH_SAMPLES + c0,
                        int(g.uniform(1e-3, 20e-3) * self.fs),
                        math.sqrt(power * 10 ** (g.uniform(3, 15) / 10)),
                        int(g.integers(1 << 30)),
                    )
                )
            e = self._cache[k] = dict(
                power=power,
                gain=math.sqrt(power / self.base_noise_power),
                spurs=spurs,
                dc=complex(dc),
                image=complex(image),
                clicks=clicks,
            )
            if len(self._cache) > 4:
                self._cache.pop(min(self._cache))
        return e

    def noise_power_at(self, sample: int) -> float:
        return self.epoch(sample // EPOCH_SAMPLES)["power"]

    def noise_gain(self, seg_start: int) -> float:
        return self.epoch(seg_start // EPOCH_SAMPLES)["gain"]

    def add(self, y: np.ndarray, s0: int) -> None:
        """Spurs, DC, clicks and the IQ image over absolute samples [s0, s0 + len(y))."""
        s1 = s0 + y.size
        for k in range(s0 // EPOCH_SAMPLES, (s1 - 1) // EPOCH_SAMPLES + 1 if y.size else 0):
            e = self.epoch(k)
            a, b = max(s0, k * EPOCH_SAMPLES), min(s1, (k + 1) * EPOCH_SAMPLES)
            seg = y[a - s0 : b - s0]
            idx = np.arange(a, b, dtype=np.float64)
            for f, amp, ph in e["spurs"]:
                c = idx * f + ph
                ang = ((c - np.floor(c)) * _TWO_PI).astype(np.float32)
                seg += np.float32(amp) * (np.cos(ang) + 1j * np.sin(ang)).astype(np.complex64)
            clicks = e["clicks"] + (self.epoch(k - 1)["clicks"] if k else [])  # one may reach over
            for c0, n, amp, cseed in clicks:
                u, v = max(a, c0), min(b, c0 + n)
                if u < v:
                    z = np.random.default_rng([self.seed, 4, cseed]).standard_normal(2 * n).astype(np.float32)
                    seg[u - a : v - a] += np.float32(amp / math.sqrt(2)) * z.view(np.complex64)[u - c0 : v - c0]
            seg += np.complex64(e["dc"])
            seg += np.complex64(e["image"]) * np.conj(seg)
