"""The energy detector (dsp.detect) over a window's IQ, in absolute time and Hz, run once per window.

``spectrograms`` runs it while it renders (``store.frames.render_partition(energy=...)``): the
detector reuses the spectrogram's STFT where the spectrogram's window is short enough, else
runs its own STFT (``dsp.detect.segment_detector``), and the bursts are stored
(``store.bursts``). :func:`window_bursts` returns the stored bursts; only for a window whose
bursts are missing or stale (rendered before the detector was stored, or the window was
loaded again since) does it run the detector over the IQ, the same way, and store them.

Each contiguous segment of the window (same tuning, no time hole: ``records.contiguous_runs``,
the spectrogram frames' segments) is processed in blocks of 8 s that overlap by 1 s; each block
keeps the bursts that START in its own part, so a burst shorter than 0.5 s is found exactly
once and whole. Longer bursts are cut where a block ends (a known limit: the detector's noise
model needs ~1 s anyway). Each burst is a ``records.TimeFreqBox`` labelled :data:`AUTO_LABEL`,
its confidence :func:`snr_score`.
"""

import time
from collections.abc import Sequence

from sdr_assets.dsp import stft
from sdr_assets.dsp.detect import segment_detector
from sdr_assets.records import TimeFreqBox, samples_to_ns
from sdr_assets.store.bursts import EnergyBurstRow, EnergyRun
from sdr_assets.store.window import AnalysisDB

AUTO_LABEL = "burst"


def snr_score(snr_db: float) -> float:
    """A 0..1 score from the SNR (10 dB -> 0.5, 30 dB -> 0.75): ranks overlapping boxes."""
    return max(0.0, snr_db) / (max(0.0, snr_db) + 10.0)


def boxes_of(rows: list[EnergyBurstRow]) -> list[TimeFreqBox]:
    return sorted((r.box(AUTO_LABEL, snr_score(r.snr_db)) for r in rows), key=lambda b: (b.t_start_ns, b.freq_lower_hz))


def detect_window(db: AnalysisDB, partition_key: str, nfft: int, hop: int, **params) -> tuple[list, EnergyRun]:
    """Run the detector over the partition's IQ as ``render_partition`` does for a spectrogram
    of ``nfft``/``hop`` (the same bursts), without rendering: (burst rows, run)."""
    rows: list[EnergyBurstRow] = []
    seconds, geometry = 0.0, []
    for seg, with_iq in db.runs_with_iq(partition_key):
        fs, fc, t0_ns = seg[0].sample_rate_hz, seg[0].center_freq_hz, seg[0].t_start_ns
        det = segment_detector(fs, nfft, hop, **params)
        carry = bytearray()
        for c in with_iq:
            iq = c.iq
            det.add_samples(iq)
            if det.own_stft:
                continue
            carry += iq
            n_cols = 0 if len(carry) < 2 * nfft else 1 + (len(carry) // 2 - nfft) // hop
            if n_cols:
                det.add_power(stft.stft_power_cu8(carry[: 2 * ((n_cols - 1) * hop + nfft)], nfft, hop))
                del carry[: 2 * n_cols * hop]
        for b in det.finish():
            rows.append(
                EnergyBurstRow(
                    t0_ns + samples_to_ns(b.start_sample, fs),
                    t0_ns + samples_to_ns(b.end_sample, fs),
                    fc + b.freq_lower_hz,
                    fc + b.freq_upper_hz,
                    b.snr_db,
                    b.peak_db,
                )
            )
        seconds += det.seconds
        geometry.append(det.describe())
    run = EnergyRun(
        partition_key, time.time_ns(), len(rows), seconds, "; ".join(dict.fromkeys(geometry)) or "no samples"
    )
    return rows, run


def window_bursts(db: AnalysisDB, partition_key: str, **params) -> list[TimeFreqBox]:
    """The partition's bursts, time order (see :func:`window_bursts_from`)."""
    return window_bursts_from(db, partition_key, **params)[0]


def _in_spans(boxes: list[TimeFreqBox], spans_ns: Sequence[tuple[int, int]]) -> list[TimeFreqBox]:
    return [b for b in boxes if any(t0 <= (b.t_start_ns + b.t_end_ns) // 2 < t1 for t0, t1 in spans_ns)]


def window_bursts_from(
    db: AnalysisDB, partition_key: str, spans_ns: Sequence[tuple[int, int]] | None = None, **params
) -> tuple[list[TimeFreqBox], str]:
    """(the partition's bursts in time order, where they came from): the stored ones
    ("stored"; ``spectrograms`` stored them), else the detector run now over the IQ and stored
    ("detected now"). ``params`` (detector parameters) always run it now and store nothing.
    ``spans_ns``: only the bursts whose centre lies in one of these spans (the held-back frames
    of ``ml.contest``); the detector still runs over the whole window, once."""
    boxes, origin = _window_bursts_from(db, partition_key, **params)
    return (boxes if spans_ns is None else _in_spans(boxes, spans_ns)), origin


def _window_bursts_from(db: AnalysisDB, partition_key: str, **params) -> tuple[list[TimeFreqBox], str]:
    if not params:
        stored = db.energy_bursts(partition_key)
        if stored is not None:
            return boxes_of(stored), "stored"
    frames = db.frames(partition_key)
    nfft, hop = (frames[0].nfft, frames[0].hop) if frames else (stft.DEFAULT_NFFT, stft.DEFAULT_HOP)
    rows, run = detect_window(db, partition_key, nfft, hop, **params)
    if not params:
        db.replace_energy_bursts(run, rows)
    return boxes_of(rows), "detected now"
