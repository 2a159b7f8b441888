"""The one interface every radio source implements.

A source is opened, then iterated: it yields, in time order, :class:`Chunk` records (cu8
bytes exactly as received), :class:`Gap` records (samples it knows it lost: a reconnect, a
dongle overflow) and :class:`Annotation` records (synthetic ground truth, SigMF
annotations). Iteration blocks at the radio's pace for realtime sources and ends at end of
data (a file without ``loop``) or when :meth:`Source.stop` is called from another thread.
"""

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator

from sdr_assets.errors import ConfigError
from sdr_assets.records import Annotation, Chunk, Gap, SourceInfo

Event = Chunk | Gap | Annotation

# Default chunk: 128 Ki complex samples = 256 KiB of cu8 (a 1/24 s at 3.2 MS/s).
DEFAULT_CHUNK_SAMPLES = 131072

# RTL2832U rates that are stable (librtlsdr rejects 300001-900000 Hz outright).
RTL_SDR_RATE_RANGES_HZ = ((225_001, 300_000), (900_001, 3_200_000))


def validate_sample_rate_hz(rate) -> float:
    """``rate`` as a float if an RTL-SDR can run at it, else ConfigError naming the ranges."""
    try:
        r = float(rate)
    except (TypeError, ValueError, OverflowError):
        r = math.nan
    if not any(lo <= r <= hi for lo, hi in RTL_SDR_RATE_RANGES_HZ):
        raise ConfigError(
            f"sample rate {rate!r} Hz is not one an RTL-SDR can run at; use 225001-300000 "
            "or 900001-3200000 Hz (e.g. 250000 or 2400000; above 2.4 MS/s the dongle itself "
            "may drop samples)"
        )
    return r


class Source(ABC):
    """A stream of cu8 chunks with their metadata."""

    def __init__(self) -> None:
        self._stopping = False

    @abstractmethod
    def open(self) -> SourceInfo:
        """Acquire the radio/file/socket and return what it is and how it is tuned.

        Raises SourceError (or ConfigError for bad settings) with a message that says what
        to do; nothing is acquired on failure."""

    @abstractmethod
    def events(self) -> Iterator[Event]:
        """Yield chunks, gaps and annotations in time order until the end or stop()."""

    def expected_samples(self) -> int | None:
        """Samples a finite source will deliver once opened (a file without loop, a synthetic
        stream with a duration); None when it runs until stopped."""
        return None

    def stop(self) -> None:
        """Ask events() to end soon (thread-safe); close() still has to be called."""
        self._stopping = True

    def close(self) -> None:
        """Release what open() acquired. Idempotent."""

    def resume_after(self, t_end_ns: int) -> None:
        """The hot DB's timeline ends at ``t_end_ns``: a live source stamps nothing before it
        (called between open() and events()). A source that stamps from its own start time
        (a replay) ignores it; the service refuses a replay that would start before it."""

    # Tuning, for sources that can honour it (rtl_tcp commands, a USB dongle, synthetic).
    def set_center_freq_hz(self, center_freq_hz: float) -> bool:
        return False

    def set_sample_rate_hz(self, sample_rate_hz: float) -> bool:
        return False

    def set_gain_db(self, gain_db: float | None) -> bool:
        return False

    def __enter__(self) -> "Source":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()
