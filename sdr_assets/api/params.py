"""Checks of the API's query parameters: each bad value is a ConfigError (an HTTP 400) whose
message names the parameter, what was wrong and an accepted value."""

import math
import re
from datetime import UTC, datetime

from sdr_assets.errors import ConfigError
from sdr_assets.paths import DataPaths
from sdr_assets.records import NS_PER_S, STORABLE_TIMES, storable_time_ns
from sdr_assets.store.sensors import require_registered

MAX_HOURS = 24 * 366.0
_INT_RE = re.compile(r"[0-9]{1,19}")
_FRACTION_RE = re.compile(r"(?<=[0-9]{2}:[0-9]{2}:[0-9]{2})[.,]([0-9]+)")  # after hh:mm:ss


def sensor(paths: DataPaths, name: str) -> str:
    """A registered sensor (``default`` always is)."""
    try:
        return require_registered(paths, name)
    except ConfigError as exc:
        raise ConfigError(f"sensor: {exc}") from None


def time_ns(name: str, raw: str | None) -> int | None:
    """``from``/``to``: ISO 8601 (``2026-11-23T04:00:00Z``, ``...T04:00:00.25+01:00``; no zone
    means UTC) or integer ns since the Unix epoch."""
    if raw is None:
        return None
    text = raw.strip()
    if _INT_RE.fullmatch(text):
        t_ns = int(text)
    else:
        # the fraction of a second by hand: datetime keeps microseconds, the samples need ns
        frac = _FRACTION_RE.search(text)
        frac_ns = int(frac.group(1)[:9].ljust(9, "0")) if frac else 0
        try:
            dt = datetime.fromisoformat(text[: frac.start()] + text[frac.end() :] if frac else text)
        except ValueError:
            raise ConfigError(
                f"{name}={raw!r} is not a time: give ISO 8601 UTC like 2026-11-23T04:00:00Z "
                "or integer ns since the Unix epoch."
            ) from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
        t_ns = (delta.days * 86400 + delta.seconds) * NS_PER_S + frac_ns
    if not storable_time_ns(t_ns):
        raise ConfigError(f"{name}={raw!r} lies outside {STORABLE_TIMES}; give a time inside it.")
    return t_ns


def span(raw_from: str | None, raw_to: str | None, *, required: bool = False) -> tuple[int | None, int | None]:
    t0, t1 = time_ns("from", raw_from), time_ns("to", raw_to)
    if required and (t0 is None or t1 is None):
        raise ConfigError(
            "from and to are both required (ISO 8601 UTC, e.g. from=2026-11-23T04:00:00Z"
            "&to=2026-11-23T04:00:10Z), or detection_id=N alone."
        )
    if t0 is not None and t1 is not None and t1 <= t0:
        raise ConfigError(f"to={raw_to!r} is not after from={raw_from!r}; give a span that ends after it starts.")
    return t0, t1


def finite(name: str, value: float | None, *, lo: float, hi: float, example: str) -> float | None:
    if value is None:
        return None
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ConfigError(f"{name}={value!r} must be a finite number in [{lo:g}, {hi:g}], e.g. {name}={example}.")
    return float(value)


def hours(value: float) -> float:
    if not (math.isfinite(value) and 0 < value <= MAX_HOURS):
        raise ConfigError(f"hours={value!r} must be > 0 and at most {MAX_HOURS:g} (a year), e.g. hours=1.")
    return float(value)


def band(freq_min_hz: float | None, freq_max_hz: float | None) -> tuple[float | None, float | None]:
    lo = finite("freq_min_hz", freq_min_hz, lo=0.0, hi=1e12, example="433000000")
    hi = finite("freq_max_hz", freq_max_hz, lo=0.0, hi=1e12, example="434000000")
    if lo is not None and hi is not None and hi < lo:
        raise ConfigError(f"freq_max_hz={freq_max_hz!r} is below freq_min_hz={freq_min_hz!r}; swap them.")
    return lo, hi


def limit(value: int, most: int) -> int:
    if not 1 <= value <= most:
        raise ConfigError(f"limit={value} must be between 1 and {most}; narrow from/to to see more rows.")
    return value


def text(name: str, value: str | None, max_len: int = 200) -> str | None:
    """A free-text filter (label, model, device id): not empty, not huge, no control characters."""
    if value is None:
        return None
    if not value or len(value) > max_len or any(ord(c) < 32 for c in value):
        raise ConfigError(f"{name}={value[:40]!r}: give 1-{max_len} printable characters (or leave it out).")
    return value
