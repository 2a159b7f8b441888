"""Serve any Source over the standard rtl_tcp protocol (what osmocom's rtl_tcp does).

A client gets the 12-byte header, then the source's cu8 bytes; its 5-byte commands are
checked and applied through the Source tuning methods where the source can honour them.
One client at a time (like rtl_tcp). The server owns the source's life: it is opened for
each client and closed when the client leaves (rtl_tcp likewise starts the dongle per
client), so a paced source never bursts a backlog at a new client and a file is replayed
from its start to each client (``--loop`` replays it forever).

No client can crash or wedge it:

- every command is checked against what an RTL-SDR accepts (:func:`command_problem`)
  before it reaches the source; a bad one is rejected, an unsupported one ignored, both
  logged (the first few of each client) and never fatal;
- ``commands`` keeps the last :data:`COMMAND_LOG_LEN` commands only;
- a client that does not take a chunk within ``send_timeout_s`` (it stopped reading) is
  dropped, so it cannot hold the one slot; once a file source has ended, a client that does
  not hang up within ``idle_timeout_s`` is closed;
- one log line when a client connects and one when it leaves: how long, what it got, its
  commands (applied / ignored / rejected) and why it left.
"""

import errno
import logging
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass

from sdr_assets.capture.base import Source
from sdr_assets.capture.rtltcp import (
    CMD_SET_AGC_MODE,
    CMD_SET_BIAS_TEE,
    CMD_SET_FREQ,
    CMD_SET_FREQ_CORRECTION,
    CMD_SET_GAIN,
    CMD_SET_GAIN_MODE,
    CMD_SET_SAMPLE_RATE,
    decode_command,
    encode_header,
)
from sdr_assets.capture.uri import validate_sample_rate_hz
from sdr_assets.errors import ConfigError, SdrAssetsError
from sdr_assets.records import Chunk, SourceInfo

log = logging.getLogger("sdr_assets.capture")

R820T = 5
# librtlsdr's R820T/R828D gain table, tenths of dB (what rtl_tcp reports as the gain count).
R820T_GAINS_TENTH_DB = (
    0,
    9,
    14,
    27,
    37,
    77,
    87,
    125,
    144,
    157,
    166,
    197,
    207,
    229,
    254,
    280,
    297,
    328,
    338,
    364,
    372,
    386,
    402,
    421,
    434,
    439,
    445,
    480,
    496,
)
R820T_FREQ_RANGE_HZ = (24_000_000, 1_766_000_000)  # the tuner the header announces
PPM_RANGE = (-1000, 1000)  # a dongle's crystal is off by tens of ppm
COMMAND_LOG_LEN = 1024  # ``commands`` keeps this many (all clients), oldest dropped first
COMMANDS_LOGGED_PER_CLIENT = 10  # then they are only counted (the leave line has the tally)
# Every code osmocom rtl_tcp knows; the server applies 0x01-0x04 and checks 0x05, 0x08 and
# 0x0e (the sources have no such control); the others are ignored (logged) like any client's.
COMMAND_NAMES = {
    0x01: "centre frequency",
    0x02: "sample rate",
    0x03: "gain mode",
    0x04: "gain",
    0x05: "frequency correction",
    0x06: "IF gain",
    0x07: "test mode",
    0x08: "AGC",
    0x09: "direct sampling",
    0x0A: "offset tuning",
    0x0B: "RTL xtal",
    0x0C: "tuner xtal",
    0x0D: "tuner gain by index",
    0x0E: "bias tee",
}
_SWITCHES = (CMD_SET_GAIN_MODE, CMD_SET_AGC_MODE, CMD_SET_BIAS_TEE)


def _signed32(param: int) -> int:
    return param - (1 << 32) if param >= 1 << 31 else param


def command_problem(code: int, param: int, gains_tenth_db: tuple[int, ...] = R820T_GAINS_TENTH_DB) -> str | None:
    """Why an RTL-SDR (R820T) would refuse this rtl_tcp command, or None if it accepts it.
    Codes rtl_tcp knows but this server does not check are not a problem here."""
    if code == CMD_SET_FREQ:
        lo, hi = R820T_FREQ_RANGE_HZ
        if not lo <= param <= hi:
            return f"{param} Hz is outside the R820T's {lo / 1e6:.0f}-{hi / 1e6:.0f} MHz"
    elif code == CMD_SET_SAMPLE_RATE:
        try:
            validate_sample_rate_hz(param)
        except ConfigError as exc:
            return str(exc)
    elif code == CMD_SET_GAIN:
        gain, lo, hi = _signed32(param), min(gains_tenth_db), max(gains_tenth_db)
        if not lo <= gain <= hi:
            return f"{gain / 10:g} dB is outside the tuner's {lo / 10:g}-{hi / 10:g} dB"
    elif code == CMD_SET_FREQ_CORRECTION:
        ppm, (lo, hi) = _signed32(param), PPM_RANGE
        if not lo <= ppm <= hi:
            return f"{ppm} ppm is outside {lo}..{hi} ppm"
    elif code in _SWITCHES and param not in (0, 1):
        return f"{param} is neither 0 nor 1"
    elif code not in COMMAND_NAMES:
        return f"0x{code:02x} is not an rtl_tcp command code"
    return None


@dataclass
class ClientReport:
    """One client's visit: what it got, what it asked for, why it left."""

    peer: str
    connected_s: float = 0.0
    bytes_sent: int = 0
    commands: int = 0
    applied: int = 0
    ignored: int = 0  # valid, but the source or this server has no such control
    rejected: int = 0  # outside what an RTL-SDR accepts, or not a command at all
    reason: str = "it closed the connection"

    def line(self) -> str:
        return (
            f"client {self.peer} left after {self.connected_s:.1f} s ({self.reason}): "
            f"sent {self.bytes_sent} sample bytes; {self.commands} commands: "
            f"{self.applied} applied, {self.ignored} ignored, {self.rejected} rejected"
        )


class RtlTcpServer:
    """rtl_tcp server over a Source. ``start()`` serves in a thread; ``serve_forever()`` in
    the caller's thread; ``stop()`` from anywhere. ``drop_after_bytes`` (a test hook) drops
    the first client after that many sample bytes, once."""

    def __init__(
        self,
        source: Source,
        host: str = "127.0.0.1",
        port: int = 1234,
        tuner_type: int = R820T,
        gains_tenth_db=R820T_GAINS_TENTH_DB,
        drop_after_bytes: int | None = None,
        send_timeout_s: float = 10.0,
        idle_timeout_s: float = 10.0,
    ) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigError(
                f"port {port!r} is not a TCP port; use 1-65535 (e.g. --port 1234), or 0 for any free port"
            )
        for name, value in (("send_timeout_s", send_timeout_s), ("idle_timeout_s", idle_timeout_s)):
            if not 0 < value < float("inf"):
                raise ConfigError(
                    f"{name} {value!r} (--{name.replace('_', '-')}) must be a number of seconds > 0, e.g. 10"
                )
        self.source, self.host, self.port = source, host, port
        self.tuner_type, self.gains_tenth_db = int(tuner_type), tuple(gains_tenth_db)
        self.drop_after_bytes = drop_after_bytes
        self.send_timeout_s, self.idle_timeout_s = float(send_timeout_s), float(idle_timeout_s)
        self._commands: deque[tuple[int, int]] = deque(maxlen=COMMAND_LOG_LEN)
        self._commands_lock = threading.Lock()
        self.commands_received = 0  # every client's, ever (``commands`` holds the last few)
        self.clients_served = 0
        self.clients_left = 0
        self.bytes_sent = 0
        self.last_client: ClientReport | None = None  # set when a client leaves
        self.source_ended = False  # the last client got the whole source (a file ended)
        self.error: SdrAssetsError | None = None
        self.info: SourceInfo | None = None
        self._listener: socket.socket | None = None
        self._client: socket.socket | None = None
        self._client_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def commands(self) -> list[tuple[int, int]]:
        """The last COMMAND_LOG_LEN (code, param) commands received, oldest first, whether
        applied, ignored or rejected."""
        with self._commands_lock:
            return list(self._commands)

    # ---- lifecycle ------------------------------------------------------------------------
    def bind(self) -> tuple[str, int]:
        """Listen on (host, port) and open the source; idempotent. Returns the address."""
        if self._listener is not None:
            return self.address
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise ConfigError(
                f"cannot resolve host {self.host!r} ({exc}); pass --host with "
                "an address of this machine, e.g. 127.0.0.1 or 0.0.0.0"
            ) from None
        family, _, _, _, addr = infos[0]
        lsock = socket.socket(family, socket.SOCK_STREAM)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            lsock.bind(addr)
            lsock.listen(1)
        except OSError as exc:
            lsock.close()
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(f"port {self.port} is in use on {self.host}; pick another with --port") from None
            raise ConfigError(
                f"cannot listen on {self.host}:{self.port} ({exc.strerror}); pick another --host/--port"
            ) from None
        lsock.settimeout(0.2)
        self.port = lsock.getsockname()[1]
        try:  # fail now (missing file, no dongle), not at the first client
            self.info = self.source.open()
        except BaseException:
            lsock.close()
            raise
        finally:
            self.source.close()
        self._listener = lsock
        return self.address

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def start(self) -> "RtlTcpServer":
        self.bind()
        self._thread = threading.Thread(target=self._serve, name="rtl_tcp-server", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve until stop(); raises the SdrAssetsError that ended serving, if any."""
        self.bind()
        self._serve()
        if self.error is not None:
            raise self.error

    def request_stop(self) -> None:
        """Ask serve_forever() to return soon (safe from a signal handler: sets a flag only)."""
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        self.source.stop()
        self._close_client()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def __enter__(self) -> "RtlTcpServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- serving ---------------------------------------------------------------------------
    def _serve(self) -> None:
        while not self._stop.is_set() and self.error is None:
            try:
                conn, peer = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                raise
            self._serve_client(conn, f"{peer[0]}:{peer[1]}")

    def _serve_client(self, conn: socket.socket, peer: str) -> None:
        conn.settimeout(self.send_timeout_s)  # a send (and an idle recv) waits this long at most
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._client_lock:
            self._client = conn
        self.clients_served += 1
        client, t0 = ClientReport(peer), time.monotonic()
        log.info("rtl_tcp server: client %s connected", peer)
        gone = threading.Event()
        reader = threading.Thread(
            target=self._read_commands, args=(conn, gone, client), name="rtl_tcp-commands", daemon=True
        )
        reader.start()
        try:
            self.source.open()  # per client, as rtl_tcp starts the dongle per client
            try:
                client.reason = self._stream(conn, gone, iter(self.source.events()), client)
            finally:
                self.source.stop()
                self.source.close()
            if self.source_ended and not self._stop.is_set():
                conn.shutdown(socket.SHUT_WR)  # EOF after the last byte; the client
                if not gone.wait(timeout=self.idle_timeout_s):  # reads it all, then hangs up
                    client.reason = f"the source ended and it did not hang up within {self.idle_timeout_s:g} s"
        except OSError as exc:
            client.reason = f"it went away ({exc})"
        except SdrAssetsError as exc:  # the source failed: stop serving, say why
            log.error("rtl_tcp server: the source failed: %s", exc)
            client.reason = "the source failed"
            self.error = exc
        finally:
            self._close_client()
            reader.join(timeout=5)
            client.connected_s = time.monotonic() - t0
            self.last_client = client
            self.clients_left += 1
            log.info("rtl_tcp server: %s", client.line())

    def _stream(self, conn: socket.socket, gone: threading.Event, events, client: ClientReport) -> str:
        """Send the header, then chunks until something ends it; returns why it ended."""
        header = encode_header(self.tuner_type, len(self.gains_tenth_db))
        self.source_ended = False
        try:
            conn.sendall(header)
            while not self._stop.is_set() and not gone.is_set():
                ev = next(events, None)
                if ev is None:
                    if self._stop.is_set():
                        break
                    self.source_ended = True
                    return "the source ended"
                if not isinstance(ev, Chunk):
                    continue  # rtl_tcp has no way to carry gaps or annotations
                drop = self.drop_after_bytes
                if drop is not None and client.bytes_sent + len(ev.iq) >= drop:
                    self.drop_after_bytes = None
                    self._send(conn, ev.iq[: drop - client.bytes_sent], client)
                    return f"dropped after {drop} bytes (test hook)"
                self._send(conn, ev.iq, client)
        except TimeoutError:
            return f"it took no data for {self.send_timeout_s:g} s, so it is not reading; dropped to free the slot"
        except OSError as exc:
            if not self._stop.is_set():
                return f"it went away ({exc})"
        return "the server is stopping" if self._stop.is_set() else "it closed the connection"

    def _send(self, conn: socket.socket, data: bytes, client: ClientReport) -> None:
        conn.sendall(data)  # TimeoutError after send_timeout_s in all
        client.bytes_sent += len(data)
        self.bytes_sent += len(data)

    def _read_commands(self, conn: socket.socket, gone: threading.Event, client: ClientReport) -> None:
        pending = bytearray()
        try:
            while True:
                try:
                    data = conn.recv(4096)
                except TimeoutError:
                    continue  # a quiet client is normal: most send commands at the start only
                if not data:
                    break
                pending += data
                whole = len(pending) - len(pending) % 5
                for off in range(0, whole, 5):
                    self._command(*decode_command(pending[off : off + 5]), client)
                del pending[:whole]
        except OSError as exc:  # the client went away; the streaming side sees it too
            log.debug("rtl_tcp server: command reader ended (%s)", exc)
        finally:
            gone.set()

    def _command(self, code: int, param: int, client: ClientReport) -> None:
        """Check one command, apply it if valid, count and (the first few) log the outcome."""
        with self._commands_lock:
            self._commands.append((code, param))
            self.commands_received += 1
        client.commands += 1
        problem = command_problem(code, param, self.gains_tenth_db)
        if problem is not None:
            client.rejected += 1
            applied, level, why = False, logging.WARNING, f"rejected: {problem}; ignored"
        else:
            level = logging.INFO
            try:
                applied, why = self._apply(code, param), "ignored: the source has no such control"
            except SdrAssetsError as exc:
                applied, why = False, f"ignored: {exc}"
            client.applied += applied
            client.ignored += not applied
        if client.commands > COMMANDS_LOGGED_PER_CLIENT:
            return  # a flood is counted, not logged: the leave line has the tally
        log.log(
            level,
            "rtl_tcp server: client %s: %s (0x%02x) %d %s",
            client.peer,
            COMMAND_NAMES.get(code, "command"),
            code,
            param,
            "applied" if applied else why,
        )
        if client.commands == COMMANDS_LOGGED_PER_CLIENT:
            log.info(
                "rtl_tcp server: client %s: further commands are counted, not logged (the tally comes when it leaves)",
                client.peer,
            )

    def _apply(self, code: int, param: int) -> bool:
        """Hand a valid command to the source; True if the source applied it."""
        if code == CMD_SET_FREQ:
            return self.source.set_center_freq_hz(float(param))
        if code == CMD_SET_SAMPLE_RATE:
            return self.source.set_sample_rate_hz(float(param))
        if code == CMD_SET_GAIN_MODE:  # manual: the gain command that follows sets it
            return param == 1 or self.source.set_gain_db(None)
        if code == CMD_SET_GAIN:
            return self.source.set_gain_db(_signed32(param) / 10.0)
        return False

    def _close_client(self) -> None:
        with self._client_lock:
            conn, self._client = self._client, None
        if conn is not None:
            try:
                conn.shutdown(socket.SHUT_RDWR)  # wakes a blocked send/recv in other threads
            except OSError as exc:
                log.debug("rtl_tcp server: shutdown of a gone client: %s", exc)
            conn.close()
