"""Replay recordings: raw cu8 files (rtl_sdr / rtl_433 style) and SigMF recordings.

Unpaced by default (as fast as the disk allows; cu8 bytes are yielded exactly as in the
file), or paced by the sample clock with ``realtime=True``. Ends at end of file unless
``loop=True``; a loop continues the sample clock (no gap, times keep increasing).

Times: the first sample is stamped at ``start_ns`` if given (``file://PATH?start=ISO``), else
at the recording's SigMF ``core:datetime``, else (a raw cu8 file, or SigMF without one) at the
open time for a real-time replay and at the open time less the recording's length for an
unpaced one, so that an unpaced replay never runs into the future of the wall clock (the
capture service holds back a loop that catches up with it).
"""

import logging
import math
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sdr_assets.capture.base import DEFAULT_CHUNK_SAMPLES, Event, Source
from sdr_assets.errors import ConfigError, SourceError
from sdr_assets.records import (
    INT64_MAX,
    MAX_SAMPLE_RATE_HZ,
    NS_PER_S,
    STORABLE_TIMES,
    Chunk,
    Gap,
    SourceInfo,
    describe_time_ns,
    samples_to_ns,
    storable_time_ns,
)
from sdr_assets.sigmf import (
    annotation_record,
    describe_conversion,
    is_sigmf_path,
    parse_sigmf_meta,
    path_exists,
    sigmf_paths,
    to_cu8,
)

log = logging.getLogger("sdr_assets.capture")

_SCALE = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9}
_TOKEN_RE = re.compile(r"^(\d+(?:\.\d+)?)([kKmMgG]?)(hz|sps)?$", re.IGNORECASE)
_OTHER_RAW = (".cs8", ".cs16", ".cs32", ".cf32", ".cf64", ".s16", ".s8", ".u16", ".f32", ".am", ".fm", ".wav", ".sigmf")


def parse_rtl433_filename(name: str) -> tuple[float | None, float | None]:
    """(center_freq_hz, sample_rate_hz) from rtl_433's file-name convention, None if absent.

    The last one or two ``_``-separated tokens of the stem that are a number with a unit
    are read, as rtl_433 does: ``M``/``G``/``Hz``/``kHz``/``MHz`` -> centre, ``k``/``sps``/
    ``ksps``/``Msps`` -> rate. ``NAME_433.92M_250k.cu8`` is 433.92 MHz at 250 kS/s,
    ``_868.3M_1024k`` likewise. Two ``M``/``G`` numbers are centre then rate
    (``NAME_100M_2.4M.cu8``: 100 MHz at 2.4 MS/s); a lone ``_2.4M`` is a centre."""
    stem = Path(name).name
    if "." in stem:
        stem = stem.rsplit(".", 1)[0]
    tokens: list[tuple[float, str]] = []  # (value, "freq" | "rate" | "freq?")
    for tok in reversed(stem.split("_")):
        m = _TOKEN_RE.match(tok)
        if m is None or not (m.group(2) or m.group(3)) or len(tokens) == 2:
            break
        scale, unit = m.group(2).lower(), (m.group(3) or "").lower()
        value = float(m.group(1)) * _SCALE[scale]
        if not math.isfinite(value):
            break
        if unit == "sps" or (not unit and scale == "k"):
            kind = "rate"
        elif unit == "hz":
            kind = "freq"
        else:
            kind = "freq?"  # M or G alone: a centre, unless it follows another centre
        tokens.insert(0, (value, kind))
    if len(tokens) == 2 and tokens[0][1].startswith("freq") and tokens[1][1] == "freq?":
        return tokens[0][0], tokens[1][0]
    center = rate = None
    for value, kind in tokens:
        if kind == "rate":
            rate = value
        else:
            center = value
    return center, rate


@dataclass(frozen=True)
class _Segment:
    start: int  # first sample (in the data file)
    end: int
    center_freq_hz: float
    t_rel_ns: int  # time of `start` relative to t0, in one pass
    gap_before: int  # samples missing before this segment (recording discontinuity)


class FileSource(Source):
    """A raw cu8 file or a SigMF recording (``.sigmf-meta``, ``.sigmf-data`` or base name)."""

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        center_freq_hz: float | None = None,
        sample_rate_hz: float | None = None,
        gain_db: float | None = None,
        realtime: bool = False,
        loop: bool = False,
        chunk_samples: int = DEFAULT_CHUNK_SAMPLES,
        start_ns: int | None = None,
        uri: str | None = None,
    ) -> None:
        super().__init__()
        if int(chunk_samples) < 1:
            raise ConfigError(f"chunk_samples must be >= 1, got {chunk_samples!r}")
        self.path = expand_path(path)
        self.center_freq_hz, self.sample_rate_hz = center_freq_hz, sample_rate_hz
        self.gain_db, self.realtime, self.loop = gain_db, bool(realtime), bool(loop)
        self.chunk_samples = int(chunk_samples)
        self.start_ns = start_ns
        self.uri = uri or f"file://{self.path}"
        self._file = None
        self._stop_event = threading.Event()

    # ---- open: validate everything first, then acquire the file handle -------------------
    def expected_samples(self) -> int | None:
        n = getattr(self, "_n_samples", None)
        return None if self.loop or n is None else int(n)

    def open(self) -> SourceInfo:
        self.close()  # re-opening starts again from the first sample
        self._stopping = False
        self._stop_event.clear()
        if is_sigmf_path(self.path):
            info, data_path = self._plan_sigmf()
        else:
            info, data_path = self._plan_cu8()
        try:
            self._file = open(data_path, "rb", buffering=0)
        except OSError as exc:
            raise SourceError(f"cannot read {data_path} ({exc.strerror}); check the path and its permissions") from None
        self._data_path = data_path
        self.info = info
        return info

    def _plan_cu8(self) -> tuple[SourceInfo, Path]:
        p = self.path
        if p.suffix.lower() in _OTHER_RAW:
            raise ConfigError(
                f"{p}: raw {p.suffix} files are not supported; convert to cu8 "
                "(interleaved uint8 I/Q) or wrap it in a SigMF recording"
            )
        size = _size(p)
        if size % 2:
            raise SourceError(
                f"{p} has an odd number of bytes ({size}), which is not whole "
                "cu8 I/Q pairs; it is truncated or not cu8: trim the last byte "
                "or check the format"
            )
        name_freq, name_rate = parse_rtl433_filename(p.name)
        rate = self.sample_rate_hz if self.sample_rate_hz is not None else name_rate
        if rate is None:
            raise ConfigError(
                f"{p.name}: sample rate unknown; pass --sample-rate-hz (e.g. "
                "--sample-rate-hz 250000) or name the file like "
                "NAME_433.92M_250k.cu8 (rtl_433's convention)"
            )
        rate = _positive_rate(rate)
        freq = self.center_freq_hz if self.center_freq_hz is not None else name_freq
        meta = {"path": str(p.resolve()), "format": "cu8", "n_samples": size // 2, "duration_s": size / 2 / rate}
        if freq is None:
            log.warning("%s: centre frequency unknown (pass --center-freq-hz); using 0 Hz", p)
            meta["center_freq_known"] = False
            freq = 0.0
        self._datatype, self._sample_size, self._n_samples = "cu8", 2, size // 2
        self._rate = rate
        self._t0_ns = self._start(size // 2, rate)
        self._segments = [_Segment(0, size // 2, float(freq), 0, 0)]
        self._annotations = []
        return self._info(float(freq), rate, meta), p

    def _plan_sigmf(self) -> tuple[SourceInfo, Path]:
        meta_path, data_path = sigmf_paths(self.path)
        try:
            text = meta_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SourceError(
                f"SigMF metadata {meta_path} not found; pass the .sigmf-meta, "
                "the .sigmf-data or the base name of an existing recording"
            ) from None
        except (OSError, ValueError) as exc:  # ValueError: not UTF-8, or a NUL in the name
            raise SourceError(f"cannot read {meta_path} ({exc}); check the file") from None
        sm = parse_sigmf_meta(text, where=str(meta_path))
        if sm.dataset:
            data_path = meta_path.with_name(sm.dataset)
        for flag, ours, theirs in (
            ("--sample-rate-hz", self.sample_rate_hz, sm.sample_rate_hz),
            ("--center-freq-hz", self.center_freq_hz, sm.captures[0].center_freq_hz),
        ):
            if ours is not None and theirs is not None and float(ours) != float(theirs):
                raise ConfigError(
                    f"{flag} {ours:g} contradicts {meta_path.name} ({theirs:g}); "
                    f"drop {flag} (the recording says what it is)"
                )
        if not path_exists(data_path):
            raise SourceError(
                f"SigMF data file {data_path} is missing (the metadata "
                f"{meta_path.name} has no samples); copy it beside the metadata"
            )
        size = _size(data_path)
        ssize = sm.sample_size_bytes
        if size % ssize:
            raise SourceError(
                f"{data_path} holds {size} bytes, not a multiple of the "
                f"{ssize}-byte {sm.datatype} sample; it is truncated or the "
                "core:datatype is wrong"
            )
        rate, n = sm.sample_rate_hz, size // ssize
        default_freq = self.center_freq_hz if self.center_freq_hz is not None else 0.0
        segs: list[_Segment] = []
        t_first = sm.captures[0].datetime_ns
        t0 = t_first if t_first is not None else time.time_ns()
        for i, c in enumerate(sm.captures):
            end = sm.captures[i + 1].sample_start if i + 1 < len(sm.captures) else n
            start, end = min(c.sample_start, n), min(end, n)
            freq = (
                c.center_freq_hz
                if c.center_freq_hz is not None
                else (segs[-1].center_freq_hz if segs else default_freq)
            )
            t_rel = 0 if not segs else segs[-1].t_rel_ns + samples_to_ns(segs[-1].end - segs[-1].start, rate)
            gap = 0
            if segs and c.datetime_ns is not None:
                jump_ns = (c.datetime_ns - t0) - t_rel
                gap = max(0, round(jump_ns * rate / NS_PER_S))
                if gap:
                    t_rel = c.datetime_ns - t0
            segs.append(_Segment(start, end, float(freq), t_rel, gap))
        self._datatype, self._sample_size, self._n_samples = sm.datatype, ssize, n
        if t_first is None or self.start_ns is not None:  # (jumps stay relative to t0)
            t0 = self._start(n, rate)
        self._rate, self._t0_ns, self._segments = rate, t0, segs
        self._annotations = sm.annotations
        self._check_storable(meta_path)
        meta = {
            "path": str(data_path.resolve()),
            "format": "sigmf",
            "n_samples": n,
            "duration_s": n / rate,
            "sigmf": {"datatype": sm.datatype, "version": sm.version, **sm.extra},
        }
        if self.start_ns is not None:
            meta["t0_from"] = "start= in the source URI"
        elif sm.captures[0].datetime_ns is None:
            meta["t0_from"] = "open time (no core:datetime)"
        if self.center_freq_hz is None and all(c.center_freq_hz is None for c in sm.captures):
            log.warning("%s: no core:frequency (pass --center-freq-hz); using 0 Hz", meta_path)
            meta["center_freq_known"] = False
        if sm.datatype != "cu8":
            meta["converted_from"] = sm.datatype
            meta["conversion"] = describe_conversion(sm.datatype)
        return self._info(segs[0].center_freq_hz, rate, meta), data_path

    def _check_storable(self, meta_path: Path) -> None:
        """Refuse, before a sample is read, a recording whose times or counts the hot DB cannot
        hold (a core:datetime in the year 9999 or 0001, an annotation 2**62 samples on)."""

        def refuse(what: str) -> SourceError:
            return SourceError(
                f"{meta_path}: {what}, outside the times the hot DB can store "
                f"({STORABLE_TIMES}); fix the SigMF metadata"
            )

        last = self._segments[-1]
        t_end = self._t0_ns + last.t_rel_ns + samples_to_ns(last.end - last.start, self._rate)
        if not (storable_time_ns(self._t0_ns) and storable_time_ns(t_end)):
            raise refuse(
                f"its samples would lie at {describe_time_ns(self._t0_ns)} .. {describe_time_ns(t_end)} (core:datetime)"
            )
        if any(seg.gap_before > INT64_MAX for seg in self._segments):
            raise refuse("a core:datetime jump makes more lost samples than can be counted")
        for a in self._annotations:
            rec = self._annotation_at(a, self._t0_ns)
            if not (storable_time_ns(rec.t_start_ns) and storable_time_ns(rec.t_end_ns)):
                raise refuse(
                    f"the annotation at core:sample_start {a.sample_start} (core:sample_count "
                    f"{a.sample_count}) would lie at {describe_time_ns(rec.t_start_ns)} .. "
                    f"{describe_time_ns(rec.t_end_ns)}"
                )

    def _start(self, n_samples: int, rate: float) -> int:
        """The first sample's time when the recording does not say: ``start_ns``, else now
        for a real-time replay, else now less the recording's length (an unpaced replay
        then ends at the wall clock instead of running ahead of it)."""
        if self.start_ns is not None:
            return self.start_ns
        now_ns = time.time_ns()
        return now_ns if self.realtime else now_ns - samples_to_ns(n_samples, rate)

    def _info(self, freq: float, rate: float, meta: dict) -> SourceInfo:
        if self._n_samples == 0:
            raise SourceError(
                f"{self.path} holds no samples; there is nothing to capture "
                "(check that the recording was written completely)"
            )
        return SourceInfo(
            uri=self.uri,
            kind="file",
            center_freq_hz=freq,
            sample_rate_hz=rate,
            gain_db=self.gain_db,
            realtime=self.realtime,
            meta=meta,
        )

    # ---- iteration ------------------------------------------------------------------------
    def stop(self) -> None:
        super().stop()
        self._stop_event.set()

    def events(self) -> Iterator[Event]:
        if self._file is None:
            raise SourceError("FileSource.events() before open(); call open() first")
        rate, f = self._rate, self._file
        pass_ns = self._segments[-1].t_rel_ns + samples_to_ns(self._segments[-1].end - self._segments[-1].start, rate)
        wall0 = time.monotonic()
        emitted = 0  # samples yielded so far, all passes (for realtime pacing)
        pass_idx = 0
        while not self._stopping:
            t_pass = self._t0_ns + pass_idx * pass_ns
            ann_i = 0
            f.seek(0)
            for seg in self._segments:
                if seg.gap_before:
                    yield Gap(
                        t_start_ns=t_pass + seg.t_rel_ns - samples_to_ns(seg.gap_before, rate),
                        n_samples_lost=seg.gap_before,
                        sample_rate_hz=rate,
                        cause="recording_gap",
                        detail="SigMF capture core:datetime jumps ahead of the sample clock",
                    )
                pos = seg.start
                f.seek(pos * self._sample_size)
                while pos < seg.end:
                    if self._stopping:
                        return
                    n = min(self.chunk_samples, seg.end - pos)
                    raw = _read_exact(f, n * self._sample_size, self._data_path)
                    iq = raw if self._datatype == "cu8" else to_cu8(raw, self._datatype)
                    ann_i, anns = self._annotations_before(ann_i, pos + n, t_pass)
                    yield from anns
                    emitted += n
                    if self.realtime:
                        delay = wall0 + emitted / rate - time.monotonic()
                        if delay > 0 and self._stop_event.wait(delay):
                            return
                    yield Chunk(
                        t_start_ns=t_pass + seg.t_rel_ns + samples_to_ns(pos - seg.start, rate),
                        center_freq_hz=seg.center_freq_hz,
                        sample_rate_hz=rate,
                        gain_db=self.gain_db,
                        iq=iq,
                    )
                    pos += n
            if not self.loop:
                _, anns = self._annotations_before(ann_i, float("inf"), t_pass)
                yield from anns  # annotations past the end of the data
                return
            pass_idx += 1

    def _annotations_before(self, i: int, end_sample, t_pass: int):
        out = []
        while i < len(self._annotations) and self._annotations[i].sample_start < end_sample:
            out.append(self._annotation_at(self._annotations[i], t_pass))
            i += 1
        return i, out

    def _annotation_at(self, a, t_pass: int):
        """The SigMF annotation ``a`` as a record, in the pass of the file starting at ``t_pass``."""
        seg = next((s for s in reversed(self._segments) if s.start <= a.sample_start), self._segments[0])
        t = t_pass + seg.t_rel_ns + samples_to_ns(a.sample_start - seg.start, self._rate)
        return annotation_record(a, t, self._rate, seg.center_freq_hz, max(self._n_samples - a.sample_start, 0))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def expand_path(path: str | os.PathLike) -> Path:
    """``~`` and ``~user`` expanded where they can be; otherwise the path as written."""
    try:
        return Path(path).expanduser()
    except (RuntimeError, ValueError):  # no such user, no home, a NUL: keep it literal
        return Path(path)


def _size(p: Path) -> int:
    try:
        st = p.stat()
    except FileNotFoundError:
        raise SourceError(f"{p} not found; check the path (relative paths start from {Path.cwd()})") from None
    except (OSError, ValueError) as exc:
        raise SourceError(f"cannot read {p} ({exc}); check the path") from None
    if not p.is_file():
        raise SourceError(f"{p} is not a regular file; pass a cu8 file or a SigMF recording")
    return st.st_size


def _positive_rate(rate) -> float:
    try:
        r = float(rate)
    except (TypeError, ValueError):
        r = float("nan")
    if not 1.0 <= r <= MAX_SAMPLE_RATE_HZ:
        raise ConfigError(f"sample rate {rate!r} must be a number of Hz from 1 to {MAX_SAMPLE_RATE_HZ:g}, e.g. 250000")
    return r


def _read_exact(f, n_bytes: int, path: Path) -> bytes:
    data = f.read(n_bytes)
    while len(data) < n_bytes:  # a short read on a regular file: keep reading, or it shrank
        more = f.read(n_bytes - len(data))
        if not more:
            raise SourceError(f"{path} shrank while being read; do not modify a recording that is being replayed")
        data += more
    return data
