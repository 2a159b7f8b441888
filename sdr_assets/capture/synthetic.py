"""A synthetic radio: :class:`~sdr_assets.dsp.synth.BandScenario` behind the Source interface.

Each chunk is preceded by the ground-truth :class:`Annotation` records of the emissions that
start in it. In realtime mode the source is paced by its sample clock: chunk k is handed
out no earlier than ``t0 + samples_before_k / fs`` (deadlines computed from the start of the
current tuning, so sleeping never accumulates drift).

Retuning (``set_center_freq_hz`` / ``set_sample_rate_hz``) takes effect at the next chunk:
the band restarts there as a new scenario (seed derived from the seed and the retune
count), and times continue from where the previous tuning stopped.
"""

import math
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import parse_qsl

from sdr_assets.capture.base import DEFAULT_CHUNK_SAMPLES, Event, Source
from sdr_assets.dsp.synth import KINDS, PROFILES, BandScenario, check_sample_rate_hz
from sdr_assets.errors import ConfigError, SourceError
from sdr_assets.records import (
    INT64_MAX,
    MAX_SAMPLE_RATE_HZ,
    NS_PER_S,
    STORABLE_TIMES,
    Annotation,
    Chunk,
    SourceInfo,
    samples_to_ns,
    storable_time_ns,
)


def _start_ns(value: str) -> int:
    """ISO 8601 time -> ns since the epoch (naive times are UTC)."""
    t = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return int(t.timestamp() * NS_PER_S)


def _rate_ok(sample_rate_hz: float) -> bool:
    return 1.0 <= sample_rate_hz <= MAX_SAMPLE_RATE_HZ  # (NaN is not)


def _kinds(value: str) -> tuple[str, ...]:
    return tuple(k.strip() for k in value.split(",") if k.strip())


# query key -> (keyword argument, parser, what the value must be)
_QUERY_KEYS = {
    "seed": ("seed", int, "an integer >= 0"),
    "rate": ("sample_rate_hz", float, "a number of Hz"),
    "sample_rate_hz": ("sample_rate_hz", float, "a number of Hz"),
    "center": ("center_freq_hz", float, "a number of Hz"),
    "center_freq_hz": ("center_freq_hz", float, "a number of Hz"),
    "emissions_per_s": ("emissions_per_s", float, "a number >= 0"),
    "noise_dbfs": ("noise_dbfs", float, "a number of dB (full scale = 0)"),
    "kinds": ("kinds", _kinds, "a comma-separated list"),
    "chunk_samples": ("chunk_samples", int, "an integer > 0"),
    "start": ("start_ns", _start_ns, "an ISO 8601 UTC time like 2026-11-23T10:00:00Z"),
    "duration_s": ("duration_s", float, "a number of seconds > 0"),
    "snr_db_min": ("snr_db_min", float, "a number of dB"),
    "snr_db_max": ("snr_db_max", float, "a number of dB"),
    "emission_s_min": ("emission_s_min", float, "a number of seconds > 0"),
    "emission_s_max": ("emission_s_max", float, "a number of seconds > 0"),
    "profile": ("profile", str, f"one of {', '.join(PROFILES)}"),
}
_RANGES = {
    "snr_db_range": ("snr_db_min", "snr_db_max", (6.0, 30.0)),
    "duration_s_range": ("emission_s_min", "emission_s_max", (0.005, 0.3)),
}


def parse_synthetic_query(query: str) -> dict:
    """``seed=3&rate=2.4e6&kinds=cw,ook`` -> keyword arguments for :class:`SyntheticSource`."""
    out: dict = {}
    accepted = ", ".join(_QUERY_KEYS)
    for key, value in parse_qsl(query.lstrip("?"), keep_blank_values=True, strict_parsing=False):
        if key not in _QUERY_KEYS:
            raise ConfigError(f"synthetic:// query key {key!r} is not known; accepted keys: {accepted}")
        name, parse, must_be = _QUERY_KEYS[key]
        try:
            out[name] = parse(value)
        except ValueError as exc:
            raise ConfigError(f"synthetic:// query {key}={value!r}: must be {must_be}") from exc
    bad = [k for k in out.get("kinds", ()) if k not in KINDS]
    if bad or ("kinds" in out and not out["kinds"]):
        raise ConfigError(
            f"synthetic:// kinds={','.join(out['kinds'])!r}: use a comma-separated subset of {','.join(KINDS)}"
        )
    if out.get("profile", "mixed") not in PROFILES:
        raise ConfigError(
            f"synthetic:// profile={out['profile']!r}: use one of {', '.join(PROFILES)} "
            "(ism: rtl_433-type devices over an RTL-SDR background)"
        )
    for name in ("sample_rate_hz", "chunk_samples"):
        if name in out and out[name] <= 0:
            raise ConfigError(f"synthetic:// {name} must be > 0, got {out[name]}")
    if out.get("seed", 0) < 0:
        raise ConfigError(f"synthetic:// seed must be >= 0, got {out['seed']}")
    if out.get("duration_s", 1) <= 0:
        raise ConfigError(f"synthetic:// duration_s must be > 0, got {out['duration_s']}")
    if out.get("emissions_per_s", 0) < 0:
        raise ConfigError(f"synthetic:// emissions_per_s must be >= 0, got {out['emissions_per_s']}")
    for name, (k_lo, k_hi, default) in _RANGES.items():
        if k_lo in out or k_hi in out:
            lo, hi = out.pop(k_lo, default[0]), out.pop(k_hi, default[1])
            if not lo <= hi or (name == "duration_s_range" and lo <= 0):
                raise ConfigError(
                    f"synthetic:// {k_lo}={lo} and {k_hi}={hi}: need "
                    f"{'0 < ' if name == 'duration_s_range' else ''}min <= max"
                )
            out[name] = (lo, hi)
    return out


class SyntheticSource(Source):
    """A seeded synthetic band, paced like a dongle (``realtime=True``) or as fast as asked."""

    def __init__(
        self,
        seed: int = 0,
        sample_rate_hz: float = 2.4e6,
        center_freq_hz: float = 433.92e6,
        gain_db: float | None = None,
        realtime: bool = True,
        chunk_samples: int = DEFAULT_CHUNK_SAMPLES,
        uri: str = "synthetic://",
        start_ns: int | None = None,
        duration_s: float | None = None,
        **scenario_kwargs,
    ):
        """start_ns: the first sample's time (default: the wall clock at open(); a past start
        replays the band into past partitions, e.g. for backfills and tests).
        duration_s: end the stream after this many seconds of samples (default: never)."""
        super().__init__()
        self.start_ns, self.duration_s = start_ns, duration_s
        if chunk_samples <= 0:
            raise ConfigError(f"SyntheticSource: chunk_samples ({chunk_samples}) must be > 0")
        if not _rate_ok(sample_rate_hz):  # (a rate of 1e300 made chunks 0 ns long)
            raise ConfigError(
                f"synthetic:// sample rate {sample_rate_hz:g} Hz is out of range: use "
                f"1 .. {MAX_SAMPLE_RATE_HZ:g} Hz, e.g. rate=1024000"
            )
        first_ns = time.time_ns() if start_ns is None else start_ns
        if not storable_time_ns(first_ns) or (
            duration_s is not None and not first_ns + duration_s * NS_PER_S <= INT64_MAX
        ):
            raise ConfigError(
                f"synthetic:// start and duration_s put samples outside the times the "
                f"hot DB can store ({STORABLE_TIMES}); e.g. start=2026-11-23T10:00:00Z"
            )
        if not math.isfinite(center_freq_hz):
            raise ConfigError(
                f"synthetic:// centre frequency {center_freq_hz} must be a finite number of Hz, e.g. center=433920000"
            )
        self.seed, self.sample_rate_hz, self.center_freq_hz = seed, sample_rate_hz, center_freq_hz
        self.gain_db, self.realtime, self.chunk_samples, self.uri = (gain_db, realtime, chunk_samples, uri)
        self._scenario_kwargs = scenario_kwargs
        self._stop_event = threading.Event()
        self._lock = threading.Lock()
        self._retune_pending = False
        self._retunes = 0
        self._scenario: BandScenario | None = None
        self._make_scenario()  # validate settings now (ConfigError), not at first chunk
        self.t0_ns: int | None = None

    def _make_scenario(self) -> None:
        seed = self.seed + 1_000_003 * self._retunes  # a fresh band after each retune
        try:
            self._scenario = BandScenario(seed, self.sample_rate_hz, self.center_freq_hz, **self._scenario_kwargs)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"SyntheticSource settings rejected: {exc}") from exc

    def expected_samples(self) -> int | None:
        if self.duration_s is None:
            return None
        return int(round(self.duration_s * self.sample_rate_hz))

    def open(self) -> SourceInfo:
        self._stopping = False
        self._stop_event.clear()
        self.t0_ns = self.start_ns if self.start_ns is not None else time.time_ns()
        return SourceInfo(
            uri=self.uri,
            kind="synthetic",
            center_freq_hz=self.center_freq_hz,
            sample_rate_hz=self.sample_rate_hz,
            gain_db=self.gain_db,
            realtime=self.realtime,
            meta={
                "seed": self.seed,
                "chunk_samples": self.chunk_samples,
                **{k: (list(v) if isinstance(v, tuple) else v) for k, v in self._scenario_kwargs.items()},
            },
        )

    def stop(self) -> None:
        super().stop()
        self._stop_event.set()

    def events(self) -> Iterator[Event]:
        if self.t0_ns is None:
            raise SourceError(
                "SyntheticSource.events() called before open(): call open() (or use it as a context manager) first"
            )
        seg_t0_ns, seg_samples = self.t0_ns, 0  # start of the current tuning
        end_ns = None if self.duration_s is None else self.t0_ns + int(round(self.duration_s * NS_PER_S))
        while not self._stopping:
            if end_ns is not None and seg_t0_ns + samples_to_ns(seg_samples, self._scenario.sample_rate_hz) >= end_ns:
                return
            with self._lock:
                if self._retune_pending:
                    seg_t0_ns += samples_to_ns(seg_samples, self._scenario.sample_rate_hz)
                    seg_samples = 0
                    self._retunes += 1
                    self._make_scenario()
                    self._retune_pending = False
                sc, gain_db = self._scenario, self.gain_db
            fs = sc.sample_rate_hz
            iq, emissions = sc.render(self.chunk_samples)
            chunk_t_ns = seg_t0_ns + samples_to_ns(seg_samples, fs)
            seg_samples += self.chunk_samples
            if self.realtime:  # hand the chunk out once its last sample has "arrived"
                wait_s = (seg_t0_ns + samples_to_ns(seg_samples, fs) - time.time_ns()) / NS_PER_S
                if wait_s > 0 and self._stop_event.wait(wait_s):
                    return
            if self._stopping:
                return
            for e in emissions:
                yield Annotation(
                    t_start_ns=seg_t0_ns + samples_to_ns(e.start_sample, fs),
                    t_end_ns=seg_t0_ns + samples_to_ns(e.end_sample, fs),
                    freq_lower_hz=e.freq_lower_hz,
                    freq_upper_hz=e.freq_upper_hz,
                    label=e.label,
                    snr_db=e.snr_db,
                    origin="synthetic",
                )
            yield Chunk(
                t_start_ns=chunk_t_ns,
                center_freq_hz=sc.center_freq_hz,
                sample_rate_hz=fs,
                gain_db=gain_db,
                iq=iq.tobytes(),
            )

    def close(self) -> None:
        self.stop()

    def set_center_freq_hz(self, center_freq_hz: float) -> bool:
        with self._lock:
            self.center_freq_hz, self._retune_pending = float(center_freq_hz), True
        return True

    def set_sample_rate_hz(self, sample_rate_hz: float) -> bool:
        """Retune at the next chunk; a rate the band cannot be synthesised at is a ConfigError
        now (the stream goes on at the old rate), never a failure in the stream later."""
        try:
            check_sample_rate_hz(sample_rate_hz, self._scenario.profile)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"SyntheticSource: {exc}") from exc
        with self._lock:
            self.sample_rate_hz, self._retune_pending = float(sample_rate_hz), True
        return True

    def set_gain_db(self, gain_db: float | None) -> bool:
        with self._lock:
            self.gain_db = gain_db
        return True
