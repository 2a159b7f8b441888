"""The shared vocabulary: plain records that flow from a source, through the capture service,
into the hot DB and on to analysis, and the few rules every part shares about them.

Times are integer nanoseconds since the Unix epoch (UTC), taken from the sample clock:
chunk k starts at ``t0_ns + samples_before_k * NS_PER_S / sample_rate_hz``. Frequencies are Hz.
One ns constant (:data:`NS_PER_S`), one UTC formatter (:func:`utc_iso`), one time-frequency box
(:class:`TimeFreqBox`), one run rule (:func:`contiguous_runs`) and the segment each run is
(:class:`Segment`). These records import nothing heavy, so every part of the package can share them.
"""

import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC

NS_PER_S = 1_000_000_000
INT64_MAX = 2**63 - 1  # SQLite INTEGER: every stored time (ns) and count must fit
MAX_SAMPLE_RATE_HZ = 1e11  # the highest rate any source may claim (files, SigMF, synthetic)
STORABLE_TIMES = "1970-01-01 .. 2262-04-11 UTC"  # ns since the epoch in a signed 64-bit integer


def samples_to_ns(n_samples: int, sample_rate_hz: float) -> int:
    """Duration of ``n_samples`` at ``sample_rate_hz``, rounded to the nearest ns."""
    return int(round(n_samples * NS_PER_S / sample_rate_hz))


def storable_time_ns(t_ns: int) -> bool:
    """Whether the databases can hold ``t_ns`` as a time (:data:`STORABLE_TIMES`)."""
    return 0 <= t_ns <= INT64_MAX


def utc_datetime(t_ns: int):
    """``t_ns`` (ns since the epoch) as an aware UTC ``datetime``, exact to the microsecond
    (truncated); OverflowError where no calendar date fits."""
    from datetime import datetime, timedelta

    secs, ns = divmod(int(t_ns), NS_PER_S)
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=secs, microseconds=ns // 1000)


def utc_iso(t_ns: int, *, sep: str = "T", digits: int = 0, suffix: str = "Z") -> str:
    """``t_ns`` as UTC text, the one formatter of the package: ``2024-05-01T12:00:00Z`` by default;
    ``digits`` (0-9) adds that many fractional digits, truncated (9: SigMF ``core:datetime``);
    ``sep=" ", suffix=" UTC"`` gives ``2024-05-01 12:00:00 UTC``. OverflowError where no date fits."""
    secs, ns = divmod(int(t_ns), NS_PER_S)
    text = utc_datetime(secs * NS_PER_S).strftime(f"%Y-%m-%d{sep}%H:%M:%S")
    return text + (f".{ns:09d}"[: digits + 1] if digits else "") + suffix


def describe_time_ns(t_ns: int) -> str:
    """``t_ns`` for a message: ISO 8601 UTC, or the year where no calendar date fits."""
    try:
        return utc_iso(t_ns)
    except (OverflowError, ValueError, OSError):
        return f"the year {1970 + t_ns / (365.2425 * 86400 * NS_PER_S):.4g}"


@dataclass(frozen=True)
class SourceInfo:
    """What a source is and how it is tuned when it opens."""

    uri: str
    kind: str  # "synthetic" | "file" | "rtl_tcp" | "rtlsdr"
    center_freq_hz: float
    sample_rate_hz: float
    gain_db: float | None = None  # None = automatic gain
    realtime: bool = True  # paced by the radio (or emulating it)
    meta: dict = field(default_factory=dict)  # source-specific, stored as JSON


@dataclass(frozen=True)
class Chunk:
    """Contiguous cu8 samples exactly as received (2 bytes per complex sample)."""

    t_start_ns: int
    center_freq_hz: float
    sample_rate_hz: float
    gain_db: float | None
    iq: bytes

    @property
    def n_samples(self) -> int:
        return len(self.iq) // 2

    @property
    def t_end_ns(self) -> int:
        return self.t_start_ns + samples_to_ns(self.n_samples, self.sample_rate_hz)


@dataclass(frozen=True)
class Gap:
    """Samples the radio produced that were not stored, counted, never silent.

    cause: "ring_overflow" | "reconnect" | "underrun" | "stall" | "late" | "restart" | ...
    (``capture.clock`` and docs/capture.md say when each is recorded).

    A gap spans the time of the samples it counts, except a ``late`` gap (``duration_ns=0``):
    samples that arrived after their time was already on the timeline.
    """

    t_start_ns: int
    n_samples_lost: int
    sample_rate_hz: float
    cause: str
    detail: str = ""
    duration_ns: int | None = None  # None: n_samples_lost at the rate

    @property
    def t_end_ns(self) -> int:
        if self.duration_ns is not None:
            return self.t_start_ns + self.duration_ns
        return self.t_start_ns + samples_to_ns(self.n_samples_lost, self.sample_rate_hz)


@dataclass(frozen=True)
class TimeFreqBox:
    """The package's one labelled time-frequency box: [t_start_ns, t_end_ns) (ns since the epoch)
    by [freq_lower_hz, freq_upper_hz] (absolute Hz), a label and, where something scored it, a
    0..1 ``confidence`` (the detector's, or the energy detector's SNR score). Records that carry
    more (ids, lineage, SNR) extend it or expose theirs as ``.box``."""

    t_start_ns: int
    t_end_ns: int
    freq_lower_hz: float
    freq_upper_hz: float
    label: str
    confidence: float | None = None

    @property
    def duration_ns(self) -> int:
        return self.t_end_ns - self.t_start_ns

    def overlaps(self, other) -> bool:
        """Whether the two boxes share some time and some band (``other``: any box-shaped record)."""
        return (
            self.t_start_ns < other.t_end_ns
            and other.t_start_ns < self.t_end_ns
            and self.freq_lower_hz < other.freq_upper_hz
            and other.freq_lower_hz < self.freq_upper_hz
        )


def box_of(row, confidence: float | None = None) -> TimeFreqBox:
    """The :class:`TimeFreqBox` of any record with the four edges and a label."""
    return TimeFreqBox(
        int(row.t_start_ns),
        int(row.t_end_ns),
        float(row.freq_lower_hz),
        float(row.freq_upper_hz),
        str(row.label),
        confidence,
    )


@dataclass(frozen=True)
class Annotation:
    """A labelled time-frequency box: synthetic ground truth, a SigMF annotation, ..."""

    t_start_ns: int
    t_end_ns: int
    freq_lower_hz: float
    freq_upper_hz: float
    label: str
    snr_db: float | None = None
    origin: str = "synthetic"  # "synthetic" | "sigmf" | "manual"

    @property
    def box(self) -> TimeFreqBox:
        return box_of(self)


# ---- contiguous runs of chunks: the one rule, and the segment each run is -----------------------
@dataclass(frozen=True)
class Segment:
    """One contiguous run of chunks (:func:`contiguous_runs`): a stream at one tuning."""

    t_start_ns: int
    n_samples: int
    sample_rate_hz: float
    center_freq_hz: float
    first_seq: int
    last_seq: int

    @property
    def t_end_ns(self) -> int:
        return self.t_start_ns + samples_to_ns(self.n_samples, self.sample_rate_hz)


def segments(chunks: Iterable, gap_starts: Iterable[int] = ()) -> list[Segment]:
    """The :class:`Segment` of each :func:`contiguous_runs` run of ``chunks`` (items with ``seq``
    and ``n_samples`` besides the times and the tuning)."""
    return [
        Segment(
            int(run[0].t_start_ns),
            sum(int(c.n_samples) for c in run),
            float(run[0].sample_rate_hz),
            float(run[0].center_freq_hz),
            int(run[0].seq),
            int(run[-1].seq),
        )
        for run in contiguous_runs(chunks, gap_starts)
    ]


def contiguous_runs(
    chunks: Iterable, gap_starts: Iterable[int] = (), *, tol_ns: int | None = None, retune: bool = True
) -> Iterator[list]:
    """Group chunks (time order) into contiguous runs. A run breaks where

    - ``retune``: the sample rate or the centre frequency changes;
    - the next chunk starts more than ``tol_ns`` (None: one sample at its rate) before or after
      the previous one's end (a hole in time, or an overlap);
    - a recorded gap starts at the boundary (one of ``gap_starts``, within the tolerance).

    ``chunks``: items with ``t_start_ns``, ``t_end_ns``, ``sample_rate_hz`` (and
    ``center_freq_hz`` when ``retune``), e.g. ``store.chunks.ChunkRow`` or :class:`Chunk`."""
    gap_starts = sorted(gap_starts)
    run: list = []
    for c in chunks:
        if run and _breaks(run[-1], c, gap_starts, tol_ns, retune):
            yield run
            run = []
        run.append(c)
    if run:
        yield run


def _breaks(prev, c, gap_starts: list[int], tol_ns: int | None, retune: bool) -> bool:
    if retune and (c.sample_rate_hz, c.center_freq_hz) != (prev.sample_rate_hz, prev.center_freq_hz):
        return True
    tol = samples_to_ns(1, c.sample_rate_hz) if tol_ns is None else tol_ns
    end = prev.t_end_ns
    if abs(c.t_start_ns - end) > tol:
        return True
    i = bisect.bisect_left(gap_starts, end - tol)
    return i < len(gap_starts) and gap_starts[i] <= c.t_start_ns + tol
