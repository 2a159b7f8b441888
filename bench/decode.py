"""rtl_433's decode time per window, as a fraction of real time, at 250 kS/s and 1.024 MS/s.

Two bands of --seconds each, built from real data: "busy" = the 22 recordings of
shared/data/rtl433 back to back, repeated (ISM devices without pause: a worst case for
rtl_433's decoders; at 1.024 MS/s resampled with scipy.signal.resample_poly and re-quantised to
cu8), and "quiet" = receiver noise only (what most of a real window is). Per band and rate:

  file      baseline: `rtl_433 -r FILE` on the same samples written to a file (rtl_433 alone)
  runner    decode.rtl433.decode_cu8: the same samples streamed on rtl_433's stdin
  window    decode.window.decode_window: the whole decoded_messages asset body on a window
            loaded in an analysis DB (chunks streamed from SQLite, a run per segment, each
            package's band measured on its samples, lineage)

Reported: seconds, the fraction of real time (seconds / window seconds; 0.01 = 1 %) and the
ratio to the file baseline from the same run. Exit 0 regardless (figures, not a gate).

    .venv/bin/python bench/decode.py [--seconds 60] [--repeat 2]
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from spectrogram import best_of  # noqa: E402  (bench/spectrogram.py: best time of N, last result)

from sdr_assets.decode.rtl433 import decode_cu8, rtl433_version  # noqa: E402
from sdr_assets.decode.window import decode_window  # noqa: E402
from sdr_assets.dsp.iq import complex64_to_cu8, cu8_to_complex64  # noqa: E402
from sdr_assets.records import Chunk, SourceInfo  # noqa: E402
from sdr_assets.store.hot import HotWriter  # noqa: E402
from sdr_assets.store.snapshot import take_snapshot  # noqa: E402
from sdr_assets.store.window import AnalysisDB  # noqa: E402

RECORDINGS = Path(__file__).resolve().parents[2] / "shared" / "data" / "rtl433"
CENTER_HZ = 433.92e6
RATES_HZ = (250_000, 1_024_000)
CHUNK_S = 0.25
T0_NS = 1_700_000_000 * 10**9


def busy_band(seconds: float, rate_hz: int) -> bytes:
    recs = json.loads((RECORDINGS / "manifest.json").read_text())["recordings"]
    one = b"".join((RECORDINGS / r["file"]).read_bytes() for r in recs if r["center_freq_hz"] == CENTER_HZ)
    if rate_hz != 250_000:
        from math import gcd

        import scipy.signal

        g = gcd(rate_hz, 250_000)
        x = scipy.signal.resample_poly(cu8_to_complex64(one), rate_hz // g, 250_000 // g)
        one = complex64_to_cu8(x.astype(np.complex64)).tobytes()
    n = int(seconds * rate_hz) * 2
    return (one * (n // len(one) + 1))[:n]


def quiet_band(seconds: float, rate_hz: int) -> bytes:
    rng = np.random.default_rng(0)
    n = int(seconds * rate_hz)
    x = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(np.complex64) * np.float32(0.02)
    return complex64_to_cu8(x).tobytes()


def rtl433_file(path: Path, rate_hz: int) -> int:
    out = subprocess.run(
        ["rtl_433", "-c", "0", "-r", f"cu8:{path}", "-f", str(int(CENTER_HZ)), "-s", str(rate_hz), "-F", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return sum(1 for line in out.stdout.splitlines() if line.startswith("{"))


def analysis_window(folder: Path, cu8: bytes, rate_hz: int) -> AnalysisDB:
    """The samples as a capture stores them (hot DB, chunks of CHUNK_S), snapshotted and loaded."""
    step = 2 * int(CHUNK_S * rate_hz)
    with HotWriter(folder / "hot.db", cap_bytes=None) as w:
        cid = w.begin_capture(SourceInfo("file://bench", "file", CENTER_HZ, rate_hz), 0)
        chunks = [
            Chunk(T0_NS + round(i / 2 * 1e9 / rate_hz), CENTER_HZ, rate_hz, None, cu8[i : i + step])
            for i in range(0, len(cu8), step)
        ]
        for j in range(0, len(chunks), 16):
            w.write_batch(cid, chunks[j : j + 16])
    take_snapshot(folder / "hot.db", folder / "snap.db")
    db = AnalysisDB(folder / "analysis.db")
    db.open()
    db.load_window(folder / "snap.db", "bench", T0_NS, T0_NS + 10**12, keep_partitions=1)
    return db


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="window length (s of samples)")
    ap.add_argument("--repeat", type=int, default=2, help="best of N")
    args = ap.parse_args()
    if not (RECORDINGS / "manifest.json").is_file():
        print(f"needs {RECORDINGS} (the rtl_433 recordings); skipped")
        return 0
    print(f"rtl_433 {rtl433_version()}; window {args.seconds:.0f} s; best of {args.repeat}")
    print(f"{'band':6s} {'rate':>9s} {'path':7s} {'s':>8s} {'of real time':>13s} {'vs file':>8s} {'messages':>9s}")
    for rate in RATES_HZ:
        for band, make in (("busy", busy_band), ("quiet", quiet_band)):
            cu8 = make(args.seconds, rate)
            with tempfile.TemporaryDirectory(prefix="bench_decode_") as tmp:
                tmp = Path(tmp)
                (tmp / "band.cu8").write_bytes(cu8)
                t_file, n_file = best_of(lambda: rtl433_file(tmp / "band.cu8", rate), args.repeat)
                t_run, res = best_of(
                    lambda: decode_cu8((cu8[i : i + (1 << 20)] for i in range(0, len(cu8), 1 << 20)), rate, CENTER_HZ),
                    args.repeat,
                )
                db = analysis_window(tmp, cu8, rate)
                try:
                    t_win, win = best_of(lambda: decode_window(db, "bench"), args.repeat)
                finally:
                    db.close()
            for path, t, n in (
                ("file", t_file, n_file),
                ("runner", t_run, len(res.messages)),
                ("window", t_win, len(win.messages)),
            ):
                print(
                    f"{band:6s} {rate / 1e6:7.3f}MS {path:7s} {t:8.2f} {100 * t / args.seconds:12.2f}% "
                    f"{t / t_file:7.2f}x {n:9d}"
                )
    print("(of real time = decode seconds / window seconds; vs file = time / rtl_433 reading the file itself)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
