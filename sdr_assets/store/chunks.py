"""A partition's chunks in the analysis DB: rows, contiguous runs, and complex samples of a span.

A *run* is what the spectrogram frames, the energy detector and the IQ refinement read as one
stream: chunks in time order with the same tuning (sample rate, centre frequency), each
starting where the previous one ended (within one sample). A retune or a hole starts a new run,
and so does a recorded gap where the caller passes the gaps' start times.
``records.contiguous_runs`` is that rule, written once: the frames, the energy detector, the decoder's
segments, the SigMF export's capture segments and the window's coverage check all split by it.
"""

import itertools
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from sdr_assets.dsp.iq import cu8_to_complex64
from sdr_assets.records import NS_PER_S, contiguous_runs, samples_to_ns


@dataclass(frozen=True)
class ChunkRow:
    seq: int
    t_start_ns: int
    sample_rate_hz: float
    center_freq_hz: float
    n_samples: int
    iq: bytes | None  # cu8 as captured; None when read without it

    @property
    def t_end_ns(self) -> int:
        return self.t_start_ns + samples_to_ns(self.n_samples, self.sample_rate_hz)


@dataclass(frozen=True)
class ChunkSpan:
    seq: int
    t_start_ns: int
    t_end_ns: int
    sample_rate_hz: float
    n_samples: int


class ChunkQueries:
    """The chunks table, as methods of the analysis DB (``AnalysisDB`` mixes this in)."""

    def iter_chunks(self, partition_key: str, with_iq: bool = True) -> Iterator[ChunkRow]:
        """The partition's chunks in time order, one row at a time (``iq`` is None when not with_iq)."""
        iq = "iq" if with_iq else "NULL"
        cur = self.conn.execute(
            f"SELECT seq, t_start_ns, sample_rate_hz, center_freq_hz, n_samples, {iq} FROM chunks "
            "WHERE partition_key = ? ORDER BY t_start_ns, seq",
            (partition_key,),
        )
        try:
            for row in cur:
                yield ChunkRow(*row)
        finally:
            cur.close()

    def chunk_spans(self, partition_key: str) -> list[ChunkSpan]:
        """Time spans of the partition's chunks without their iq (for coverage checks)."""
        return [
            ChunkSpan(c.seq, c.t_start_ns, c.t_end_ns, c.sample_rate_hz, c.n_samples)
            for c in self.iter_chunks(partition_key, with_iq=False)
        ]

    def chunk_runs(self, partition_key: str) -> list[list[ChunkRow]]:
        """The partition's contiguous runs of chunks (see the module doc), without their iq."""
        return list(contiguous_runs(self.iter_chunks(partition_key, with_iq=False)))

    def runs_with_iq(self, partition_key: str) -> Iterator[tuple[list[ChunkRow], Iterator[ChunkRow]]]:
        """Each contiguous run (as :meth:`chunk_runs`, without iq) with an iterator over its
        chunks WITH iq, all streamed from one cursor in time order: memory holds one chunk, not
        a run. Whatever a run's iterator leaves unread is skipped before the next run."""
        rows = self.iter_chunks(partition_key)
        try:
            for run in self.chunk_runs(partition_key):
                it = itertools.islice(rows, len(run))
                yield run, it
                for _ in it:  # drain what the caller left
                    pass
        finally:
            rows.close()

    def chunk_iq(self, partition_key: str, seq: int) -> bytes:
        """One chunk's cu8 payload."""
        return self.conn.execute(
            "SELECT iq FROM chunks WHERE partition_key = ? AND seq = ?", (partition_key, seq)
        ).fetchone()[0]


class SpanReader:
    """Complex samples of a partition's time spans, from its chunks in the analysis DB (``db``,
    an open ``AnalysisDB``); a span is read within one contiguous run. Recent chunks are cached."""

    def __init__(self, db: ChunkQueries, partition_key: str, cache_chunks: int = 8):
        self.db, self.partition_key = db, partition_key
        self.runs = db.chunk_runs(partition_key)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_chunks = cache_chunks

    def _chunk(self, seq: int) -> np.ndarray:
        if seq in self._cache:
            self._cache.move_to_end(seq)
        else:
            self._cache[seq] = cu8_to_complex64(self.db.chunk_iq(self.partition_key, seq))
            while len(self._cache) > self._cache_chunks:
                self._cache.popitem(last=False)
        return self._cache[seq]

    def span(self, t_start_ns: int, t_end_ns: int, at_ns: int) -> tuple[np.ndarray, int, float, float] | None:
        """(samples, time of the first, sample_rate_hz, center_freq_hz) of [t_start_ns, t_end_ns)
        clipped to the run holding ``at_ns``; None when no run holds it."""
        for run in self.runs:
            fs = float(run[0].sample_rate_hz)
            if not run[0].t_start_ns <= at_ns < run[-1].t_end_ns:
                continue
            rows = [c for c in run if c.t_start_ns < t_end_ns and c.t_end_ns > t_start_ns]
            x = np.concatenate([self._chunk(c.seq) for c in rows])
            i0 = max(0, int((t_start_ns - rows[0].t_start_ns) * fs // NS_PER_S))
            i1 = min(x.size, int(-(-(t_end_ns - rows[0].t_start_ns) * fs // NS_PER_S)))
            return x[i0:i1], rows[0].t_start_ns + samples_to_ns(i0, fs), fs, float(run[0].center_freq_hz)
        return None
