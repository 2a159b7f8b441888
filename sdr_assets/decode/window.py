"""rtl_433 over one partition of the analysis DB: messages and packages in absolute time, with lineage.

Each contiguous segment of the window (same tuning, no time hole: ``store.messages.segment_spans``)
is one rtl_433 run, its chunks streamed from the analysis DB on rtl_433's stdin in time order
(``decode.rtl433.decode_cu8``), so a gap never glues two signals into one. A package or message
at offset ``o`` samples of a segment starting at ``T`` starts at ``T + o / fs``; it ends at its
package's width (``-A``). Its band is measured on the package's own samples
(``dsp.band.occupied_band`` on its first ``BAND_MAX_SAMPLES``: rtl_433's frequency estimate is
kHz off), else rtl_433's estimate +- ``FALLBACK_HALF_WIDTH_HZ``. Lineage: the hot-DB chunk seqs overlapping its time span
(``store.lineage``) and the rtl_433 version.

A signal cut by the window's edge (or by a gap) is seen in part by each run and may decode in
neither: windows are decoded independently.
"""

import time
from dataclasses import dataclass, field

from sdr_assets.decode.rtl433 import DECODER, Rtl433Result, decode_cu8, rtl433_version
from sdr_assets.dsp.band import occupied_band
from sdr_assets.dsp.iq import cu8_to_complex64
from sdr_assets.errors import StoreError
from sdr_assets.records import samples_to_ns
from sdr_assets.store import messages as store
from sdr_assets.store.lineage import ChunkIndex

FALLBACK_HALF_WIDTH_HZ = 20e3  # rtl_433's carrier estimate was up to 15 kHz off on the recordings
BAND_MAX_SAMPLES = 1 << 17  # a package's band is measured on its first 0.5 s (250 kS/s) at most


@dataclass(frozen=True)
class WindowDecode:
    """What rtl_433 found in one partition (not yet stored)."""

    run: store.DecodeRun
    packages: tuple[store.PackageRecord, ...]
    messages: tuple[store.MessageRecord, ...]
    duration_s: float  # seconds of samples decoded
    per_model: dict[str, int] = field(default_factory=dict)

    @property
    def devices(self) -> list[tuple[str, str, str]]:
        """(model, id, channel) of every device heard, in order of first message."""
        return list(dict.fromkeys(m.device_key for m in self.messages))

    @property
    def realtime_fraction(self) -> float:
        """rtl_433's wall time over the seconds of samples it decoded (0.01 = 1 % of real time)."""
        return self.run.seconds / self.duration_s if self.duration_s > 0 else 0.0


def decode_window(db, partition_key: str, *, executable: str | None = None) -> WindowDecode:
    """Run rtl_433 over every segment of the partition (see the module doc); stores nothing.
    Raises DecodeError (naming the package to install) when rtl_433 is missing."""
    version = rtl433_version(executable)
    conn = db.conn
    index = ChunkIndex.for_partition(db, partition_key)
    segs = store.segment_spans(conn, partition_key)
    packages: list[store.PackageRecord] = []
    messages: list[store.MessageRecord] = []
    seconds = 0.0
    for seg in segs:
        t = time.perf_counter()
        res = decode_cu8(
            store.iter_segment_iq(conn, partition_key, seg),
            seg.sample_rate_hz,
            seg.center_freq_hz,
            executable=executable,
        )
        seconds += time.perf_counter() - t
        if res.n_samples != seg.n_samples:
            raise StoreError(
                f"partition {partition_key} changed while it was decoded ({res.n_samples} "
                f"samples read, {seg.n_samples} expected); materialise decoded_messages again."
            )
        seg_packages = _packages(conn, partition_key, seg, res, index, version)
        packages.extend(seg_packages)
        messages.extend(_messages(seg, res, index, version, {p.t_start_ns: p for p in seg_packages}))
    per_model: dict[str, int] = {}
    for m in messages:
        per_model[m.model] = per_model.get(m.model, 0) + 1
    n_samples = sum(s.n_samples for s in segs)
    run = store.DecodeRun(
        partition_key, DECODER, version, time.time_ns(), len(segs), n_samples, len(messages), len(packages), seconds
    )
    duration_s = sum(s.n_samples / s.sample_rate_hz for s in segs)
    return WindowDecode(run, tuple(packages), tuple(messages), duration_s, dict(sorted(per_model.items())))


def decode_partition(db, partition_key: str, *, executable: str | None = None) -> WindowDecode:
    """:func:`decode_window`, then replace the partition's decodes in the analysis DB."""
    out = decode_window(db, partition_key, executable=executable)
    store.replace_decodes(db.conn, out.run, out.packages, out.messages)
    return out


def _abs_ns(seg: store.Segment, offset_samples: int) -> int:
    return seg.t_start_ns + samples_to_ns(offset_samples, seg.sample_rate_hz)


def _band_around(center_hz: float, freqs_hz: list[float | None]) -> tuple[float, float]:
    """rtl_433's frequency estimate(s) +- the fallback half-width (the whole band if none)."""
    known = [f for f in freqs_hz if f is not None]
    if not known:
        return center_hz - FALLBACK_HALF_WIDTH_HZ, center_hz + FALLBACK_HALF_WIDTH_HZ
    return min(known) - FALLBACK_HALF_WIDTH_HZ, max(known) + FALLBACK_HALF_WIDTH_HZ


def _packages(
    conn, key: str, seg: store.Segment, res: Rtl433Result, index: ChunkIndex, version: str
) -> list[store.PackageRecord]:
    n_messages: dict[int, int] = {}
    for m in res.messages:
        n_messages[m.offset_samples] = n_messages.get(m.offset_samples, 0) + 1
    fc, out = seg.center_freq_hz, []
    for p in res.packages:
        end = min(p.end_samples, seg.n_samples)
        t0, t1 = _abs_ns(seg, p.start_samples), _abs_ns(seg, max(end, p.start_samples + 1))
        cu8 = store.read_iq(conn, key, seg, p.start_samples, min(end, p.start_samples + BAND_MAX_SAMPLES))
        band = occupied_band(cu8_to_complex64(cu8), seg.sample_rate_hz) if cu8 else None
        f1 = None if p.freq1_offset_hz is None else fc + p.freq1_offset_hz
        f2 = None if p.freq2_offset_hz is None else fc + p.freq2_offset_hz
        if band is not None:
            (lo, hi), band_from = (fc + band[0], fc + band[1]), "iq"
        else:
            (lo, hi), band_from = _band_around(fc, [f1, f2]), "rtl_433"
        first_seq, last_seq = index.require(t0, t1)
        out.append(
            store.PackageRecord(
                t0,
                t1,
                p.modulation,
                p.n_pulses,
                lo,
                hi,
                band_from,
                f1,
                f2,
                p.rssi_db,
                p.snr_db,
                p.noise_db,
                n_messages.get(p.start_samples, 0),
                first_seq,
                last_seq,
                version,
            )
        )
    return out


def _messages(
    seg: store.Segment,
    res: Rtl433Result,
    index: ChunkIndex,
    version: str,
    packages_by_start: dict[int, store.PackageRecord],
) -> list[store.MessageRecord]:
    out = []
    for m in res.messages:
        t0 = _abs_ns(seg, m.offset_samples)
        pkg = packages_by_start.get(t0)
        if pkg is not None:
            t1, lo, hi = pkg.t_end_ns, pkg.freq_lower_hz, pkg.freq_upper_hz
        else:  # no package reported at its offset: one sample long, rtl_433's frequencies
            t1 = _abs_ns(seg, m.offset_samples + 1)
            lo, hi = _band_around(seg.center_freq_hz, [m.freq_hz, m.freq2_hz])
        first_seq, last_seq = index.require(t0, t1)
        out.append(
            store.MessageRecord(
                t0,
                t1,
                m.freq_hz,
                m.freq2_hz,
                lo,
                hi,
                m.model,
                m.device_id,
                m.channel,
                m.modulation,
                m.rssi_db,
                m.snr_db,
                m.noise_db,
                m.fields,
                first_seq,
                last_seq,
                version,
            )
        )
    return out


def packages_for_labels(db, partition_key: str, *, executable: str | None = None) -> tuple[list, str]:
    """The partition's decoder packages for training labels, and where they came from: the
    stored decode when it is newer than the window's load ("stored"), else a fresh rtl_433 run
    ("decoded now"; stored nothing). DecodeError when neither is possible."""
    conn = db.conn
    run = store.decode_run(conn, partition_key)
    loaded_ns = store.window_loaded_ns(conn, partition_key)
    if run is not None and (loaded_ns is None or run.decoded_ns >= loaded_ns):
        return store.packages(conn, partition_key), f"stored decode ({DECODER} {run.decoder_version})"
    out = decode_window(db, partition_key, executable=executable)
    return list(out.packages), f"decoded now ({DECODER} {out.run.decoder_version})"
