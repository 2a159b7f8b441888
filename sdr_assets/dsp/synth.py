"""A seeded synthetic band: noise plus random emissions, rendered as cu8, with ground truth.

:class:`BandScenario` stands in for a live radio. Successive :meth:`BandScenario.render`
calls continue one stream, and the stream is a pure function of the seed: the bytes do not
depend on how it is split into calls. That holds because every sample is computed from its
absolute index only:

- noise is read from a precomputed complex Gaussian bank (float32), at an offset drawn per
  fixed segment of ``NOISE_SEGMENT`` samples from ``default_rng([seed, 2, segment])``;
- emissions come, in start order, from one sequential ``default_rng([seed, 1])``;
- each emission is synthesised in blocks of ``BLOCK`` samples aligned on its own start, so
  every value is computed at the same place by the same vector operation whatever the split.

Frequencies inside are normalised (cycles per sample); ground truth is reported in absolute
Hz. SNR is measured in the emission's own reported band: signal power (while on) divided
by the noise power that falls in ``freq_upper_hz - freq_lower_hz``.

``profile="ism"`` makes the band an ISM band as rtl_433 sees it (``dsp.ism``): device
transmissions (OOK/FSK, repeated messages) labelled per rtl_433 package, over a changing
RTL-SDR background (noise floor, DC spike, spurs, IQ image, clicks); ``kinds`` then selects
among ``ook``, ``fsk``, ``cw``. An emission is reported by the render call its start falls in.
"""

import math
from dataclasses import dataclass

import numpy as np

from sdr_assets.dsp import ism
from sdr_assets.dsp.iq import CU8_OFFSET, CU8_SCALE

KINDS = ("cw", "ook", "fsk", "chirp", "wideband")
PROFILES = ("mixed", "ism")
_DEFAULTS = {
    "mixed": {"emissions_per_s": 4.0, "snr_db_range": (6.0, 30.0)},
    "ism": {"emissions_per_s": 1.5, "snr_db_range": (3.0, 40.0)},
}
NOISE_BANK = 1 << 20
NOISE_SEGMENT = 1 << 16
BLOCK = 1024
BAND_EDGE = 0.4  # every emission stays inside +-0.4 * fs
WIDEBAND_FRACTIONS = (0.02, 0.05, 0.1)
_WB_BANK = 1 << 17
_TWO_PI = 2.0 * math.pi
# The slowest rate at which every emission of a profile fits inside +-BAND_EDGE * fs: an OOK
# unit of 200 us must span >= 5 samples (mixed: 25 kS/s); an ISM FSK carrier with up to
# 80% of +-0.4 fs deviation plus 10 kHz half bit rate needs 0.4 fs >= 50 kHz (125 kS/s).
# Both are rounded up for margin. The top is beyond any SDR this product reads (an
# RTL-SDR does 3.2 MS/s; the ism profile renders each transmission whole, in memory).
MIN_SAMPLE_RATE_HZ = {"mixed": 30_000.0, "ism": 150_000.0}
MAX_SAMPLE_RATE_HZ = 20e6


def check_sample_rate_hz(sample_rate_hz: float, profile: str = "mixed") -> float:
    """``sample_rate_hz`` as a float if a band of ``profile`` can be synthesised at it, else
    ValueError naming the accepted range."""
    fs = float(sample_rate_hz)
    lo = MIN_SAMPLE_RATE_HZ[profile]
    if not lo <= fs <= MAX_SAMPLE_RATE_HZ:  # also refuses nan
        raise ValueError(
            f"sample_rate_hz {sample_rate_hz!r} cannot be synthesised: profile "
            f"{profile} needs {lo:.0f} to {MAX_SAMPLE_RATE_HZ:.0f} Hz (its "
            "emissions must fit in the band), e.g. 250000 or 2400000"
        )
    return fs


@dataclass(frozen=True)
class Emission:
    """Ground truth of one emission: absolute sample span [start, end) and absolute Hz."""

    start_sample: int
    end_sample: int
    freq_lower_hz: float
    freq_upper_hz: float
    label: str
    snr_db: float


def _phasor(cycles: np.ndarray) -> np.ndarray:
    """exp(2j*pi*cycles) as complex64: cycles (float64) reduced mod 1, then float32 trig."""
    angle = ((cycles - np.floor(cycles)) * _TWO_PI).astype(np.float32)
    out = np.empty(angle.shape, dtype=np.complex64)
    out.real = np.cos(angle)
    out.imag = np.sin(angle)
    return out


def _wrap_read(bank: np.ndarray, start: int, n: int) -> np.ndarray:
    """n samples of a periodic bank from index start (copies, wrapping as often as needed)."""
    out = np.empty(n, dtype=bank.dtype)
    pos, i = 0, start % bank.size
    while pos < n:
        m = min(n - pos, bank.size - i)
        out[pos : pos + m] = bank[i : i + m]
        pos, i = pos + m, 0
    return out


class _Plan:
    """One emission: its truth and how to synthesise blocks of it (indices from its start)."""

    def __init__(
        self, start: int, length: int, kind: str, f_lo: float, f_hi: float, amp: float, snr_db: float, params: dict
    ):
        self.start, self.length, self.kind, self.snr_db = start, length, kind, snr_db
        self.f_lo, self.f_hi, self.amp, self.p = f_lo, f_hi, np.float32(amp), params
        self.end = start + length

    def _tone(self, f: float, b0: int, b1: int) -> np.ndarray:
        base = self.p.get(("base", f))
        if base is None:
            base = self.p[("base", f)] = _phasor(f * np.arange(BLOCK, dtype=np.float64))
        steps = _phasor(f * BLOCK * np.arange(b0, b1, dtype=np.float64))
        return (steps[:, None] * base[None, :]).reshape(-1)

    def blocks(self, b0: int, b1: int) -> np.ndarray:
        """Samples for relative indices [b0 * BLOCK, b1 * BLOCK), complex64, amplitude applied."""
        p, k0, n = self.p, b0 * BLOCK, (b1 - b0) * BLOCK
        if self.kind == "cw":
            y = self._tone(p["f"], b0, b1)
        elif self.kind == "ook":
            y = self._tone(p["f"], b0, b1)
            u = p["unit"]
            u0, u1 = k0 // u, (k0 + n - 1) // u + 1
            env = np.repeat(p["pattern"][u0:u1], u)[k0 - u0 * u : k0 - u0 * u + n]
            y *= env
        elif self.kind == "fsk":
            s = p["sps"]
            s0, s1 = k0 // s, (k0 + n - 1) // s + 1
            bits = p["bits"][s0:s1]
            rows = np.where(bits[:, None], p["base_hi"][None, :], p["base_lo"][None, :])
            rows *= p["sym_phasor"][s0:s1, None]
            y = rows.reshape(-1)[k0 - s0 * s : k0 - s0 * s + n]
        elif self.kind == "chirp":
            k = np.arange(k0, k0 + n, dtype=np.float64)
            y = _phasor(k * (p["f0"] + 0.5 * p["rate"] * k))
        else:  # wideband: a band-limited noise bank read from an offset, shifted to f
            y = _wrap_read(p["bank"], p["offset"] + k0, n)
            y *= self._tone(p["f"], b0, b1)
        y *= self.amp
        return y

    def add_into(self, out: np.ndarray, s0: int) -> None:
        """Add this emission's samples over [s0, s0 + len(out)) (absolute) into out."""
        a, b = max(self.start, s0), min(self.end, s0 + out.size)
        if a >= b:
            return
        r0, r1 = a - self.start, b - self.start
        b0, b1 = r0 // BLOCK, (r1 - 1) // BLOCK + 1
        y = self.blocks(b0, b1)
        out[a - s0 : b - s0] += y[r0 - b0 * BLOCK : r1 - b0 * BLOCK]


class BandScenario:
    """A reproducible band: ``render(n)`` -> (cu8 uint8 of 2n bytes, emissions starting in it)."""

    def __init__(
        self,
        seed: int,
        sample_rate_hz: float,
        center_freq_hz: float,
        *,
        noise_dbfs: float = -35.0,
        emissions_per_s: float | None = None,
        snr_db_range: tuple[float, float] | None = None,
        kinds: tuple[str, ...] = KINDS,
        duration_s_range: tuple[float, float] = (0.005, 0.3),
        profile: str = "mixed",
    ):
        """emissions_per_s and snr_db_range default by profile (mixed: 4.0, (6, 30);
        ism: 1.5 transmissions/s, (3, 40) dB in band)."""
        if profile not in PROFILES:
            raise ValueError(f"profile {profile!r}: use one of {PROFILES}")
        bad = [k for k in kinds if k not in KINDS]
        if bad or not kinds:
            raise ValueError(f"kinds {list(kinds)!r}: each must be one of {KINDS}")
        if profile == "ism":
            kinds = tuple(k for k in kinds if k in ism.ISM_KINDS)
            if not kinds:
                raise ValueError(f"profile ism: kinds must include one of {ism.ISM_KINDS}")
        emissions_per_s = _DEFAULTS[profile]["emissions_per_s"] if emissions_per_s is None else emissions_per_s
        snr_db_range = _DEFAULTS[profile]["snr_db_range"] if snr_db_range is None else tuple(snr_db_range)
        check_sample_rate_hz(sample_rate_hz, profile)
        if not emissions_per_s >= 0:
            raise ValueError(f"emissions_per_s must be >= 0, got {emissions_per_s}")
        if not 0 < duration_s_range[0] <= duration_s_range[1]:
            raise ValueError(f"duration_s_range must be 0 < lo <= hi, got {duration_s_range}")
        self.seed, self.sample_rate_hz = int(seed), float(sample_rate_hz)
        self.center_freq_hz, self.noise_dbfs = float(center_freq_hz), float(noise_dbfs)
        self.emissions_per_s, self.kinds = float(emissions_per_s), tuple(kinds)
        self.snr_db_range, self.duration_s_range = snr_db_range, duration_s_range
        self.noise_power = 10.0 ** (noise_dbfs / 10.0)  # mean |x|^2, full scale |x| = 1
        sigma = np.float32(math.sqrt(self.noise_power / 2.0))
        g = np.random.default_rng([self.seed, 0])
        bank = g.standard_normal(2 * (NOISE_BANK + NOISE_SEGMENT), dtype=np.float32)
        bank *= sigma
        self._noise = bank.view(np.complex64)
        self._wb_banks = {frac: self._wideband_bank(g, frac) for frac in WIDEBAND_FRACTIONS}
        self._rng = np.random.default_rng([self.seed, 1])
        self.profile = profile
        self._ism = ism.IsmBackground(self.seed, self.sample_rate_hz, self.noise_power) if profile == "ism" else None
        self._next_sample = 0
        self._plans: list = []
        self._pending: list[Emission] = []  # drawn, not yet reported (start after the last render)
        self._next_start = self._draw_gap(0)

    @property
    def sample_index(self) -> int:
        """Absolute index of the next sample render() will produce."""
        return self._next_sample

    @staticmethod
    def _wideband_bank(g: np.random.Generator, frac: float) -> np.ndarray:
        """Unit-power complex noise, brick-wall limited to |f| < frac / 2 (periodic)."""
        spec = np.fft.fft(g.standard_normal(_WB_BANK) + 1j * g.standard_normal(_WB_BANK))
        spec[np.abs(np.fft.fftfreq(_WB_BANK)) >= frac / 2] = 0
        y = np.fft.ifft(spec)
        return (y / np.sqrt(np.mean(np.abs(y) ** 2))).astype(np.complex64)

    def _draw_gap(self, after: int) -> float:
        if self.emissions_per_s == 0:
            return math.inf
        return after + self._rng.exponential(self.sample_rate_hz / self.emissions_per_s)

    def _new_plan(self, start: int) -> _Plan:
        g, fs = self._rng, self.sample_rate_hz
        kind = self.kinds[int(g.integers(len(self.kinds)))]
        lo, hi = self.duration_s_range
        length = max(BLOCK, int(math.exp(g.uniform(math.log(lo), math.log(hi))) * fs))
        min_hw = max(2.0 / length, 1e-3)  # a tone's reported half width (cycles/sample)
        p: dict = {}
        if kind == "cw":
            half = min_hw
        elif kind == "ook":
            p["unit"] = max(4, int(g.uniform(200e-6, 1000e-6) * fs))
            n_bits = (length + BLOCK) // (3 * p["unit"]) + 2
            ones = g.integers(0, 2, n_bits).astype(bool)
            bit_units = np.where(ones[:, None], [1, 1, 0], [1, 0, 0]).astype(np.float32)
            p["pattern"] = bit_units.reshape(-1)
            half = max(2.0 / p["unit"], min_hw)
        elif kind == "fsk":
            dev = g.uniform(0.004, 0.02)
            p["sps"] = max(4, int(fs / g.uniform(2e3, 2e4)))
            half = dev + max(1.0 / p["sps"], min_hw)
        elif kind == "chirp":
            span = g.uniform(0.02, 0.3)
            half = span / 2 + min_hw
        else:
            frac = WIDEBAND_FRACTIONS[int(g.integers(len(WIDEBAND_FRACTIONS)))]
            p["bank"] = self._wb_banks[frac]
            p["offset"] = int(g.integers(_WB_BANK))
            half = frac / 2
        centre = g.uniform(-BAND_EDGE + half, BAND_EDGE - half)
        snr_db = float(g.uniform(*self.snr_db_range))
        power = 10 ** (snr_db / 10) * self.noise_power * (2 * half)
        if kind in ("cw", "ook", "wideband"):
            p["f"] = centre
        elif kind == "fsk":
            self._fsk(p, g, centre, dev, length)
        else:
            sign = 1.0 if g.integers(2) else -1.0
            p["f0"], p["rate"] = centre - sign * span / 2, sign * span / length
        return _Plan(start, length, kind, centre - half, centre + half, math.sqrt(power), snr_db, p)

    @staticmethod
    def _fsk(p: dict, g: np.random.Generator, centre: float, dev: float, length: int) -> None:
        """Continuous-phase 2-FSK: per-symbol tone blocks and start phasors."""
        s = p["sps"]
        n_sym = (length + BLOCK) // s + 2
        bits = g.integers(0, 2, n_sym).astype(bool)
        freqs = np.where(bits, centre + dev, centre - dev)
        start_cycles = np.concatenate(([0.0], np.cumsum(freqs * s)[:-1]))
        m = np.arange(s, dtype=np.float64)
        p.update(
            bits=bits,
            sym_phasor=_phasor(start_cycles),
            base_hi=_phasor((centre + dev) * m),
            base_lo=_phasor((centre - dev) * m),
        )

    def _emission(self, plan: _Plan) -> Emission:
        fs, fc = self.sample_rate_hz, self.center_freq_hz
        return Emission(plan.start, plan.end, fc + plan.f_lo * fs, fc + plan.f_hi * fs, plan.kind, plan.snr_db)

    def render(self, n_samples: int) -> tuple[np.ndarray, list[Emission]]:
        """The next n_samples of the stream as interleaved cu8, and the emissions that start
        in them (an emission may continue into later calls)."""
        if n_samples < 0:
            raise ValueError(f"n_samples must be >= 0, got {n_samples}")
        s0, s1 = self._next_sample, self._next_sample + n_samples
        while self._next_start < s1:
            start = math.ceil(self._next_start)
            if self._ism is None:
                plan = self._new_plan(start)
                self._pending.append(self._emission(plan))
            else:
                plan = ism.transmission(
                    self._rng,
                    start,
                    self.sample_rate_hz,
                    self.center_freq_hz,
                    self._ism.noise_power_at(start),
                    self.kinds,
                    self.snr_db_range,
                )
                self._pending.extend(
                    Emission(a, b, plan.f_lo_hz, plan.f_hi_hz, plan.label, plan.snr_db) for a, b in plan.pkgs
                )
            self._plans.append(plan)
            self._next_start = self._draw_gap(self._next_start)
        self._pending.sort(key=lambda e: e.start_sample)
        new = [e for e in self._pending if e.start_sample < s1]
        self._pending = self._pending[len(new) :]
        y = np.empty(n_samples, dtype=np.complex64)
        for seg in range(s0 // NOISE_SEGMENT, (s1 - 1) // NOISE_SEGMENT + 1 if n_samples else 0):
            off = int(np.random.default_rng([self.seed, 2, seg]).integers(NOISE_BANK))
            a, b = max(s0, seg * NOISE_SEGMENT), min(s1, (seg + 1) * NOISE_SEGMENT)
            base = off - seg * NOISE_SEGMENT
            y[a - s0 : b - s0] = self._noise[base + a : base + b]
            if self._ism is not None:
                y[a - s0 : b - s0] *= np.float32(self._ism.noise_gain(a))
        for plan in self._plans:
            plan.add_into(y, s0)
        if self._ism is not None:
            self._ism.add(y, s0)
        self._plans = [p for p in self._plans if p.end > s1]
        self._next_sample = s1
        v = y.view(np.float32)
        v *= np.float32(CU8_SCALE)
        v += np.float32(CU8_OFFSET + 0.5)
        np.clip(v, 0.0, np.float32(255.5), out=v)
        return v.astype(np.uint8), new
