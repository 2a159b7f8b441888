"""SigMF, the one place the format lives: parse ``.sigmf-meta`` (strictly, one clear error per
problem), convert sample formats to cu8, build the metadata documents (:func:`global_meta`,
:func:`capture_item`, :func:`annotation_item`, :func:`meta_text`) and write cu8 recordings
(:func:`write_sigmf`), all at one :data:`SIGMF_VERSION`.

Used by the file replay (:class:`sdr_assets.capture.file.FileSource` reads through it) and by the
partition/span export (``sdr_assets.sigmf.export`` writes through it). This module imports only
records, errors and (lazily) dsp, so every part may use it; export.py also reads the analysis DB
through store. The pure parts can be tested and fuzzed without files.
"""

import calendar
import datetime
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sdr_assets.errors import SourceError
from sdr_assets.records import MAX_SAMPLE_RATE_HZ, NS_PER_S, Annotation, utc_iso

SIGMF_VERSION = "1.2.0"  # the version every document we write declares (core:extensions, core:global_index)
META_SUFFIX = ".sigmf-meta"
DATA_SUFFIX = ".sigmf-data"

_DATATYPE_RE = re.compile(r"^c(f64|f32|i32|i16|u32|u16|i8|u8)(_le|_be)?\Z")  # \Z: "cu8\n" is not cu8
_COMPONENT_DTYPES = {
    "f64": "f8",
    "f32": "f4",
    "i32": "i4",
    "i16": "i2",
    "u32": "u4",
    "u16": "u2",
    "i8": "i1",
    "u8": "u1",
}
_DATETIME_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9})\d*)?(Z|[+-]\d{2}:?\d{2})?\Z")


@dataclass(frozen=True)
class SigmfCapture:
    sample_start: int
    center_freq_hz: float | None
    datetime_ns: int | None


@dataclass(frozen=True)
class SigmfAnnotation:
    sample_start: int
    sample_count: int | None  # None: to the end of the recording
    freq_lower_hz: float | None  # both edges or neither (neither: the full band)
    freq_upper_hz: float | None
    label: str


@dataclass(frozen=True)
class SigmfMeta:
    datatype: str  # as written, e.g. "ci16_le"
    sample_rate_hz: float
    version: str
    captures: list[SigmfCapture]
    annotations: list[SigmfAnnotation]
    dataset: str | None = None  # core:dataset (a non-conforming data file name)
    extra: dict = field(default_factory=dict)  # author/description/hw, kept as metadata

    @property
    def sample_size_bytes(self) -> int:
        return datatype_sample_size(self.datatype, self.datatype)


def _bad(where: str, what: str) -> SourceError:
    return SourceError(f"{where}: {what}; fix the SigMF metadata (see sigmf.org, core namespace)")


def datatype_sample_size(datatype: str, where: str = "SigMF") -> int:
    """Bytes per complex sample for a SigMF complex datatype (``cu8`` -> 2, ``cf32_le`` -> 8)."""
    m = _DATATYPE_RE.match(datatype) if isinstance(datatype, str) else None
    if m is None:
        raise _unsupported(where, datatype)
    return 2 * np.dtype(_COMPONENT_DTYPES[m.group(1)]).itemsize


def _unsupported(where: str, datatype) -> SourceError:
    return SourceError(
        f"{where}: core:datatype {datatype!r} is not supported; only complex types are "
        "(cu8, ci8, ci16_le, cu16_le, ci32_le, cu32_le, cf32_le, cf64_le, or _be); "
        "convert the recording to one of them"
    )


def to_cu8(raw: bytes, datatype: str) -> bytes:
    """Convert interleaved I/Q in a SigMF complex ``datatype`` to cu8 bytes.

    The project's cu8 convention (``sdr_assets.dsp.iq``: ``x = (u - 127.5) / 127.5``):
    ci8, ci16 and cf32 go through ``dsp.iq``'s converters; the other types are scaled the
    same way here (full scale -> cu8 full scale, rounded, clipped). See
    :func:`describe_conversion`."""
    from sdr_assets.dsp import iq

    m = _DATATYPE_RE.match(datatype)
    if m is None:
        raise _unsupported("SigMF", datatype)
    comp, big = m.group(1), m.group(2) == "_be"
    if comp == "u8":
        return bytes(raw)
    if comp == "i8":
        return iq.ci8_to_cu8(raw)[0].tobytes()
    if comp == "i16":
        return iq.ci16_to_cu8(raw, big_endian=big)[0].tobytes()
    if comp == "f32":
        return iq.cf32_to_cu8(raw, big_endian=big)[0].tobytes()
    dt = np.dtype(_COMPONENT_DTYPES[comp]).newbyteorder(">" if big else "<")
    v = np.frombuffer(raw, dtype=dt).astype(np.float64)
    if comp == "f64":
        v = np.nan_to_num(v, nan=0.0, posinf=1.0, neginf=-1.0)
    else:  # integers: full scale -> [-1, 1); unsigned types are offset binary
        half = float(1 << (dt.itemsize * 8 - 1))
        v = (v - half if comp.startswith("u") else v) / half
    y = np.floor(v * iq.CU8_SCALE + iq.CU8_OFFSET + 0.5)
    return np.clip(y, 0, 255).astype(np.uint8).tobytes()


def describe_conversion(datatype: str) -> str:
    """One line saying how :func:`to_cu8` converts ``datatype`` (kept in SourceInfo.meta)."""
    from sdr_assets.dsp import iq

    m = _DATATYPE_RE.match(datatype)
    if m is None:
        raise _unsupported("SigMF", datatype)
    comp, big = m.group(1), m.group(2) == "_be"
    if comp == "u8":
        return "cu8 stored as is"
    if comp == "i8":
        return iq.ci8_to_cu8(b"")[1]
    if comp == "i16":
        return iq.ci16_to_cu8(b"", big_endian=big)[1]
    if comp == "f32":
        return iq.cf32_to_cu8(b"", big_endian=big)[1]
    return (
        f"{datatype} -> cu8: u = round(v/full_scale*127.5 + 127.5), clipped (unsigned types offset by half scale first)"
    )


def parse_datetime_ns(text, where: str = "SigMF") -> int:
    """ISO 8601 (``2024-05-01T12:00:00.123456789Z``) to integer ns since the epoch (UTC).

    Any number of fraction digits is accepted (beyond 9 truncated); no offset means UTC."""
    m = _DATETIME_RE.match(text) if isinstance(text, str) else None
    if m is None:
        raise _bad(where, f"core:datetime {text!r} is not ISO 8601 like 2024-05-01T12:00:00.5Z")
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    frac, tz = m.group(7) or "", m.group(8) or "Z"
    try:
        datetime.datetime(y, mo, d, h, mi, min(s, 59))  # validates month/day ranges
        secs = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))
    except (ValueError, OverflowError):
        raise _bad(where, f"core:datetime {text!r} is not a valid date/time") from None
    offset_s = 0
    if tz != "Z":
        sign = -1 if tz[0] == "-" else 1
        digits = tz[1:].replace(":", "")
        offset_s = sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return (secs - offset_s) * NS_PER_S + int(frac.ljust(9, "0"))


def format_datetime_ns(t_ns: int) -> str:
    """Integer ns since the epoch -> ISO 8601 UTC with nanoseconds (SigMF core:datetime)."""
    return utc_iso(t_ns, digits=9)


_INT_MAX = 2**62


def _number(obj: dict, key: str, where: str, *, integer=False, required=False, lo: float = -1e15, hi: float = 1e15):
    """obj[key] as an int (non-negative, < 2**62) or a finite float in [lo, hi]."""
    if key not in obj:
        if required:
            raise _bad(where, f"{key} is missing")
        return None
    v = obj[key]
    if integer:
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < _INT_MAX:
            return v
        raise _bad(where, f"{key} must be a non-negative integer, got {v!r}")
    if isinstance(v, int | float) and not isinstance(v, bool):
        try:
            f = float(v)
        except OverflowError:
            f = math.inf
        if math.isfinite(f) and lo <= f <= hi:
            return f
    raise _bad(where, f"{key} must be a number from {lo:g} to {hi:g}, got {v!r}")


def parse_sigmf_meta(text: str, where: str = "SigMF metadata") -> SigmfMeta:
    """Parse and validate the text of a ``.sigmf-meta`` file (raises SourceError)."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _bad(where, f"invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except (RecursionError, ValueError) as exc:
        raise _bad(where, f"invalid JSON ({type(exc).__name__})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("global"), dict):
        raise _bad(where, 'the top level must be an object with a "global" object')
    g = doc["global"]
    datatype = g.get("core:datatype")
    if datatype is None:
        raise _bad(where, 'global core:datatype is missing (e.g. "cu8")')
    if not isinstance(datatype, str) or _DATATYPE_RE.match(datatype) is None:
        raise _unsupported(where, datatype)
    rate = _number(g, "core:sample_rate", f"{where} global", required=True, lo=1.0, hi=MAX_SAMPLE_RATE_HZ)
    version = g.get("core:version", "")
    if not isinstance(version, str):
        raise _bad(where, f"global core:version must be a string, got {version!r}")
    if g.get("core:num_channels", 1) != 1:
        raise _bad(where, "only single-channel recordings (core:num_channels 1) are supported")
    dataset = g.get("core:dataset")
    if dataset is not None and (
        not isinstance(dataset, str) or not dataset or "/" in dataset or "\\" in dataset or dataset in (".", "..")
    ):
        raise _bad(where, f"global core:dataset must be a file name, got {dataset!r}")
    if g.get("core:metadata_only") is True:
        raise _bad(where, "core:metadata_only is true: this recording holds no samples")

    raw_caps = doc.get("captures", [])
    if not isinstance(raw_caps, list) or not all(isinstance(c, dict) for c in raw_caps):
        raise _bad(where, '"captures" must be a list of objects')
    captures = []
    for i, c in enumerate(raw_caps):
        w = f"{where} captures[{i}]"
        if c.get("core:header_bytes", 0) not in (0, None):
            raise _bad(w, "core:header_bytes is not supported")
        start = _number(c, "core:sample_start", w, integer=True) or 0
        freq = _number(c, "core:frequency", w)
        dt = c.get("core:datetime")
        t_ns = None if dt is None else parse_datetime_ns(dt, w)
        if captures and start <= captures[-1].sample_start:
            raise _bad(w, "captures must be in increasing core:sample_start order")
        captures.append(SigmfCapture(start, freq, t_ns))
    if not captures:
        captures = [SigmfCapture(0, None, None)]
    elif captures[0].sample_start != 0:  # the first capture also describes what precedes it
        c0 = captures[0]
        t_ns = None if c0.datetime_ns is None else c0.datetime_ns - int(round(c0.sample_start * NS_PER_S / rate))
        captures[0] = SigmfCapture(0, c0.center_freq_hz, t_ns)

    raw_ann = doc.get("annotations", [])
    if not isinstance(raw_ann, list) or not all(isinstance(a, dict) for a in raw_ann):
        raise _bad(where, '"annotations" must be a list of objects')
    annotations = []
    for i, a in enumerate(raw_ann):
        w = f"{where} annotations[{i}]"
        start = _number(a, "core:sample_start", w, integer=True, required=True)
        count = _number(a, "core:sample_count", w, integer=True)
        lo = _number(a, "core:freq_lower_edge", w)
        hi = _number(a, "core:freq_upper_edge", w)
        if (lo is None) != (hi is None):
            raise _bad(w, "core:freq_lower_edge and core:freq_upper_edge go together (give both or neither)")
        if lo is not None and lo > hi:
            raise _bad(w, f"core:freq_lower_edge {lo} is above core:freq_upper_edge {hi}")
        label = a.get("core:label", "")
        if not isinstance(label, str) or not _is_utf8(label):
            raise _bad(w, f"core:label must be a string (Unicode text), got {label!r}")
        annotations.append(SigmfAnnotation(start, count, lo, hi, label))
    annotations.sort(key=lambda x: x.sample_start)
    extra = {
        k: v
        for k, v in g.items()
        if k in ("core:author", "core:description", "core:hw", "core:recorder") and isinstance(v, str)
    }
    return SigmfMeta(datatype, rate, version, captures, annotations, dataset, extra)


def _is_utf8(text: str) -> bool:
    """False for text JSON can hold but a database cannot (a lone surrogate, "\\ud800")."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def sigmf_paths(path: str | Path) -> tuple[Path, Path]:
    """(meta, data) paths for a ``.sigmf-meta``, a ``.sigmf-data`` or a base name."""
    p = Path(path)
    name = p.name
    if name.endswith((META_SUFFIX, DATA_SUFFIX)):
        name = name.rsplit(".", 1)[0]
    if not name:
        raise SourceError(
            f"{path}: a SigMF recording needs a base name, e.g. dir/recording "
            "(dir/recording.sigmf-meta + dir/recording.sigmf-data)"
        )
    return p.with_name(name + META_SUFFIX), p.with_name(name + DATA_SUFFIX)


def is_sigmf_path(path: str | Path) -> bool:
    p = Path(path)
    if p.name.endswith((META_SUFFIX, DATA_SUFFIX)):
        return True
    return not path_exists(p) and path_exists(sigmf_paths(p)[0])


def path_exists(p: Path) -> bool:
    """Path.exists() that says False (not an exception) for impossible names (NUL, too long)."""
    try:
        return p.exists()
    except (OSError, ValueError):
        return False


def global_meta(
    sample_rate_hz: float,
    *,
    description: str = "",
    author: str = "",
    sha512: str | None = None,
    extensions=(),
    extra: dict | None = None,
) -> dict:
    """The ``global`` object of a cu8 recording we write (one channel, recorder sdr_assets)."""
    glob = {
        "core:datatype": "cu8",
        "core:sample_rate": float(sample_rate_hz),
        "core:version": SIGMF_VERSION,
        "core:num_channels": 1,
        "core:recorder": "sdr_assets",
    }
    if sha512 is not None:
        glob["core:sha512"] = sha512
    if description:
        glob["core:description"] = description
    if author:
        glob["core:author"] = author
    if extensions:
        glob["core:extensions"] = [dict(e) for e in extensions]
    glob.update(extra or {})
    return glob


def capture_item(
    sample_start: int, center_freq_hz: float, datetime_ns: int | None = None, *, global_index: int | None = None
) -> dict:
    """One ``captures`` entry: where a segment starts in the data file (and in the stream), its
    centre and, where known, the UTC time of its first sample."""
    item = {"core:sample_start": int(sample_start)}
    if global_index is not None:
        item["core:global_index"] = int(global_index)
    item["core:frequency"] = float(center_freq_hz)
    if datetime_ns is not None:
        item["core:datetime"] = format_datetime_ns(datetime_ns)
    return item


def annotation_item(
    sample_start: int, sample_count: int, freq_lower_hz: float, freq_upper_hz: float, label: str
) -> dict:
    """The core fields of one ``annotations`` entry (both RF edges, as SigMF wants them)."""
    return {
        "core:sample_start": int(sample_start),
        "core:sample_count": int(sample_count),
        "core:freq_lower_edge": float(freq_lower_hz),
        "core:freq_upper_edge": float(freq_upper_hz),
        "core:label": str(label),
    }


def meta_text(doc: dict) -> str:
    """The ``.sigmf-meta`` file's text for ``{"global": ..., "captures": [...], "annotations": [...]}``."""
    return json.dumps(doc, indent=2) + "\n"


def write_sigmf(
    base_path: str | Path,
    cu8: bytes,
    sample_rate_hz: float,
    center_freq_hz: float,
    annotations=(),
    datetime_ns: int | None = None,
    *,
    description: str = "",
    author: str = "",
) -> tuple[Path, Path]:
    """Write a SigMF (:data:`SIGMF_VERSION`) cu8 recording ``BASE.sigmf-data`` + ``BASE.sigmf-meta``.

    ``annotations`` are :class:`Annotation` records with absolute times (ns since the
    epoch); the first sample is at ``datetime_ns``. Where ``datetime_ns`` is None, no
    core:datetime is written and annotation times count from the first sample (t = 0).
    Returns (meta_path, data_path)."""
    if len(cu8) % 2:
        raise SourceError(f"write_sigmf: {len(cu8)} bytes is not whole cu8 I/Q pairs; pass an even number of bytes")
    meta_path, data_path = sigmf_paths(base_path)
    t0 = 0 if datetime_ns is None else int(datetime_ns)
    anns = []
    for a in sorted(annotations, key=lambda a: a.t_start_ns):
        start = max(0, round((a.t_start_ns - t0) * sample_rate_hz / NS_PER_S))
        end = max(start, round((a.t_end_ns - t0) * sample_rate_hz / NS_PER_S))
        item = annotation_item(start, end - start, a.freq_lower_hz, a.freq_upper_hz, a.label)
        if a.snr_db is not None:
            item["core:comment"] = f"snr_db={a.snr_db:.2f}"
        anns.append(item)
    meta_path.parent.mkdir(parents=True, exist_ok=True)
    data_path.write_bytes(bytes(cu8))
    meta_path.write_text(
        meta_text(
            {
                "global": global_meta(sample_rate_hz, description=description, author=author),
                "captures": [capture_item(0, center_freq_hz, datetime_ns)],
                "annotations": anns,
            }
        )
    )
    return meta_path, data_path


def annotation_record(
    a: SigmfAnnotation, t_start_ns: int, sample_rate_hz: float, center_freq_hz: float, n_samples_to_end: int
) -> Annotation:
    """A SigMF annotation as a records.Annotation (origin "sigmf"); ``t_start_ns`` is the
    absolute time of its first sample. No edges -> the full band around the centre."""
    count = n_samples_to_end if a.sample_count is None else a.sample_count
    duration_ns = int(round(max(count, 0) * NS_PER_S / sample_rate_hz))
    if a.freq_lower_hz is None:
        lo, hi = center_freq_hz - sample_rate_hz / 2, center_freq_hz + sample_rate_hz / 2
    else:
        lo, hi = a.freq_lower_hz, a.freq_upper_hz
    return Annotation(
        t_start_ns=t_start_ns,
        t_end_ns=t_start_ns + duration_ns,
        freq_lower_hz=lo,
        freq_upper_hz=hi,
        label=a.label,
        origin="sigmf",
    )
