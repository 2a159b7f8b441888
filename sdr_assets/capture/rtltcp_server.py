"""Serve any Source over the standard rtl_tcp protocol (what osmocom's rtl_tcp does).

A client gets the 12-byte header, then the source's cu8 bytes; its 5-byte commands are
recorded in ``commands`` and applied through the Source tuning methods where the source
can honour them. One client at a time (like rtl_tcp). The server owns the source's life:
it is opened for each client and closed when the client leaves (rtl_tcp likewise starts
the dongle per client), so a paced source never bursts a backlog at a new client and a
file is replayed from its start to each client (``--loop`` replays it forever).
"""

import errno
import logging
import socket
import threading

from sdr_assets.capture.base import Source
from sdr_assets.capture.rtltcp import (CMD_SET_FREQ, CMD_SET_GAIN, CMD_SET_GAIN_MODE,
                                       CMD_SET_SAMPLE_RATE, decode_command, encode_header)
from sdr_assets.errors import ConfigError, SdrAssetsError
from sdr_assets.records import Chunk, SourceInfo

log = logging.getLogger("sdr_assets.capture")

R820T = 5
# librtlsdr's R820T/R828D gain table, tenths of dB (what rtl_tcp reports as the gain count).
R820T_GAINS_TENTH_DB = (0, 9, 14, 27, 37, 77, 87, 125, 144, 157, 166, 197, 207, 229, 254, 280,
                        297, 328, 338, 364, 372, 386, 402, 421, 434, 439, 445, 480, 496)


def _signed32(param: int) -> int:
    return param - (1 << 32) if param >= 1 << 31 else param


class RtlTcpServer:
    """rtl_tcp server over a Source. ``start()`` serves in a thread; ``serve_forever()`` in
    the caller's thread; ``stop()`` from anywhere. ``drop_after_bytes`` (a test hook) drops
    the first client after that many sample bytes, once."""

    def __init__(self, source: Source, host: str = "127.0.0.1", port: int = 1234,
                 tuner_type: int = R820T, gains_tenth_db=R820T_GAINS_TENTH_DB,
                 drop_after_bytes: int | None = None) -> None:
        self.source, self.host, self.port = source, host, int(port)
        self.tuner_type, self.gains_tenth_db = int(tuner_type), tuple(gains_tenth_db)
        self.drop_after_bytes = drop_after_bytes
        self.commands: list[tuple[int, int]] = []
        self.clients_served = 0
        self.bytes_sent = 0
        self.source_ended = False  # the last client got the whole source (a file ended)
        self.error: SdrAssetsError | None = None
        self.info: SourceInfo | None = None
        self._listener: socket.socket | None = None
        self._client: socket.socket | None = None
        self._client_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- lifecycle ------------------------------------------------------------------------
    def bind(self) -> tuple[str, int]:
        """Listen on (host, port) and open the source; idempotent. Returns the address."""
        if self._listener is not None:
            return self.address
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise ConfigError(f"cannot resolve host {self.host!r} ({exc}); pass --host with "
                              "an address of this machine, e.g. 127.0.0.1 or 0.0.0.0") from None
        family, _, _, _, addr = infos[0]
        lsock = socket.socket(family, socket.SOCK_STREAM)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            lsock.bind(addr)
            lsock.listen(1)
        except OSError as exc:
            lsock.close()
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(f"port {self.port} is in use on {self.host}; pick another "
                                  "with --port") from None
            raise ConfigError(f"cannot listen on {self.host}:{self.port} ({exc.strerror}); "
                              "pick another --host/--port") from None
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
            conn.settimeout(None)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._client_lock:
                self._client = conn
            self.clients_served += 1
            log.info("rtl_tcp server: client %s:%s connected", *peer[:2])
            gone = threading.Event()
            reader = threading.Thread(target=self._read_commands, args=(conn, gone),
                                      name="rtl_tcp-commands", daemon=True)
            reader.start()
            try:
                self.source.open()  # per client, as rtl_tcp starts the dongle per client
                try:
                    self._stream(conn, gone, iter(self.source.events()))
                finally:
                    self.source.stop()
                    self.source.close()
                if self.source_ended and not self._stop.is_set():
                    conn.shutdown(socket.SHUT_WR)  # EOF after the last byte; the client
                    gone.wait(timeout=5)  # reads it all, then hangs up
            except OSError as exc:
                log.info("rtl_tcp server: client gone (%s)", exc)
            except SdrAssetsError as exc:  # the source failed: stop serving, say why
                log.error("rtl_tcp server: the source failed: %s", exc)
                self.error = exc
            finally:
                self._close_client()
                reader.join(timeout=5)
                log.info("rtl_tcp server: client %s:%s left", *peer[:2])

    def _stream(self, conn: socket.socket, gone: threading.Event, events) -> None:
        header = encode_header(self.tuner_type, len(self.gains_tenth_db))
        sent = 0
        self.source_ended = False
        try:
            conn.sendall(header)
            while not self._stop.is_set() and not gone.is_set():
                ev = next(events, None)
                if ev is None:
                    self.source_ended = not self._stop.is_set()
                    log.info("rtl_tcp server: the source ended; closing the client")
                    return
                if not isinstance(ev, Chunk):
                    continue  # rtl_tcp has no way to carry gaps or annotations
                data = ev.iq
                drop = self.drop_after_bytes
                if drop is not None and sent + len(data) >= drop:
                    conn.sendall(data[:drop - sent])
                    self.bytes_sent += drop - sent
                    self.drop_after_bytes = None
                    log.info("rtl_tcp server: dropping the client after %d bytes (test hook)",
                             drop)
                    return
                conn.sendall(data)
                sent += len(data)
                self.bytes_sent += len(data)
        except OSError as exc:
            if not self._stop.is_set():
                log.info("rtl_tcp server: client gone (%s)", exc)

    def _read_commands(self, conn: socket.socket, gone: threading.Event) -> None:
        pending = b""
        try:
            while True:
                data = conn.recv(4096)
                if not data:
                    break
                pending += data
                while len(pending) >= 5:
                    code, param = decode_command(pending[:5])
                    pending = pending[5:]
                    self.commands.append((code, param))
                    self._apply(code, param)
        except OSError as exc:  # the client went away; the streaming side sees it too
            log.debug("rtl_tcp server: command reader ended (%s)", exc)
        finally:
            gone.set()

    def _apply(self, code: int, param: int) -> None:
        try:
            if code == CMD_SET_FREQ:
                self.source.set_center_freq_hz(float(param))
            elif code == CMD_SET_SAMPLE_RATE:
                self.source.set_sample_rate_hz(float(param))
            elif code == CMD_SET_GAIN_MODE and param == 0:
                self.source.set_gain_db(None)
            elif code == CMD_SET_GAIN:
                self.source.set_gain_db(_signed32(param) / 10.0)
        except SdrAssetsError as exc:
            log.warning("rtl_tcp server: command 0x%02x %d not applied (%s)", code, param, exc)

    def _close_client(self) -> None:
        with self._client_lock:
            conn, self._client = self._client, None
        if conn is not None:
            try:
                conn.shutdown(socket.SHUT_RDWR)  # wakes a blocked send/recv in other threads
            except OSError as exc:
                log.debug("rtl_tcp server: shutdown of a gone client: %s", exc)
            conn.close()
