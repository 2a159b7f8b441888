"""rtl_433 run over cu8 samples streamed on its standard input: decoded messages and packages.

The command (``rtl433_argv``)::

    rtl_433 -c 0 -r cu8:- -f CENTRE -s RATE -F json -M level -M time:rel -A

``-c 0`` ignores any rtl_433.conf (a system config must not change what the product decodes or
send our samples to MQTT); ``-r cu8:-`` reads unsigned 8-bit interleaved IQ from stdin until EOF;
``-f``/``-s`` say the centre and the rate (rtl_433 does not resample: it works at the input rate,
so sample counts below are at ``RATE``). The ORDER matters: ``-f`` above 800 MHz resets the rate
to 1 MS/s, so ``-s`` must come after it (with ``-s 250000 -f 868300000`` every offset of a
250 kS/s recording comes out 4x too small). Samples go in through a pipe, never a temp file: the
caller's thread writes stdin (so a generator over a SQLite cursor is consumed in the thread that
opened it) while two threads drain stdout and stderr, so no pipe ever fills and blocks.

End of input: at EOF rtl_433 runs one extra flush block to close a package still open, and a
package closed there is reported one block (65536 samples) LATE (22.11: on the recordings, the
last packages of ``chuango_01`` and ``x10_01``, whose gap to the file's end is shorter than the
end-of-package gap, start past the file's end). So ``decode_cu8`` appends ``EOP_PADDING_S`` of
silence (cu8 128, amplitude 0) after the samples: every package then closes inside the padding
at its true place, and the 22 recordings give exactly the packages in their manifest.

What rtl_433 22.11 (Debian ``rtl-433``) prints, checked on the recordings in
``shared/data/rtl433``:

- stdout, one JSON object a line (``-F json``), e.g.::

    {"time" : "@0.122324s", "model" : "GT-WT02", "id" : 52, "channel" : 1, ...,
     "mod" : "ASK", "freq" : 433.892, "rssi" : -2.040, "snr" : 4.413, "noise" : -6.453}

  ``time`` (``-M time:rel``, the preset for stdin) is the position of the package's first
  pulse from the start of the input, in seconds with 6 decimals (so a sample offset is exact at
  250 kS/s and within one sample at 1.024 MS/s). ``-M level`` adds ``mod`` ("ASK" or "FSK"),
  the frequency in MHz (``freq`` for ASK; ``freq1`` and ``freq2`` for FSK), ``rssi``, ``snr``
  and ``noise`` in dB. ``id`` and ``channel`` are ints or strings ("B") depending on the model,
  and are absent for some models; they are kept here as strings. One package can give several
  identical messages (X10 repeats its code: 6 lines with one ``time``).
- stderr, with ``-A``, for EVERY package the pulse detector found, decoded or not::

    Detected OOK package\t@0.122324s
    Analyzing pulses...
    Total count:   38,  width: 203.56 ms\t\t(50890 S)
    ...
    RSSI: -2.0 dB SNR: 4.4 dB Noise: -6.5 dB
    Frequency offsets [F1, F2]:   -7361,      0\t(-28.1 kHz, +0.0 kHz)

  The ``@`` time is printed exactly as the message's ``time``: a message belongs to the package
  that starts at its offset (``Rtl433Message.length_samples`` comes from there; the JSON has no
  length). ``Total count`` is the number of pulses and the package width, first pulse to end of
  the last, in samples (``S``). ``F1``/``F2`` are offsets from the centre, in units of
  ``rate / 2 / 32767`` Hz (OOK: F2 = 0). ``-A`` does not change what is decoded: on the 22
  recordings the message counts with and without it are equal (64 messages, 72 packages).
- exit status 0 at the end of the input; 1 and a usage text for a bad option.

Offsets here are from the start of the samples given to ONE call: a caller streaming a
contiguous segment adds the segment's start time. Never glue two segments across a gap in one
call: rtl_433 would see one signal where two were.
"""

import functools
import json
import re
import shutil
import subprocess
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from sdr_assets.errors import DecodeError

DECODER = "rtl_433"
DEBIAN_PACKAGE = "rtl-433"
EXECUTABLE = "rtl_433"
NOT_FOUND = f"rtl_433 not found; install it: sudo apt-get install {DEBIAN_PACKAGE}"
# Silence after the input so a package open at EOF closes in it (rtl_433's end-of-package gap
# is at most 100 ms; 0.12 s sufficed on the recordings).
EOP_PADDING_S = 0.25
SILENCE_CU8 = 128

_VERSION_RE = re.compile(r"rtl_433 version (\S+)")
_DETECTED_RE = re.compile(r"^Detected (OOK|FSK) package\s+@(-?[0-9.]+)s")
_TOTAL_RE = re.compile(r"^Total count:\s*(\d+),\s*width:\s*[0-9.]+ ms\s*\(\s*(\d+) S\)")
_LEVEL_RE = re.compile(r"^RSSI:\s*(-?[0-9.]+) dB SNR:\s*(-?[0-9.]+) dB Noise:\s*(-?[0-9.]+) dB")
_FREQ_RE = re.compile(r"^Frequency offsets \[F1, F2\]:\s*(-?\d+),\s*(-?\d+)")
_TIME_RE = re.compile(r"^@(-?[0-9.]+)s$")
_STDERR_TAIL_LINES = 12


@dataclass(frozen=True)
class Rtl433Message:
    """One decoded message (one JSON line of rtl_433's stdout).

    offset_samples/offset_s: the package's first pulse, from the start of the input given to
    this run. length_samples: the package's width from the ``-A`` analysis (None where no
    package was reported at that offset). freq_hz: ``freq`` (ASK) or ``freq1`` (FSK) in Hz,
    freq2_hz the FSK space frequency. modulation: rtl_433's ``mod``, "ASK" or "FSK".
    fields: the whole JSON object as rtl_433 printed it."""

    offset_samples: int
    offset_s: float
    length_samples: int | None
    model: str
    device_id: str | None
    channel: str | None
    modulation: str | None
    freq_hz: float | None
    freq2_hz: float | None
    rssi_db: float | None
    snr_db: float | None
    noise_db: float | None
    fields: dict = field(hash=False, repr=False)

    @property
    def end_samples(self) -> int | None:
        return None if self.length_samples is None else self.offset_samples + self.length_samples


@dataclass(frozen=True)
class Rtl433Package:
    """One package rtl_433's pulse detector found (``-A`` on stderr), decoded or not.

    start/length in samples at the run's rate (start_s/length_s the same in seconds);
    modulation "OOK" or "FSK" (which pulse detector found it); n_pulses: ``Total count``;
    freq1/freq2_offset_hz: the estimated frequencies as offsets from the centre (OOK: only F1)."""

    start_samples: int
    length_samples: int
    start_s: float
    length_s: float
    modulation: str
    n_pulses: int
    freq1_offset_hz: float | None
    freq2_offset_hz: float | None
    rssi_db: float | None
    snr_db: float | None
    noise_db: float | None

    @property
    def end_samples(self) -> int:
        return self.start_samples + self.length_samples


@dataclass(frozen=True)
class Rtl433Result:
    """What one rtl_433 run over one contiguous stretch of samples gave."""

    messages: tuple[Rtl433Message, ...]
    packages: tuple[Rtl433Package, ...]
    version: str
    sample_rate_hz: float
    center_freq_hz: float
    n_samples: int  # complex samples fed
    argv: tuple[str, ...]

    def package_at(self, offset_samples: int) -> Rtl433Package | None:
        """The package starting at ``offset_samples`` (a message's offset), or None."""
        for p in self.packages:
            if p.start_samples == offset_samples:
                return p
        return None


def find_rtl433(executable: str | None = None) -> str:
    """Path of the rtl_433 executable (``executable``: a name on PATH or a path).

    Raises DecodeError naming the Debian package when it is missing."""
    path = shutil.which(executable or EXECUTABLE)
    if path is None:
        raise DecodeError(
            NOT_FOUND
            if executable in (None, EXECUTABLE)
            else f"rtl_433 not found at {executable!r}; install it: "
            f"sudo apt-get install {DEBIAN_PACKAGE}, or pass its path"
        )
    return path


@functools.lru_cache(maxsize=8)
def _version_of(path: str) -> str:
    try:
        proc = subprocess.run([path, "-V"], capture_output=True, timeout=30)
    except OSError as exc:
        raise DecodeError(
            f"cannot run {path}: {exc}; reinstall it: sudo apt-get install --reinstall {DEBIAN_PACKAGE}"
        ) from exc
    text = (proc.stdout + proc.stderr).decode("utf-8", "replace")
    m = _VERSION_RE.search(text)
    if m is None:
        raise DecodeError(
            f"{path} -V printed no 'rtl_433 version ...' line; is it rtl_433? "
            f"install it: sudo apt-get install {DEBIAN_PACKAGE}"
        )
    return m.group(1)


def rtl433_version(executable: str | None = None) -> str:
    """rtl_433's version as ``rtl_433 -V`` prints it, e.g. "22.11" (cached per executable)."""
    return _version_of(find_rtl433(executable))


def rtl433_argv(path: str, sample_rate_hz: float, center_freq_hz: float, extra_args: Sequence[str] = ()) -> list[str]:
    """The command line :func:`decode_cu8` runs (``path`` from :func:`find_rtl433`)."""
    return [
        path,
        "-c",
        "0",
        "-r",
        "cu8:-",
        "-f",
        str(int(round(center_freq_hz))),
        "-s",
        str(int(round(sample_rate_hz))),
        "-F",
        "json",
        "-M",
        "level",
        "-M",
        "time:rel",
        "-A",
        *extra_args,
    ]


def _str_or_none(value) -> str | None:
    return None if value is None else str(value)


def _float_or_none(value) -> float | None:
    return None if value is None else float(value)


def _mhz_to_hz(value) -> float | None:
    return None if value is None else round(float(value) * 1e6, 1)


def parse_message(line: str, sample_rate_hz: float) -> Rtl433Message:
    """One ``-F json -M level -M time:rel`` line -> Rtl433Message (length_samples None)."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DecodeError(f"rtl_433 printed a line that is not JSON: {line[:200]!r}") from exc
    if not isinstance(obj, dict) or "model" not in obj:
        raise DecodeError(f"rtl_433 printed JSON without a 'model': {line[:200]!r}")
    m = _TIME_RE.match(str(obj.get("time", "")))
    if m is None:
        raise DecodeError(f"rtl_433 message has no relative time '@S.SSSSSSs' (run with -M time:rel): {line[:200]!r}")
    offset_s = float(m.group(1))
    return Rtl433Message(
        offset_samples=int(round(offset_s * sample_rate_hz)),
        offset_s=offset_s,
        length_samples=None,
        model=str(obj["model"]),
        device_id=_str_or_none(obj.get("id")),
        channel=_str_or_none(obj.get("channel")),
        modulation=_str_or_none(obj.get("mod")),
        freq_hz=_mhz_to_hz(obj.get("freq", obj.get("freq1"))),
        freq2_hz=_mhz_to_hz(obj.get("freq2")),
        rssi_db=_float_or_none(obj.get("rssi")),
        snr_db=_float_or_none(obj.get("snr")),
        noise_db=_float_or_none(obj.get("noise")),
        fields=obj,
    )


class AnalysisParser:
    """Reads rtl_433's stderr line by line; collects the ``-A`` packages, keeps a tail of the
    other lines (for error messages)."""

    def __init__(self, sample_rate_hz: float) -> None:
        self.sample_rate_hz = float(sample_rate_hz)
        self.packages: list[Rtl433Package] = []
        self.tail: deque[str] = deque(maxlen=_STDERR_TAIL_LINES)
        self._pending: dict | None = None

    def feed(self, line: str) -> None:
        line = line.rstrip("\r\n")
        m = _DETECTED_RE.match(line)
        if m:
            self._finish()
            start_s = float(m.group(2))
            self._pending = {
                "modulation": m.group(1),
                "start_s": start_s,
                "start_samples": int(round(start_s * self.sample_rate_hz)),
            }
            return
        if self._pending is not None:
            if m := _TOTAL_RE.match(line):
                self._pending["n_pulses"], self._pending["length_samples"] = int(m[1]), int(m[2])
                return
            if m := _LEVEL_RE.match(line):
                self._pending["level"] = (float(m[1]), float(m[2]), float(m[3]))
                return
            if m := _FREQ_RE.match(line):
                unit_hz = self.sample_rate_hz / 2 / 32767  # rtl_433's fsk_f*_est scale
                f1, f2 = int(m[1]) * unit_hz, int(m[2]) * unit_hz
                fsk = self._pending["modulation"] == "FSK"
                self._pending["freqs"] = (round(f1, 1), round(f2, 1) if fsk else None)
                return
        if line and not line.startswith((" ", "\t", "[")):
            self.tail.append(line)

    def _finish(self) -> None:
        p, self._pending = self._pending, None
        if p is None or "length_samples" not in p:
            return  # a package header without a width: nothing to place
        rssi, snr, noise = p.get("level", (None, None, None))
        f1, f2 = p.get("freqs", (None, None))
        self.packages.append(
            Rtl433Package(
                start_samples=p["start_samples"],
                length_samples=p["length_samples"],
                start_s=p["start_s"],
                length_s=p["length_samples"] / self.sample_rate_hz,
                modulation=p["modulation"],
                n_pulses=p["n_pulses"],
                freq1_offset_hz=f1,
                freq2_offset_hz=f2,
                rssi_db=rssi,
                snr_db=snr,
                noise_db=noise,
            )
        )

    def close(self) -> list[Rtl433Package]:
        self._finish()
        return self.packages


def decode_cu8(
    chunks: Iterable[bytes],
    sample_rate_hz: float,
    center_freq_hz: float,
    *,
    executable: str | None = None,
    extra_args: Sequence[str] = (),
) -> Rtl433Result:
    """Run rtl_433 over contiguous cu8 ``chunks`` (bytes-like, 2 bytes a complex sample)
    streamed on its stdin; return its messages (each with its package's length) and every
    ``-A`` package, offsets from the first sample. ``chunks`` is consumed in the calling
    thread. Raises DecodeError when rtl_433 is missing, fails or prints what is not JSON; an
    exception from ``chunks`` itself is re-raised after rtl_433 is stopped."""
    path = find_rtl433(executable)
    version = _version_of(path)
    argv = rtl433_argv(path, sample_rate_hz, center_freq_hz, extra_args)
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as exc:
        raise DecodeError(
            f"cannot start rtl_433 ({path}): {exc}; reinstall it: sudo apt-get install --reinstall {DEBIAN_PACKAGE}"
        ) from exc
    lines: list[str] = []
    analysis = AnalysisParser(sample_rate_hz)

    def drain_stdout() -> None:
        for raw in proc.stdout:
            lines.append(raw.decode("utf-8", "replace"))

    def drain_stderr() -> None:
        for raw in proc.stderr:
            analysis.feed(raw.decode("utf-8", "replace"))

    readers = [
        threading.Thread(target=drain_stdout, name="rtl433-stdout", daemon=True),
        threading.Thread(target=drain_stderr, name="rtl433-stderr", daemon=True),
    ]
    for t in readers:
        t.start()
    padding = bytes([SILENCE_CU8]) * (2 * int(EOP_PADDING_S * sample_rate_hz))
    n_bytes, broken_pipe = 0, False
    try:
        try:
            for chunk in chunks:
                proc.stdin.write(chunk)
                n_bytes += len(chunk)
            proc.stdin.write(padding)
            proc.stdin.close()
        except BrokenPipeError:  # rtl_433 ended before its input did: reported below
            broken_pipe = True
            _close_quietly(proc.stdin)
    except BaseException:  # chunks raised (or an interrupt): stop rtl_433, then re-raise
        proc.kill()
        proc.wait()
        for t in readers:
            t.join()
        raise
    rc = proc.wait()
    for t in readers:
        t.join()
    packages = analysis.close()
    if rc != 0 or broken_pipe:
        tail = " | ".join(analysis.tail) or "(no output)"
        why = f"exited with code {rc}" if rc != 0 else "stopped reading its input early"
        raise DecodeError(f"rtl_433 {why} after {n_bytes // 2} samples: {tail}")
    if n_bytes % 2:
        raise DecodeError(
            f"the input held {n_bytes} bytes, not whole cu8 I/Q pairs (2 bytes a sample); pass an even number of bytes"
        )
    starts = {p.start_samples: p for p in packages}
    messages = []
    for line in lines:
        if not line.strip():
            continue
        msg = parse_message(line, sample_rate_hz)
        pkg = starts.get(msg.offset_samples)
        if pkg is not None:
            msg = replace(msg, length_samples=pkg.length_samples)
        messages.append(msg)
    return Rtl433Result(
        messages=tuple(messages),
        packages=tuple(packages),
        version=version,
        sample_rate_hz=float(sample_rate_hz),
        center_freq_hz=float(center_freq_hz),
        n_samples=n_bytes // 2,
        argv=tuple(argv),
    )


def _close_quietly(pipe) -> None:
    """Close a pipe whose reader is gone: flushing its buffer raises BrokenPipeError again."""
    try:
        pipe.close()
    except BrokenPipeError:
        pass  # the reader's exit status and output are what is reported
