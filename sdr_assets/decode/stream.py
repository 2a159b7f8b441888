"""rtl_433 on a source's stream: a recording's chunks through the runner, or rtl_433 itself as a
client of an rtl_tcp server (live). Messages come out in absolute time (ns since the epoch, UTC).

- Recordings (``decode_events``): the source's events are cut into contiguous runs (same tuning,
  each chunk where the previous one ended, no Gap between: ``contiguous_runs``), and each run is
  streamed through one ``decode_cu8`` call, one chunk in memory at a time. A message's time is its
  run's first sample time (the source's clock: SigMF ``core:datetime``, or the open time of a raw
  cu8 file) plus rtl_433's offset.
- Live (``LiveDecoder``)::

      rtl_433 -c 0 -d rtl_tcp:HOST:PORT -f CENTRE -s RATE [-g GAIN] [-p PPM] -F json -M level -M time:unix:usec

  rtl_433 connects to the server itself, sets its tuning with rtl_tcp commands (``-f`` before
  ``-s``: ``-f`` above 800 MHz resets the rate) and prints a JSON line a message. ``time:unix:usec``
  is rtl_433's wall clock (UTC) when it decoded the package (live, ``time:rel`` is relative to
  rtl_433's current buffer, not to the stream: negative offsets). rtl_433 ends with code 0 when
  the server closes the connection, 2 when it cannot connect.
"""

import json
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from sdr_assets.decode.rtl433 import DEBIAN_PACKAGE, Rtl433Message, decode_cu8, find_rtl433, parse_message
from sdr_assets.errors import DecodeError
from sdr_assets.records import Chunk, Gap, samples_to_ns


@dataclass(frozen=True)
class TimedMessage:
    """A decoded message at an absolute time (``message``'s offsets: within its rtl_433 run)."""

    t_ns: int
    message: Rtl433Message


# ---- recordings --------------------------------------------------------------------------------
class _Runs:
    """Splits events into contiguous runs; each run's chunk iterator must be used up (or is
    drained) before the next run starts."""

    def __init__(self, events: Iterable) -> None:
        self._src = self._chunks(events)
        self._head: tuple[Chunk, bool] | None = next(self._src, None)

    @staticmethod
    def _chunks(events: Iterable) -> Iterator[tuple[Chunk, bool]]:
        """Chunks, each with whether a Gap came before it."""
        gap = False
        for ev in events:
            if isinstance(ev, Gap):
                gap = True
            elif isinstance(ev, Chunk):
                yield ev, gap
                gap = False

    def __iter__(self) -> Iterator[tuple[Chunk, Iterator[bytes]]]:
        while self._head is not None:
            first = self._head[0]
            self._head = None
            run = self._run(first)
            yield first, run
            for _ in run:  # what the caller left of the run
                pass

    def _run(self, cur: Chunk) -> Iterator[bytes]:
        yield cur.iq
        for ch, gap in self._src:
            if (
                gap
                or abs(ch.t_start_ns - cur.t_end_ns) > samples_to_ns(1, cur.sample_rate_hz)
                or (ch.sample_rate_hz, ch.center_freq_hz) != (cur.sample_rate_hz, cur.center_freq_hz)
            ):
                self._head = (ch, gap)
                return
            cur = ch
            yield ch.iq


def contiguous_runs(events: Iterable) -> Iterator[tuple[Chunk, Iterator[bytes]]]:
    """(first chunk, its run's cu8 chunks) for each contiguous run of a source's events."""
    return iter(_Runs(events))


def decode_events(events: Iterable, *, executable: str | None = None) -> Iterator[TimedMessage]:
    """rtl_433 over each contiguous run of ``events`` (a source's), messages in absolute time."""
    for first, chunks in contiguous_runs(events):
        res = decode_cu8(chunks, first.sample_rate_hz, first.center_freq_hz, executable=executable)
        for m in res.messages:
            yield TimedMessage(first.t_start_ns + samples_to_ns(m.offset_samples, first.sample_rate_hz), m)


# ---- live: rtl_433 as an rtl_tcp client --------------------------------------------------------
def live_argv(
    path: str,
    host: str,
    port: int,
    center_freq_hz: float,
    sample_rate_hz: float,
    gain_db: float | None = None,
    ppm: int | None = None,
) -> list[str]:
    argv = [
        path,
        "-c",
        "0",
        "-d",
        f"rtl_tcp:{host}:{int(port)}",
        "-f",
        str(int(round(center_freq_hz))),
        "-s",
        str(int(round(sample_rate_hz))),
    ]
    if gain_db is not None:
        argv += ["-g", f"{gain_db:g}"]
    if ppm:
        argv += ["-p", str(int(ppm))]
    return argv + ["-F", "json", "-M", "level", "-M", "time:unix:usec"]


def parse_live_line(line: str) -> TimedMessage:
    """One ``-F json -M level -M time:unix:usec`` line -> TimedMessage. The fields go through the
    runner's ``parse_message`` (the time swapped for a zero offset: live there is none)."""
    try:
        obj = json.loads(line)
        t_s = float(obj["time"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise DecodeError(
            f"rtl_433 printed a line that is not a JSON message with a unix time (-M time:unix:usec): {line[:200]!r}"
        ) from exc
    msg = parse_message(json.dumps({**obj, "time": "@0.000000s"}), 1.0)
    return TimedMessage(int(round(t_s * 1e6)) * 1000, msg)


class LiveDecoder:
    """rtl_433 connected to ``rtl_tcp://HOST:PORT``; ``run`` calls ``on_message`` per message until
    the server closes, ``duration_s`` passes or ``stop()`` is called (thread-safe)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        center_freq_hz: float = 433.92e6,
        sample_rate_hz: float = 250e3,
        gain_db: float | None = None,
        ppm: int | None = None,
        executable: str | None = None,
    ) -> None:
        self.host, self.port = host, int(port)
        self.argv = live_argv(find_rtl433(executable), host, port, center_freq_hz, sample_rate_hz, gain_db, ppm)
        self._proc: subprocess.Popen | None = None
        self._stopped = threading.Event()
        self._ended = self._timed_out = False
        self.n_messages = 0

    def stop(self) -> None:
        self._stopped.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()

    def run(
        self,
        on_message: Callable[[TimedMessage], None],
        duration_s: float | None = None,
        on_connected: Callable[[str], None] | None = None,
    ) -> str:
        """Returns why it ended: "server closed", "duration", "stopped"; DecodeError when rtl_433
        cannot connect or fails. ``on_connected`` gets rtl_433's "rtl_tcp connected to ..." line
        (from its stderr reader thread)."""
        try:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                bufsize=1,
            )
        except OSError as exc:
            raise DecodeError(
                f"cannot start rtl_433 ({self.argv[0]}): {exc}; reinstall it: "
                f"sudo apt-get install --reinstall {DEBIAN_PACKAGE}"
            ) from exc
        proc = self._proc
        if self._stopped.is_set():  # stop() came before the process existed
            proc.terminate()
        tail: deque[str] = deque(maxlen=6)

        def drain_stderr() -> None:
            for line in proc.stderr:
                if line.strip():
                    tail.append(line.strip())
                    if on_connected is not None and line.startswith("rtl_tcp connected to"):
                        on_connected(line.strip())

        reader = threading.Thread(target=drain_stderr, name="rtl433-live-stderr", daemon=True)
        reader.start()
        self._ended = self._timed_out = False
        if duration_s is not None:
            threading.Thread(
                target=self._stop_after, args=(time.monotonic() + duration_s,), name="rtl433-live-duration", daemon=True
            ).start()
        try:
            for line in proc.stdout:
                if line.strip():
                    on_message(parse_live_line(line))
                    self.n_messages += 1
        finally:
            self._ended = True
            if proc.poll() is None:
                proc.terminate()
            try:
                rc = proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
            reader.join(timeout=5)
        if self._timed_out:
            return "duration"
        if self._stopped.is_set():
            return "stopped"
        if rc != 0:
            raise DecodeError(
                f"rtl_433 could not decode rtl_tcp://{self.host}:{self.port} (exit code {rc}: "
                f"{' | '.join(list(tail)[-3:]) or 'no output'}); is an rtl_tcp server listening "
                "there (sdr-assets serve-rtl-tcp, or rtl_tcp on the sensor)?"
            )
        return "server closed"

    def _stop_after(self, deadline: float) -> None:
        # short sleeps, not Event.wait(timeout) / threading.Timer: under libfaketime 0.9.10 a
        # timed wait on a faked clock never returns (faketime '+60days' runs of the tests)
        while not self._ended and not self._stopped.is_set():
            if time.monotonic() >= deadline:
                self._timed_out = True
                self.stop()
                return
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
