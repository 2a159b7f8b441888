"""A client for the real rtl_tcp protocol (osmocom rtl_tcp, port 1234).

The server sends a 12-byte header, ``b"RTL0"`` + tuner type (u32 BE) + gain count (u32 BE),
then raw cu8 forever; the client sends 5-byte commands (u8 code, u32 BE parameter). Every
byte after the header is stored exactly, stamped by the wall-clock discipline of
:mod:`sdr_assets.capture.clock`: a wire that delivers less than the rate is an ``underrun``
or ``stall`` gap, one that delivers more has its surplus counted ``late``, and no sample is
ever stamped after it arrived. A drop (EOF, reset, or no data for ``stall_timeout_s``)
triggers a reconnect with exponential backoff and a ``Gap(cause="reconnect")`` counting the
samples the radio produced meanwhile.

Not pyrtlsdr's ``RtlSdrTcpClient``: that is a private JSON protocol on port 1235.
"""

import logging
import socket
import struct
import threading
import time

from sdr_assets.capture.base import DEFAULT_CHUNK_SAMPLES, Source, validate_sample_rate_hz
from sdr_assets.capture.clock import DEFAULT_TOLERANCE_S, WallClock
from sdr_assets.errors import ConfigError, SourceError
from sdr_assets.records import SourceInfo

log = logging.getLogger("sdr_assets.capture")

MAGIC = b"RTL0"
HEADER_LEN = 12
CMD_SET_FREQ = 0x01
CMD_SET_SAMPLE_RATE = 0x02
CMD_SET_GAIN_MODE = 0x03  # 0 auto, 1 manual
CMD_SET_GAIN = 0x04  # tenths of dB
CMD_SET_FREQ_CORRECTION = 0x05  # ppm
CMD_SET_AGC_MODE = 0x08
CMD_SET_BIAS_TEE = 0x0E
# The most samples read as one block (what arrived together): 4 rtl_tcp buffers of 256 KiB
# (fewer where half the clock's tolerance holds fewer).
RECV_BLOCK_SAMPLES = 1 << 19
TUNER_NAMES = {0: "unknown", 1: "E4000", 2: "FC0012", 3: "FC0013", 4: "FC2580", 5: "R820T", 6: "R828D"}


def encode_command(code: int, param: int) -> bytes:
    """One 5-byte rtl_tcp command; negative parameters are sent as two's complement."""
    return struct.pack(">BI", code, int(param) & 0xFFFFFFFF)


def decode_command(data: bytes) -> tuple[int, int]:
    code, param = struct.unpack(">BI", data)
    return code, param


def encode_header(tuner_type: int, gain_count: int) -> bytes:
    return MAGIC + struct.pack(">II", tuner_type, gain_count)


def parse_header(data: bytes, where: str = "server") -> tuple[int, int]:
    """(tuner_type, gain_count) from the 12-byte header, or SourceError."""
    if len(data) != HEADER_LEN or data[:4] != MAGIC:
        raise SourceError(
            f"{where} is not an rtl_tcp server (got {bytes(data[:HEADER_LEN])!r}, "
            f"expected {MAGIC!r} + tuner type + gain count); check the address "
            "and port (rtl_tcp listens on 1234)"
        )
    tuner_type, gain_count = struct.unpack(">II", data[4:])
    return tuner_type, gain_count


class _Drop(Exception):
    """Internal: the connection went away (reason in args[0])."""


class RtlTcpSource(Source):
    """Stream cu8 from an rtl_tcp server, reconnecting (with a counted gap) on drops."""

    def __init__(
        self,
        host: str,
        port: int = 1234,
        *,
        center_freq_hz: float,
        sample_rate_hz: float,
        gain_db: float | None = None,
        ppm: int | None = None,
        chunk_samples: int = DEFAULT_CHUNK_SAMPLES,
        stall_timeout_s: float = 3.0,
        connect_timeout_s: float = 5.0,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 5.0,
        max_reconnects: int | None = None,
        tolerance_s: float = DEFAULT_TOLERANCE_S,
        uri: str | None = None,
    ) -> None:
        super().__init__()
        if int(chunk_samples) < 1 or stall_timeout_s <= 0 or connect_timeout_s <= 0 or not tolerance_s > 0:
            raise ConfigError("chunk_samples, stall_timeout_s, connect_timeout_s and tolerance_s must be > 0")
        self.host, self.port = host, int(port)
        self.where = f"{host}:{port}"
        self.center_freq_hz, self.sample_rate_hz = float(center_freq_hz), float(sample_rate_hz)
        self.gain_db, self.ppm = gain_db, ppm
        self.chunk_samples = int(chunk_samples)
        self.stall_timeout_s, self.connect_timeout_s = stall_timeout_s, connect_timeout_s
        self.backoff_initial_s, self.backoff_max_s = backoff_initial_s, backoff_max_s
        self.max_reconnects = max_reconnects
        self.tolerance_s = tolerance_s
        self.uri = uri or f"rtl_tcp://{self.where}"
        self.reconnects = 0
        self.samples_received = 0  # whole samples read off the wire (stored or late)
        self._sock: socket.socket | None = None
        self._send_lock = threading.Lock()
        self._stop_event = threading.Event()
        self._retuned = False
        self._clock: WallClock | None = None
        self._t_header_ns = 0  # when the last connection's header arrived

    # ---- connection -----------------------------------------------------------------------
    def open(self) -> SourceInfo:
        self.close()
        self._stopping = False
        self._stop_event.clear()
        self._sock, tuner_type, gain_count = self._connect(first=True)
        self.tuner_type, self.gain_count = tuner_type, gain_count
        self.samples_received = 0
        self._clock = WallClock(
            center_freq_hz=self.center_freq_hz,
            sample_rate_hz=self.sample_rate_hz,
            gain_db=self.gain_db,
            chunk_samples=self.chunk_samples,
            tolerance_s=self.tolerance_s,
        )
        self._clock.opened(self._t_header_ns)  # the radio streams from about here
        return SourceInfo(
            uri=self.uri,
            kind="rtl_tcp",
            center_freq_hz=self.center_freq_hz,
            sample_rate_hz=self.sample_rate_hz,
            gain_db=self.gain_db,
            realtime=True,
            meta={
                "host": self.host,
                "port": self.port,
                "tuner_type": tuner_type,
                "tuner": TUNER_NAMES.get(tuner_type, "unknown"),
                "gain_count": gain_count,
            },
        )

    def _connect(self, first: bool) -> tuple[socket.socket, int, int]:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout_s)
        except OSError as exc:
            if first:
                why = (
                    "connection refused" if isinstance(exc, ConnectionRefusedError) else f"{type(exc).__name__}: {exc}"
                )
                raise SourceError(
                    f"cannot connect to {self.where} ({why}); start rtl_tcp there or check the address"
                ) from None
            raise _Drop(f"connect failed: {type(exc).__name__}: {exc}") from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            sock.settimeout(self.stall_timeout_s)
            header = self._read_header(sock, first)
            self._t_header_ns = time.time_ns()
            tuner_type, gain_count = parse_header(header, self.where)
            self._send_tuning(sock)
        except BaseException:
            sock.close()
            raise
        return sock, tuner_type, gain_count

    def _read_header(self, sock: socket.socket, first: bool) -> bytes:
        data = b""
        while len(data) < HEADER_LEN:
            try:
                more = sock.recv(HEADER_LEN - len(data))
            except TimeoutError:
                more, why = None, f"no rtl_tcp header within {self.stall_timeout_s:g} s"
            except OSError as exc:
                more, why = None, f"{type(exc).__name__}: {exc}"
            if more == b"":
                why = f"connection closed after {len(data)} header bytes"
            if not more:
                if data[:4] != MAGIC[: len(data[:4])]:
                    parse_header(data, self.where)  # not even the start of RTL0: no retry
                if first:
                    raise SourceError(
                        f"{self.where}: {why} (rtl_tcp serves one client at a "
                        "time: is another client connected?); check the server"
                    )
                raise _Drop(why)
            data += more
        return data

    def _send_tuning(self, sock: socket.socket) -> None:
        cmds = [(CMD_SET_SAMPLE_RATE, round(self.sample_rate_hz)), (CMD_SET_FREQ, round(self.center_freq_hz))]
        if self.gain_db is None:
            cmds.append((CMD_SET_GAIN_MODE, 0))
        else:
            cmds += [(CMD_SET_GAIN_MODE, 1), (CMD_SET_GAIN, round(self.gain_db * 10))]
        if self.ppm:
            cmds.append((CMD_SET_FREQ_CORRECTION, self.ppm))
        with self._send_lock:
            sock.sendall(b"".join(encode_command(c, p) for c, p in cmds))

    def _command(self, code: int, param: int) -> None:
        with self._send_lock:
            sock = self._sock
            if sock is not None:
                try:
                    sock.sendall(encode_command(code, param))
                except OSError as exc:  # the reader notices the drop; tuning is resent then
                    log.info("rtl_tcp %s: command 0x%02x not sent (%s)", self.where, code, exc)

    # ---- tuning (thread-safe; resent after every reconnect) ----------------------------------
    # A retune ends the chunk being filled: bytes received before it carry the old tuning,
    # bytes after it the new one (bytes in flight on the network are labelled new: unavoidable).
    def set_center_freq_hz(self, center_freq_hz: float) -> bool:
        self.center_freq_hz = float(center_freq_hz)
        self._retuned = True
        self._command(CMD_SET_FREQ, round(self.center_freq_hz))
        return True

    def set_sample_rate_hz(self, sample_rate_hz: float) -> bool:
        self.sample_rate_hz = validate_sample_rate_hz(sample_rate_hz)
        self._retuned = True
        self._command(CMD_SET_SAMPLE_RATE, round(self.sample_rate_hz))
        return True

    def set_gain_db(self, gain_db: float | None) -> bool:
        self.gain_db = None if gain_db is None else float(gain_db)
        self._retuned = True
        if gain_db is None:
            self._command(CMD_SET_GAIN_MODE, 0)
        else:
            self._command(CMD_SET_GAIN_MODE, 1)
            self._command(CMD_SET_GAIN, round(self.gain_db * 10))
        return True

    # ---- streaming ------------------------------------------------------------------------
    def stop(self) -> None:
        super().stop()
        self._stop_event.set()

    def close(self) -> None:
        with self._send_lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def resume_after(self, t_end_ns: int) -> None:
        if self._clock is None:
            raise SourceError("RtlTcpSource.resume_after() before open(); call open() first")
        self._clock.not_before(t_end_ns)

    def events(self):
        if self._sock is None or self._clock is None:
            raise SourceError("RtlTcpSource.events() before open(); call open() first")
        clock = self._clock
        buf = bytearray(2 * RECV_BLOCK_SAMPLES + 1)
        view = memoryview(buf)
        fill = 0  # bytes in buf: at most one odd byte, awaiting its pair, between blocks
        poll_s = min(0.2, self.stall_timeout_s)
        sock = self._sock
        sock.settimeout(poll_s)
        last_data = time.monotonic()
        while not self._stopping:
            if self._retuned:  # bytes received before a retune keep the old tuning
                self._retuned = False
                yield from clock.retune(self.center_freq_hz, self.sample_rate_hz, self.gain_db)
            # one block: what one recv returns and whatever else has already arrived
            limit = min(len(buf), 2 * clock.max_block_samples())
            try:
                try:
                    n = sock.recv_into(view[fill:limit])
                except TimeoutError:
                    if time.monotonic() - last_data > self.stall_timeout_s:
                        raise _Drop(f"no data for {self.stall_timeout_s:g} s") from None
                    continue
                except OSError as exc:
                    raise _Drop(f"{type(exc).__name__}: {exc}") from None
                if n == 0:
                    raise _Drop("server closed the connection (EOF)")
            except _Drop as drop:
                why = drop.args[0]
                if fill:
                    why += "; 1 byte (half an I/Q pair) discarded"
                fill = 0
                log.warning("rtl_tcp %s dropped (%s); reconnecting", self.where, why)
                yield from clock.dropped(why)
                try:
                    sock = self._reconnect(why)
                except SourceError:
                    yield from clock.finish()
                    raise
                if sock is None:
                    break
                sock.settimeout(poll_s)
                last_data = time.monotonic()
                yield from clock.opened(self._t_header_ns)
                continue
            fill += n
            sock.settimeout(0.0)  # drain what already arrived, without waiting for more
            while fill < limit:
                try:
                    more = sock.recv_into(view[fill:limit])
                except OSError:  # nothing more now (a drop: the next recv reports it)
                    break
                if not more:
                    break
                fill += more
            sock.settimeout(poll_s)
            arrived_ns = time.time_ns()
            last_data = time.monotonic()
            whole = fill - fill % 2
            self.samples_received += whole // 2
            events = clock.feed(view[:whole], arrived_ns)  # (copies what it keeps)
            view[: fill - whole] = view[whole:fill]
            fill -= whole
            yield from events
        yield from clock.finish()

    def _reconnect(self, why: str) -> socket.socket | None:
        self.close()
        delay, attempts = self.backoff_initial_s, 0
        while not self._stopping:
            if self.max_reconnects is not None and attempts >= self.max_reconnects:
                raise SourceError(
                    f"lost rtl_tcp {self.where} ({why}) and {attempts} reconnect "
                    "attempt(s) failed; check the server and the network"
                )
            if self._stop_event.wait(delay):
                return None
            attempts += 1
            try:
                sock, _, _ = self._connect(first=False)
            except _Drop as exc:
                log.info(
                    "rtl_tcp %s: reconnect attempt %d failed (%s); next in %.1f s",
                    self.where,
                    attempts,
                    exc.args[0],
                    min(delay * 2, self.backoff_max_s),
                )
                delay = min(delay * 2, self.backoff_max_s)
                continue
            with self._send_lock:
                self._sock = sock
            self.reconnects += 1
            log.warning("rtl_tcp %s: reconnected after %d attempt(s)", self.where, attempts)
            return sock
        return None
