"""Plain records that flow from a source, through the capture service, into the hot DB.

Times are integer nanoseconds since the Unix epoch (UTC), taken from the sample clock:
chunk k starts at ``t0_ns + samples_before_k * 1e9 / sample_rate_hz``. Frequencies are Hz.
These records import nothing heavy, so every part of the package can share them.
"""

from dataclasses import dataclass, field

NS_PER_S = 1_000_000_000


def samples_to_ns(n_samples: int, sample_rate_hz: float) -> int:
    """Duration of ``n_samples`` at ``sample_rate_hz``, rounded to the nearest ns."""
    return int(round(n_samples * NS_PER_S / sample_rate_hz))


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
class Annotation:
    """A labelled time-frequency box: synthetic ground truth, a SigMF annotation, ..."""

    t_start_ns: int
    t_end_ns: int
    freq_lower_hz: float
    freq_upper_hz: float
    label: str
    snr_db: float | None = None
    origin: str = "synthetic"  # "synthetic" | "sigmf" | "manual"
