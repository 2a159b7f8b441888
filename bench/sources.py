"""Source throughput, each against a baseline measured in this run (ratios, no pass/fail).

  1. FileSource, unpaced, over a --size-mb cu8 file (page cache warm) vs a bare
     `f.read(256 KiB)` loop over the same file.
  2. FileSource over a SigMF ci16_le recording of the same number of samples (converted to
     cu8 on the fly), against the cu8 FileSource figure.
  3. RtlTcpSource reading from RtlTcpServer (serving an unpaced, looped FileSource) over
     localhost vs a bare socket: `sendall` of the same 256 KiB blocks into `recv_into`.
Real rates for scale: an RTL-SDR at 3.2 MS/s is 6.4 MB/s; at 2.4 MS/s, 4.8 MB/s.

    .venv/bin/python bench/sources.py [--size-mb 512] [--net-mb 1024]
"""

import argparse
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdr_assets.capture.file import FileSource  # noqa: E402
from sdr_assets.capture.rtltcp import RtlTcpSource  # noqa: E402
from sdr_assets.capture.rtltcp_server import RtlTcpServer  # noqa: E402
from sdr_assets.sigmf import write_sigmf  # noqa: E402

BLOCK = 256 * 1024


def bench_file(path: Path) -> tuple[float, float]:
    size = path.stat().st_size
    t = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while f.read(BLOCK):
            pass
    base = size / (time.perf_counter() - t) / 1e6
    t = time.perf_counter()
    n = 0
    with FileSource(path) as src:
        for ev in src.events():
            n += len(ev.iq)
    ours = n / (time.perf_counter() - t) / 1e6
    assert n == size
    return base, ours


def bench_sigmf_ci16(d: Path, n_samples: int) -> float:
    """cu8 MB/s delivered from a ci16_le SigMF recording (4 bytes read per sample)."""
    meta, data = write_sigmf(d / "ci16", b"", 2.4e6, 433.92e6)
    block = os.urandom(4 << 20)
    with open(data, "wb") as f:
        for _ in range(n_samples * 4 // len(block)):
            f.write(block)
    meta.write_text(meta.read_text().replace('"cu8"', '"ci16_le"'))
    t = time.perf_counter()
    n = 0
    with FileSource(meta) as src:
        for ev in src.events():
            n += len(ev.iq)
    return n / (time.perf_counter() - t) / 1e6


def bench_bare_socket(n_bytes: int) -> float:
    lsock = socket.create_server(("127.0.0.1", 0))
    port = lsock.getsockname()[1]
    block = os.urandom(BLOCK)

    def send():
        conn, _ = lsock.accept()
        sent = 0
        while sent < n_bytes:
            conn.sendall(block)
            sent += len(block)
        conn.close()

    threading.Thread(target=send, daemon=True).start()
    buf = bytearray(BLOCK)
    view = memoryview(buf)
    got = 0
    with socket.create_connection(("127.0.0.1", port)) as s:
        t = time.perf_counter()
        while True:
            k = s.recv_into(view)
            if not k:
                break
            got += k
            _ = bytes(view[:k])  # one copy, as a Chunk needs
    lsock.close()
    return got / (time.perf_counter() - t) / 1e6


def bench_rtltcp(path: Path, n_bytes: int) -> float:
    """Bytes off the wire per second through the client. The server is unpaced, so the
    client's wall clock keeps 2.4 MS/s of it and counts the rest late: every byte still goes
    through the read, the clock and the late accounting, which is what is measured."""
    server = RtlTcpServer(FileSource(path, loop=True), port=0).start()
    client = RtlTcpSource("127.0.0.1", server.port, center_freq_hz=433.92e6, sample_rate_hz=2.4e6)
    client.open()
    t = time.perf_counter()
    for _ in client.events():
        if 2 * client.samples_received >= n_bytes:
            break
    rate = 2 * client.samples_received / (time.perf_counter() - t) / 1e6
    client.close()
    server.stop()
    return rate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=512)
    ap.add_argument("--net-mb", type=int, default=1024)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "bench_433.92M_2400k.cu8"
        block = os.urandom(1 << 20)
        with open(path, "wb") as f:
            for _ in range(args.size_mb):
                f.write(block)
        bench_file(path)  # warm the page cache
        base, ours = bench_file(path)
        print(f"file   : bare read {base:8.0f} MB/s | FileSource {ours:8.0f} MB/s | ratio {ours / base:.2f}")
        conv = bench_sigmf_ci16(Path(d), (args.size_mb << 20) // 8)
        print(f"sigmf  : ci16_le -> cu8 {conv:8.0f} MB/s of cu8 | ratio to cu8 file {conv / ours:.3f}")
        n = args.net_mb << 20
        base = bench_bare_socket(n)
        ours = bench_rtltcp(path, n)
        print(
            f"rtl_tcp: bare socket {base:6.0f} MB/s | RtlTcpServer->RtlTcpSource "
            f"{ours:6.0f} MB/s | ratio {ours / base:.2f} | {ours / 6.4:.0f}x a dongle at "
            "3.2 MS/s"
        )


if __name__ == "__main__":
    main()
