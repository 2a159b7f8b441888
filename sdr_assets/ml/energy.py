"""The energy detector (dsp.detect.detect_bursts) over a window's IQ, in absolute time and Hz.

It runs on the raw samples, not on the PNG frames: each contiguous segment of the window
(same tuning, no time hole: ``records.contiguous_runs``, the spectrogram frames' segments)
is read chunk by chunk and cut into blocks of ``block_s`` seconds that overlap by ``overlap_s``. Each block keeps the
bursts that START in its own part (the blocks' own parts tile the segment), so a burst
shorter than ``overlap_s / 2`` is found exactly once and whole; a segment shorter than one
block is a single call, identical to ``detect_bursts`` on the whole recording. Longer bursts
are cut where a block ends (a known limit: the detector's noise model needs ~1 s anyway).
Each burst is a ``records.TimeFreqBox`` labelled :data:`AUTO_LABEL`, its confidence :func:`snr_score`.
"""

import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from sdr_assets.dsp.detect import detect_bursts
from sdr_assets.dsp.iq import cu8_to_complex64
from sdr_assets.records import NS_PER_S, TimeFreqBox, samples_to_ns
from sdr_assets.store.chunks import ChunkRow
from sdr_assets.store.window import AnalysisDB

AUTO_LABEL = "burst"
DEFAULT_BLOCK_S = 8.0
DEFAULT_OVERLAP_S = 1.0
SPAN_MARGIN_S = 2.0  # window_bursts(spans_ns=...): samples read either side of a span (the noise floor's context)


def snr_score(snr_db: float) -> float:
    """A 0..1 score from the SNR (10 dB -> 0.5, 30 dB -> 0.75): ranks overlapping boxes."""
    return max(0.0, snr_db) / (max(0.0, snr_db) + 10.0)


def _blocks(
    seg: list[ChunkRow], read_iq: Callable[[int], bytes], block_n: int, overlap_n: int
) -> Iterator[tuple[int, np.ndarray, bool]]:
    """(offset of the block in the segment, cu8 bytes of the block, is_last) for one segment;
    chunk payloads are read one at a time, so memory stays at about one block."""
    step = block_n - overlap_n
    buf = bytearray()
    offset = 0
    for row in seg:
        buf += read_iq(row.seq)
        while len(buf) // 2 >= block_n + step:  # a full block, and more data after it
            yield offset, np.frombuffer(bytes(buf[: 2 * block_n]), dtype=np.uint8), False
            del buf[: 2 * step]
            offset += step
    if buf:
        yield offset, np.frombuffer(bytes(buf), dtype=np.uint8), True


def segment_bursts(
    seg: list[ChunkRow],
    read_iq: Callable[[int], bytes],
    *,
    block_s: float = DEFAULT_BLOCK_S,
    overlap_s: float = DEFAULT_OVERLAP_S,
    **detect_kwargs,
) -> list[TimeFreqBox]:
    """Bursts of one contiguous run of chunks; ``read_iq(seq)`` gives a chunk's cu8."""
    fs, fc = float(seg[0].sample_rate_hz), float(seg[0].center_freq_hz)
    t0_ns = int(seg[0].t_start_ns)
    block_n = max(1, int(block_s * fs))
    overlap_n = min(block_n // 2, int(overlap_s * fs))
    out = []
    for offset, cu8, last in _blocks(seg, read_iq, block_n, overlap_n):
        x = cu8_to_complex64(cu8)
        own_lo = 0 if offset == 0 else overlap_n // 2
        own_hi = math.inf if last else block_n - overlap_n + overlap_n // 2
        for b in detect_bursts(x, fs, **detect_kwargs):
            if not own_lo <= b.start_sample < own_hi:
                continue
            out.append(
                TimeFreqBox(
                    t0_ns + samples_to_ns(offset + b.start_sample, fs),
                    t0_ns + samples_to_ns(offset + b.end_sample, fs),
                    fc + b.freq_lower_hz,
                    fc + b.freq_upper_hz,
                    AUTO_LABEL,
                    snr_score(b.snr_db),
                )
            )
    return out


def _within(seg: list[ChunkRow], spans_ns: Sequence[tuple[int, int]], margin_ns: int) -> Iterator[list[ChunkRow]]:
    """The pieces of one contiguous run whose chunks overlap a span widened by ``margin_ns``."""
    piece: list[ChunkRow] = []
    for row in seg:
        if any(row.t_start_ns < t1 + margin_ns and row.t_end_ns > t0 - margin_ns for t0, t1 in spans_ns):
            piece.append(row)
        elif piece:
            yield piece
            piece = []
    if piece:
        yield piece


def window_bursts(
    db: AnalysisDB,
    partition_key: str,
    spans_ns: Sequence[tuple[int, int]] | None = None,
    margin_s: float = SPAN_MARGIN_S,
    **kwargs,
) -> list[TimeFreqBox]:
    """Bursts in every contiguous run of a partition's chunks (analysis DB), time order.
    ``spans_ns``: only the chunks within ``margin_s`` of these spans are read (the held-back
    frames of ``ml.contest``), each stretch of them as its own run."""
    out: list[TimeFreqBox] = []
    for seg in db.chunk_runs(partition_key):
        pieces = [seg] if spans_ns is None else _within(seg, spans_ns, int(margin_s * NS_PER_S))
        for piece in pieces:
            out.extend(segment_bursts(piece, lambda seq: db.chunk_iq(partition_key, seq), **kwargs))
    return sorted(out, key=lambda b: (b.t_start_ns, b.freq_lower_hz))
