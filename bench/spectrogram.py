"""Spectrogram throughput, cu8 in -> dB frames out, one core, against baselines in this run.

  ours      sdr_assets.dsp.stft.stft_db_cu8 (table gather, fftshift folded into the window,
            cache-sized blocks, in-place float32)
  fft       batched scipy.fft baseline: cu8 -> float32 -> complex64, reshape, * Hann,
            scipy.fft.fft(axis=-1, workers=1), |X|^2, 10*log10 (no fftshift)
  signal    scipy.signal.spectrogram(window="hann", nperseg=nfft, noverlap=nfft-hop,
            return_onesided=False, mode="psd", detrend=False) then 10*log10

Also: the synth generator (BandScenario.render) MS/s, the PNG cost of one 640x640 frame
(normalize_frame_u8 + PIL PNG encode, and the product's encoder against our STFT per frame) and the torch path on CUDA when one is available.
Single-threaded: OMP/MKL/OpenBLAS threads are set to 1 before numpy loads, workers=1.

    .venv/bin/python bench/spectrogram.py [--msamples 32] [--repeat 3]
"""

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import io  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy.fft  # noqa: E402
import scipy.signal  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdr_assets.dsp import stft  # noqa: E402
from sdr_assets.dsp.synth import BandScenario  # noqa: E402

REALTIME_HZ = 3.2e6


def best_of(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def fft_baseline(cu8: np.ndarray, nfft: int) -> np.ndarray:
    x = ((cu8.astype(np.float32) - 127.5) / 127.5).view(np.complex64)
    frames = x[: len(x) // nfft * nfft].reshape(-1, nfft) * stft.hann_window(nfft)
    spec = scipy.fft.fft(frames, axis=-1, workers=1)
    return 10 * np.log10(spec.real**2 + spec.imag**2 + stft.EPS_POWER)


def signal_baseline(cu8: np.ndarray, nfft: int, hop: int) -> np.ndarray:
    x = ((cu8.astype(np.float32) - 127.5) / 127.5).view(np.complex64)
    _, _, sxx = scipy.signal.spectrogram(
        x, fs=1.0, window="hann", nperseg=nfft, noverlap=nfft - hop, detrend=False, return_onesided=False, mode="psd"
    )
    return 10 * np.log10(sxx + stft.EPS_POWER)


def synth_rate(n_samples: int, chunk: int = 131072) -> float:
    sc = BandScenario(1, REALTIME_HZ, 433.92e6)  # defaults: 4 emissions/s, all kinds
    t = time.perf_counter()
    done = 0
    while done < n_samples:
        sc.render(chunk)
        done += chunk
    return done / (time.perf_counter() - t) / 1e6


def png_cost(db_frames: np.ndarray, repeat: int) -> tuple[float, float, int]:
    from PIL import Image

    frames = db_frames[: max(1, min(8, len(db_frames)))]
    t = time.perf_counter()
    for _ in range(repeat):
        imgs = [stft.normalize_frame_u8(f) for f in frames]
    norm_ms = (time.perf_counter() - t) / (repeat * len(frames)) * 1e3
    t = time.perf_counter()
    size = 0
    for _ in range(repeat):
        for img in imgs:
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="PNG")
            size = buf.tell()
    png_ms = (time.perf_counter() - t) / (repeat * len(frames)) * 1e3
    from sdr_assets.store.frames import encode_png_gray

    t = time.perf_counter()
    for _ in range(repeat):
        for img in imgs:
            ours_size = len(encode_png_gray(img))
    ours_ms = (time.perf_counter() - t) / (repeat * len(frames)) * 1e3
    return norm_ms, png_ms, size, ours_ms, ours_size


def torch_rate(cu8: np.ndarray, nfft: int, hop: int, repeat: int) -> str:
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return "skipped (torch not installed)"
    import torch

    if not torch.cuda.is_available():
        return "skipped (no CUDA device)"
    stft.stft_db_torch(cu8[: 2 * nfft * 64], nfft, hop, device="cuda")  # warm-up
    torch.cuda.synchronize()
    dt, out = best_of(lambda: stft.stft_db_torch(cu8, nfft, hop, device="cuda"), repeat)
    n = len(cu8) // 2
    return (
        f"{n / dt / 1e6:9.1f} MS/s  ({n / dt / REALTIME_HZ:.0f}x real time, "
        f"{torch.cuda.get_device_name(0)}, cu8 host->device and dB device->host included)"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--msamples", type=float, default=32.0, help="input size, M samples")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--nfft", type=int, default=stft.DEFAULT_NFFT)
    ap.add_argument("--hop", type=int, default=stft.DEFAULT_HOP)
    args = ap.parse_args()
    n = int(args.msamples * 1e6) // args.nfft * args.nfft
    nfft, hop = args.nfft, args.hop

    t = time.perf_counter()
    cu8 = np.concatenate(
        [BandScenario(7, REALTIME_HZ, 433.92e6).render(1 << 22)[0] for _ in range(-(-n // (1 << 22)))]
    )[: 2 * n]
    print(
        f"input: {n / 1e6:.1f} M samples of synthetic cu8 ({2 * n / 2**20:.0f} MiB, "
        f"made in {time.perf_counter() - t:.1f} s), nfft={nfft} hop={hop}, one thread"
    )

    t_ours, ours = best_of(lambda: stft.stft_db_cu8(cu8, nfft, hop), args.repeat)
    rows = [("ours: stft_db_cu8", t_ours)]
    if hop == nfft:
        t_fft, base = best_of(lambda: fft_baseline(cu8, nfft), args.repeat)
        diff = float(np.abs(np.fft.fftshift(base, axes=-1) - ours).max())
        rows.append(("batched scipy.fft", t_fft))
    else:
        diff = float("nan")
    t_sig, _ = best_of(lambda: signal_baseline(cu8, nfft, hop), max(1, args.repeat - 1))
    rows.append(("scipy.signal.spectrogram", t_sig))

    print(f"\n{'path':28s} {'MS/s':>9s} {'x real time':>12s} {'ours is':>9s}")
    for name, dt in rows:
        rate = n / dt / 1e6
        print(f"{name:28s} {rate:9.1f} {rate * 1e6 / REALTIME_HZ:11.1f}x {dt / t_ours:8.2f}x")
    print(
        f"(x real time at {REALTIME_HZ / 1e6:.1f} MS/s; 'ours is' = baseline time / our time;"
        f" max |ours - fft baseline| = {diff:.2g} dB)"
    )

    norm_ms, png_ms, size, ours_ms, ours_size = png_cost(
        ours[: len(ours) // 640 * 640].reshape(-1, 640, nfft) if len(ours) >= 640 else ours[None], args.repeat
    )
    frame_s = 640 * hop / REALTIME_HZ
    print(
        f"\n640x640 frame: normalize_frame_u8 {norm_ms:.2f} ms + PNG encode {png_ms:.2f} ms "
        f"({size / 1024:.0f} KiB); one frame is {frame_s * 1e3:.0f} ms of signal at 3.2 MS/s "
        f"-> {(norm_ms + png_ms) / 1e3 / frame_s * 100:.1f} % of one core"
    )
    stft_frame_ms = t_ours / (n / (640 * hop)) * 1e3
    print(
        f"the product's encoder (store.frames.encode_png_gray, deflate stored): {ours_ms:.2f} ms "
        f"({ours_size / 1024:.0f} KiB) a frame, against our STFT {stft_frame_ms:.2f} ms a frame "
        f"(PNG / FFT = {ours_ms / stft_frame_ms:.2f}); Pillow's default level {png_ms:.2f} ms"
    )
    srate = synth_rate(min(n, 16_000_000))
    print(
        f"synth BandScenario.render: {srate:.1f} MS/s ({srate * 1e6 / REALTIME_HZ:.0f}x "
        "real time at 3.2 MS/s, one core)"
    )
    print(f"torch CUDA stft_db_torch: {torch_rate(cu8, nfft, hop, args.repeat)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
