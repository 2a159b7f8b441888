"""Source URIs -> Source objects (constructed, not opened).

synthetic://?seed=N&...   a simulated band (realtime by default)
file://PATH[?start=ISO]   a cu8 file or a SigMF recording (unpaced by default)
rtl_tcp://HOST:PORT       a remote rtl_tcp server (port 1234 by default)
rtlsdr://INDEX            a local RTL-SDR dongle over USB (index 0 by default)
"""

import math
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from sdr_assets.capture.base import DEFAULT_CHUNK_SAMPLES, Source, validate_sample_rate_hz
from sdr_assets.errors import ConfigError

DEFAULT_RTL_TCP_PORT = 1234
# Live radios need a tuning; these are the defaults when no flag gives one.
DEFAULT_CENTER_FREQ_HZ = 433.92e6
DEFAULT_SAMPLE_RATE_HZ = 2.4e6

SCHEMES = {
    "synthetic": "synthetic://?seed=1",
    "file": "file://recordings/NAME_433.92M_250k.cu8 or file:///abs/path/rec.sigmf-meta",
    "rtl_tcp": "rtl_tcp://192.168.1.20:1234",
    "rtlsdr": "rtlsdr://0",
}


def _accepted() -> str:
    return "; ".join(f"{k}:// (e.g. {v})" for k, v in SCHEMES.items())


def _freq(value, name: str = "center_freq_hz") -> float | None:
    if value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError, OverflowError):
        f = math.nan
    if not (math.isfinite(f) and 0 < f < 2**32):
        raise ConfigError(f"{name} {value!r} must be a frequency in Hz between 0 and 4.29e9, e.g. 433920000")
    return f


def _gain(value) -> float | None:
    if value is None:
        return None
    try:
        g = float(value)
    except (TypeError, ValueError, OverflowError):
        g = math.nan
    if not (math.isfinite(g) and -100 <= g <= 100):
        raise ConfigError(f"gain_db {value!r} must be a number of dB (e.g. 40.2), or omitted for automatic gain")
    return g


def _split_password(uri: str) -> tuple[str, str, str] | None:
    """(text before, password, text after) of a URI's ``user:password@`` part, else None."""
    if not isinstance(uri, str) or "://" not in uri:
        return None
    scheme, _, rest = uri.partition("://")
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    userinfo, at, hostport = rest[:end].rpartition("@")
    user, colon, password = userinfo.partition(":")
    if not (at and colon and password):
        return None
    return f"{scheme}://{user}:", password, f"@{hostport}{rest[end:]}"


def redact_uri(uri: str) -> str:
    """``uri`` with the password of a ``user:password@`` part shown as ``***`` (for every echo,
    log line and file that shows a URI): ``rtl_tcp://me:pw@host`` -> ``rtl_tcp://me:***@host``."""
    parts = _split_password(uri)
    return uri if parts is None else f"{parts[0]}***{parts[2]}"


def open_source(uri: str, **settings) -> Source:
    """Build (do not open) the Source a URI names; every bad part -> ConfigError (whose
    message never shows a password the URI holds)."""
    try:
        return _open_source(uri, **settings)
    except ConfigError as exc:
        parts = _split_password(uri)
        if parts is None:
            raise
        msg = str(exc).replace(uri, redact_uri(uri)).replace(f":{parts[1]}@", ":***@")
        raise ConfigError(msg) from None


def _open_source(
    uri: str,
    *,
    center_freq_hz: float | None = None,
    sample_rate_hz: float | None = None,
    gain_db: float | None = None,
    realtime: bool | None = None,
    loop: bool = False,
    chunk_samples: int = DEFAULT_CHUNK_SAMPLES,
) -> Source:
    if not isinstance(uri, str) or "://" not in uri:
        raise ConfigError(f"source {uri!r} is not a URI; accepted: {_accepted()}")
    scheme, _, rest = uri.partition("://")
    scheme = scheme.strip().lower()
    if not isinstance(chunk_samples, int) or isinstance(chunk_samples, bool) or not 1 <= chunk_samples <= 1 << 24:
        raise ConfigError(f"chunk_samples {chunk_samples!r} must be an integer 1..16777216")
    center_freq_hz, gain_db = _freq(center_freq_hz), _gain(gain_db)
    if scheme == "synthetic":
        return _synthetic(uri, rest, center_freq_hz, sample_rate_hz, gain_db, realtime, loop, chunk_samples)
    if scheme == "file":
        from sdr_assets.capture.file import FileSource

        if sample_rate_hz is not None and not (0 < _num(sample_rate_hz, "sample_rate_hz")):
            raise ConfigError(f"sample_rate_hz {sample_rate_hz!r} must be positive")
        path, start_ns = _file_path(uri, rest)
        return FileSource(
            path,
            center_freq_hz=center_freq_hz,
            sample_rate_hz=sample_rate_hz,
            gain_db=gain_db,
            realtime=bool(realtime),
            loop=loop,
            chunk_samples=chunk_samples,
            start_ns=start_ns,
            uri=uri,
        )
    if scheme in ("rtl_tcp", "rtlsdr"):
        if realtime is False:
            raise ConfigError(f"{scheme}:// is a live radio; it is always realtime (drop --no-realtime)")
        if loop:
            raise ConfigError(f"{scheme}:// is a live radio; --loop applies to files only")
        rate = validate_sample_rate_hz(DEFAULT_SAMPLE_RATE_HZ if sample_rate_hz is None else sample_rate_hz)
        freq = DEFAULT_CENTER_FREQ_HZ if center_freq_hz is None else center_freq_hz
        if scheme == "rtl_tcp":
            from sdr_assets.capture.rtltcp import RtlTcpSource

            host, port, ppm = parse_rtl_tcp_uri(uri)
            return RtlTcpSource(
                host,
                port,
                center_freq_hz=freq,
                sample_rate_hz=rate,
                gain_db=gain_db,
                ppm=ppm,
                chunk_samples=chunk_samples,
                uri=uri,
            )
        from sdr_assets.capture.usb import RtlSdrSource

        return RtlSdrSource(
            _rtlsdr_index(uri, rest),
            center_freq_hz=freq,
            sample_rate_hz=rate,
            gain_db=gain_db,
            chunk_samples=chunk_samples,
            uri=uri,
        )
    raise ConfigError(f"unknown source scheme {scheme + '://'!r} in {uri!r}; accepted: {_accepted()}")


def _num(value, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        v = math.nan
    if not math.isfinite(v):
        raise ConfigError(f"{name} {value!r} must be a finite number")
    return v


def _synthetic(uri, rest, center_freq_hz, sample_rate_hz, gain_db, realtime, loop, chunk_samples) -> Source:
    try:
        parts = urlsplit("//" + rest)
    except ValueError:  # e.g. an unbalanced "[" (IPv6 syntax)
        parts = None
    if parts is None or parts.netloc or parts.path not in ("", "/") or parts.fragment:
        raise ConfigError(
            f"{uri!r}: a synthetic URI has only a query, like synthetic://?seed=1 (got extra text before '?')"
        )
    if loop:
        raise ConfigError("synthetic:// never ends; --loop applies to files only")
    from sdr_assets.capture.synthetic import SyntheticSource, parse_synthetic_query

    kwargs = dict(parse_synthetic_query(parts.query))
    chunk_samples = kwargs.pop("chunk_samples", chunk_samples)  # the query may set it
    for key, flag in (("center_freq_hz", center_freq_hz), ("sample_rate_hz", sample_rate_hz), ("gain_db", gain_db)):
        if flag is None:
            continue
        if key in kwargs and kwargs[key] is not None and float(kwargs[key]) != float(flag):
            raise ConfigError(f"{uri!r} sets {key}={kwargs[key]} but the flag says {flag}; give it once")
        kwargs[key] = flag
    if "sample_rate_hz" in kwargs and kwargs["sample_rate_hz"] is not None:
        kwargs["sample_rate_hz"] = _num(kwargs["sample_rate_hz"], "sample_rate_hz")
    return SyntheticSource(
        realtime=True if realtime is None else bool(realtime), chunk_samples=chunk_samples, uri=uri, **kwargs
    )


def _file_path(uri: str, rest: str) -> tuple[Path, int | None]:
    """(path, start_ns) from ``file://PATH[?start=ISO]``; a ``?`` that is part of an existing
    file's name stays in the path."""
    if not rest or "\x00" in rest:
        raise ConfigError(f"{uri!r} names no file; use file://PATH, e.g. {SCHEMES['file']}")
    if rest.startswith("localhost/"):
        rest = rest[len("localhost") :]
    from sdr_assets.capture.file import expand_path
    from sdr_assets.sigmf import path_exists

    start_ns = None
    head, sep, query = rest.rpartition("?")
    if (
        sep
        and head
        and not path_exists(expand_path(rest))
        and not path_exists(Path(str(expand_path(rest)) + ".sigmf-meta"))
    ):
        try:
            pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            pairs = []  # not a query: part of the name
        if pairs:
            start_ns = _file_start(uri, pairs)
            rest = head
    return _existing_path(rest), start_ns


def _file_start(uri: str, pairs: list[tuple[str, str]]) -> int | None:
    from sdr_assets.errors import SourceError
    from sdr_assets.sigmf import parse_datetime_ns

    start_ns = None
    for key, value in pairs:
        if key != "start":
            raise ConfigError(
                f"{uri!r}: unknown option {key!r}; a file URI takes only "
                "?start=ISO-TIME, e.g. file://rec.cu8?start=2026-11-23T10:00:00Z"
            )
        try:
            start_ns = parse_datetime_ns(value)
        except SourceError:
            raise ConfigError(
                f"{uri!r}: start={value!r} must be an ISO 8601 UTC time like 2026-11-23T10:00:00Z"
            ) from None
    return start_ns


def _existing_path(rest: str) -> Path:
    from sdr_assets.capture.file import expand_path
    from sdr_assets.sigmf import path_exists

    p = expand_path(rest)
    if not path_exists(p) and "%" in rest:
        decoded = expand_path(unquote(rest))
        if path_exists(decoded) or path_exists(Path(str(decoded) + ".sigmf-meta")):
            p = decoded
    return p


def parse_rtl_tcp_uri(uri: str) -> tuple[str, int, int | None]:
    """``rtl_tcp://HOST[:PORT][?ppm=N]`` -> (host, port, ppm or None)."""
    _, _, rest = uri.partition("://")
    try:
        parts = urlsplit("//" + rest)
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise ConfigError(
            f"{uri!r}: bad port ({exc}); use rtl_tcp://HOST:PORT with PORT 1..65535, e.g. rtl_tcp://127.0.0.1:1234"
        ) from None
    if not host:
        raise ConfigError(f"{uri!r} names no host; use rtl_tcp://HOST:PORT, e.g. rtl_tcp://127.0.0.1:1234")
    if parts.username or parts.password or parts.path not in ("", "/") or parts.fragment:
        raise ConfigError(f"{uri!r}: only rtl_tcp://HOST:PORT[?ppm=N] is accepted")
    if port == 0:
        raise ConfigError(f"{uri!r}: port 0 is not a server port; use 1..65535 (rtl_tcp: 1234)")
    ppm = None
    try:
        query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise ConfigError(f"{uri!r}: bad query {parts.query!r}; only ?ppm=N is accepted") from None
    for key, value in query:
        if key != "ppm":
            raise ConfigError(f"{uri!r}: unknown option {key!r}; only ?ppm=N is accepted")
        try:
            ppm = int(value)
        except ValueError:
            raise ConfigError(f"{uri!r}: ppm={value!r} must be an integer, e.g. ppm=-2") from None
        if not -1000 <= ppm <= 1000:
            raise ConfigError(f"{uri!r}: ppm={ppm} is out of range -1000..1000")
    return host, DEFAULT_RTL_TCP_PORT if port is None else port, ppm


def _rtlsdr_index(uri: str, rest: str) -> int:
    text = rest.strip().rstrip("/")
    if text == "":
        return 0
    if not text.isascii() or not text.isdigit() or len(text) > 3:
        raise ConfigError(
            f"{uri!r}: the dongle index must be a small integer, e.g. rtlsdr://0 (`rtl_test` lists the dongles)"
        )
    return int(text)
