"""Detector throughput: torch (ultralytics) vs onnxruntime on CPU, same model, same frames.

The model is yolo11n built from its yaml with the product's 6 classes and random weights
(untrained weights cost the same to run). Both paths go from the PNG on disk to decoded,
NMS-ed detections one frame at a time, with the same number of threads. The ratio is
onnxruntime / torch, measured in this run. CUDA is measured when torch sees a GPU.

    .venv/bin/python bench/inference.py [--frames 30] [--imgsz 320] [--size 640] [--threads 1]
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_frames(folder: Path, n: int, size: int, seed: int = 0) -> list[Path]:
    """Noise with bright bursts: a stand-in for rendered spectrogram frames."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        img = rng.normal(40, 12, (size, size))
        for _ in range(6):
            x0, y0 = rng.integers(0, size - 80, 2)
            img[y0 : y0 + rng.integers(4, 60), x0 : x0 + rng.integers(10, 80)] += rng.uniform(80, 180)
        path = folder / f"{i:04d}.png"
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def frames_per_s(detect, paths: list[Path], warmup: int = 2, after_warmup=None) -> tuple[float, int]:
    for p in paths[:warmup]:
        detect([p])
    if after_warmup:
        after_warmup()
    n_boxes = 0
    t0 = time.perf_counter()
    for p in paths:
        n_boxes += len(detect([p])[0])
    return len(paths) / (time.perf_counter() - t0), n_boxes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--size", type=int, default=640, help="frame width and height in pixels")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for each runtime")
    ap.add_argument("--model", default="yolo11n.yaml")
    args = ap.parse_args()

    import onnxruntime as ort
    import torch

    from sdr_assets.ml.infer import OnnxDetector, TorchDetector
    from sdr_assets.ml.train import export_onnx, save_untrained

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench_inference_") as tmp:
        tmp = Path(tmp)
        paths = make_frames(tmp, args.frames, args.size)
        weights = save_untrained(tmp / "untrained.pt", args.model)
        onnx_path = export_onnx(weights, imgsz=args.imgsz)
        print(
            f"bench/inference: {args.model} (untrained, 6 classes), imgsz={args.imgsz}, {args.frames} frames "
            f"{args.size}x{args.size} PNG, {args.threads} thread(s), torch {torch.__version__}, "
            f"onnxruntime {ort.__version__}"
        )

        torch_det = TorchDetector(weights, "cpu", args.imgsz)
        # ultralytics resets torch's thread count when its predictor starts: set ours after warm-up
        fps_torch, nb_t = frames_per_s(torch_det, paths, after_warmup=lambda: torch.set_num_threads(args.threads))
        onnx_det = OnnxDetector(onnx_path, args.imgsz, threads=args.threads)
        fps_onnx, nb_o = frames_per_s(onnx_det, paths)
        print(f"torch (ultralytics, CPU): {fps_torch:7.1f} frames/s ({1000 / fps_torch:6.1f} ms/frame, {nb_t} boxes)")
        print(f"onnxruntime (CPU):        {fps_onnx:7.1f} frames/s ({1000 / fps_onnx:6.1f} ms/frame, {nb_o} boxes)")
        print(f"ratio onnxruntime/torch on CPU: {fps_onnx / fps_torch:.2f}x")

        if not torch.cuda.is_available():
            print("CUDA: skipped (no CUDA)")
            return 0
        cuda_det = TorchDetector(weights, "cuda:0", args.imgsz)
        fps_cuda, _ = frames_per_s(cuda_det, paths, warmup=5)
        print(f"torch (ultralytics, CUDA): {fps_cuda:7.1f} frames/s; ratio CUDA/CPU torch: {fps_cuda / fps_torch:.2f}x")
        if "CUDAExecutionProvider" in ort.get_available_providers():
            ort_cuda = OnnxDetector(onnx_path, args.imgsz, providers=("CUDAExecutionProvider", "CPUExecutionProvider"))
            fps_oc, _ = frames_per_s(ort_cuda, paths, warmup=5)
            print(f"onnxruntime (CUDA):        {fps_oc:7.1f} frames/s")
        else:
            print("onnxruntime (CUDA): skipped (this onnxruntime build has no CUDAExecutionProvider)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
