"""Scripted rtl_tcp servers for the clock tests: real TCP sockets on localhost.

Each connection gets the 12-byte rtl_tcp header, then plays its script. The payload is a
32-bit little-endian word counter that runs on across connections, so every stored byte
names its own offset on the wire; every send is logged with the wall time before and after
it, so the arrival time of every stored sample is known to within one send.

Steps: ("pace", bytes_per_s, seconds, piece_bytes): paced sends (absolute deadlines);
("burst", n_bytes): as fast as loopback takes it; ("silent", seconds): the connection stays
open, nothing is sent; ("hold",): nothing is sent until the client or the server closes;
("close",): this connection ends. Connection k plays ``scripts[min(k, len(scripts) - 1)]``.
"""

import socket
import threading
import time

import numpy as np

from sdr_assets.capture.rtltcp import encode_header

BURST_BLOCK_BYTES = 4 << 20


def payload(offset: int, n_bytes: int) -> bytes:
    """The wire's bytes [offset, offset + n_bytes): a u32 LE counter of 4-byte words."""
    w0 = offset // 4
    words = np.arange(w0, (offset + n_bytes + 3) // 4 + 1, dtype="<u4").view(np.uint8)
    skip = offset - 4 * w0
    return words[skip : skip + n_bytes].tobytes()


def locate(iq: bytes, hint: int | None) -> int:
    """The wire offset of ``iq`` (stored bytes); ``hint``: where the previous chunk ended."""
    if hint is not None and payload(hint, len(iq)) == iq:
        return hint
    arr = np.frombuffer(iq, dtype=np.uint8)
    for skip in range(4):
        if len(arr) < skip + 4:
            break
        word = int(arr[skip : skip + 4].view("<u4")[0])
        offset = 4 * word - skip
        if offset >= 0 and payload(offset, len(iq)) == iq:
            return offset
    raise AssertionError(f"stored bytes {iq[:12]!r}... are not a slice of the wire")


class ScriptedServer:
    """One client at a time, each playing its script; ``log`` holds every send."""

    def __init__(self, port: int, scripts: list[list[tuple]]) -> None:
        self.port, self.scripts = port, scripts
        self.offset = 0  # bytes sent so far (all connections)
        self.log: list[tuple[int, int, int, int]] = []  # (t_before_ns, t_after_ns, off0, off1)
        self.connections = 0
        self._stop = threading.Event()
        self._lsock = socket.create_server(("127.0.0.1", port))
        self._lsock.settimeout(0.1)
        self._conn: socket.socket | None = None
        self._thread = threading.Thread(target=self._serve, name="scripted-rtl_tcp", daemon=True)

    def __enter__(self) -> "ScriptedServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._lsock.close()

    # ---- the arrival times of wire bytes -------------------------------------------------
    def arrival_bounds(self, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(sent no earlier than, sent no later than) in ns for each wire byte offset."""
        log = np.array(self.log, dtype=np.int64).reshape(-1, 4)
        idx = np.searchsorted(log[:, 3], offsets, side="right")
        assert (idx < len(log)).all(), "a stored byte was never sent"
        return log[idx, 0], log[idx, 1]

    # ---- serving -------------------------------------------------------------------------
    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._lsock.accept()
            except TimeoutError:
                continue
            script = self.scripts[min(self.connections, len(self.scripts) - 1)]
            self.connections += 1
            try:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.sendall(encode_header(5, 29))
                self._play(conn, script)
            except OSError:  # the client went away
                pass
            finally:
                conn.close()

    def _send(self, conn: socket.socket, n_bytes: int) -> None:
        data = payload(self.offset, n_bytes)
        t0 = time.time_ns()
        conn.sendall(data)
        self.log.append((t0, time.time_ns(), self.offset, self.offset + n_bytes))
        self.offset += n_bytes

    def _idle(self, conn: socket.socket, seconds: float | None) -> None:
        """Send nothing for ``seconds`` (None: until the client or the server closes)."""
        deadline = None if seconds is None else time.monotonic() + seconds
        conn.settimeout(0.05)
        while not self._stop.is_set() and (deadline is None or time.monotonic() < deadline):
            try:
                if conn.recv(4096) == b"":  # (the client's tuning commands come first)
                    raise ConnectionResetError("the client closed")
            except TimeoutError:
                pass
        conn.settimeout(None)

    def _play(self, conn: socket.socket, script: list[tuple]) -> None:
        for step in script:
            kind = step[0]
            if self._stop.is_set() or kind == "close":
                return
            if kind == "pace":
                _, bytes_per_s, seconds, piece = step
                assert piece % 4 == 0
                t0, sent = time.monotonic(), 0
                while sent < bytes_per_s * seconds and not self._stop.is_set():
                    due = t0 + (sent + piece) / bytes_per_s
                    wait = due - time.monotonic()
                    if wait > 0:
                        self._stop.wait(wait)
                    self._send(conn, piece)
                    sent += piece
            elif kind == "burst":
                left = step[1]
                while left > 0 and not self._stop.is_set():
                    n = min(left, BURST_BLOCK_BYTES)
                    self._send(conn, n)
                    left -= n
            elif kind == "silent":
                self._idle(conn, step[1])
            elif kind == "hold":
                self._idle(conn, None)
            else:
                raise ValueError(f"unknown step {step!r}")
