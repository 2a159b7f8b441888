"""Lineage from a time span back to the hot-DB chunk seqs that hold its samples.

The analysis DB's ``chunks`` table keeps the hot DB's ``seq``; a detection's
``first_seq``/``last_seq`` are the first and last chunk (by time) whose samples overlap the
detection's [t_start_ns, t_end_ns), looked up by time overlap, not from the frame's range.
"""

import bisect
from collections.abc import Sequence

from sdr_assets.errors import StoreError
from sdr_assets.store.chunks import ChunkQueries


class ChunkIndex:
    """Chunk time spans of one partition (or several), sorted by start time, for overlap lookups."""

    def __init__(self, spans: Sequence[tuple[int, int, int]]):
        """``spans``: (t_start_ns, t_end_ns, seq) per chunk."""
        self._spans = sorted(spans)
        self._starts = [s[0] for s in self._spans]
        # chunks of one capture never overlap, so the end times are sorted too; take a running
        # max anyway so a stray overlap cannot hide a chunk from the bisect below
        ends, top = [], None
        for _, e, _ in self._spans:
            top = e if top is None else max(top, e)
            ends.append(top)
        self._max_end = ends

    @classmethod
    def for_partition(cls, db: ChunkQueries, partition_key: str) -> "ChunkIndex":
        """The chunks of one partition of ``db`` (an open ``AnalysisDB``)."""
        return cls([(c.t_start_ns, c.t_end_ns, c.seq) for c in db.chunk_spans(partition_key)])

    def __len__(self) -> int:
        return len(self._spans)

    def seqs(self, t_start_ns: int, t_end_ns: int) -> tuple[int, int] | None:
        """(first_seq, last_seq) of the chunks overlapping [t_start_ns, t_end_ns), None if none."""
        lo = bisect.bisect_right(self._max_end, t_start_ns)  # first chunk that may end after t_start
        hi = bisect.bisect_left(self._starts, max(t_end_ns, t_start_ns + 1))  # chunks starting before t_end
        hits = [s for s in self._spans[lo:hi] if s[1] > t_start_ns]
        if not hits:
            return None
        return hits[0][2], hits[-1][2]

    def require(self, t_start_ns: int, t_end_ns: int) -> tuple[int, int]:
        got = self.seqs(t_start_ns, t_end_ns)
        if got is None:
            raise StoreError(
                f"no stored chunk overlaps [{t_start_ns}, {t_end_ns}) ns; was the window "
                "evicted from the analysis DB? Re-materialise iq_window for it."
            )
        return got
