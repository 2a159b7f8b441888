"""YOLO on the real rtl_433 recordings, cross-validated by file (never scored on its training files).

For each of K folds (files sorted by name, file i in fold i % K): a fresh data root; every
TRAINING recording of the other folds is replayed ``--shifts`` times, each variant rotated in
time by another fraction of its length (the bursts land elsewhere in the frame; a rotation
keeps every sample) and, from the second on, shifted in frequency (up to +-30 % of the rate),
through the same chain ``sdr-assets evaluate`` uses (file source -> hot DB -> snapshot ->
window -> spectrogram frames, ``evaluation.ingest``); the frames get energy-detector
auto-labels (``ml.labelling.label_partition``, the ``training_labels`` code). Every other
variant is also replayed with white noise added (0.6x or 1.5x the recording's floor: 2 or 4 dB
less SNR) and trained on with the CLEAN variant's labels, so faint bursts stay labelled;
a YOLO is trained from a yaml and registered as the fold's current model
(``ml.training.train_frames_and_register``). Then ``evaluation.evaluate_recordings`` scores the
fold's HELD-OUT recordings with that model (``--detector yolo``) and with the energy detector,
on the same files. Per fold and pooled: recall, precision, TP/FP/FN, training time, epochs.

    nice -n 5 .venv/bin/python bench/rtl433_yolo.py --folds 2 --shifts 10 --epochs 110 --imgsz 320

CPU: about 10-15 min a fold at these settings on 2 cores.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "rtl433"


def split_by_file(recs: list[dict], k: int) -> list[list[dict]]:
    """K held-out sets: recordings sorted by file name, the i-th in fold i % k."""
    ordered = sorted(recs, key=lambda r: r["file"])
    return [[r for i, r in enumerate(ordered) if i % k == fold] for fold in range(k)]


NOISE_X_FLOOR = (0.0, 0.0, 0.6, 1.5)  # added noise power per variant j % 4, in units of the floor


def variant(
    src: Path, frac: float, shift_frac: float, noise_x_floor: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(clean, noisy) cu8 of ``src`` rotated left by ``frac`` of its samples, shifted by
    ``shift_frac`` x the sample rate, and with ``noise_x_floor`` x its noise floor added."""
    from sdr_assets.dsp.iq import complex64_to_cu8, cu8_to_complex64

    x = cu8_to_complex64(np.fromfile(src, np.uint8))
    x = np.roll(x, -int(frac * x.size))
    if shift_frac:
        x = (x * np.exp(2j * np.pi * shift_frac * np.arange(x.size))).astype(np.complex64)
    clean = complex64_to_cu8(x)
    if not noise_x_floor:
        return clean, clean
    blocks = np.abs(x[: x.size // 250 * 250] - x.mean()).reshape(-1, 250) ** 2
    floor = float(np.percentile(blocks.mean(axis=1), 20))  # 1 ms blocks at 250 kS/s
    sigma = np.sqrt(noise_x_floor * floor / 2)
    noise = rng.normal(0, sigma, x.size) + 1j * rng.normal(0, sigma, x.size)
    return clean, complex64_to_cu8((x + noise).astype(np.complex64))


def _ingest_labelled(cu8: np.ndarray, sub, rec: dict, nfft: int, hop: int, cols: int) -> tuple[list, int]:
    """FrameLabels of ``cu8`` replayed into the data root ``sub`` and auto-labelled there."""
    from sdr_assets.cli.evaluation import PARTITION_KEY, ingest
    from sdr_assets.ml.dataset import frame_labels_from_db
    from sdr_assets.ml.labelling import label_partition
    from sdr_assets.store.window import AnalysisDB

    sub.root.mkdir(parents=True)
    path = sub.root / "variant.cu8"
    cu8.tofile(path)
    ingest(
        path,
        sub,
        sample_rate_hz=rec.get("sample_rate_hz"),
        center_freq_hz=rec.get("center_freq_hz"),
        nfft=nfft,
        hop=hop,
        frame_cols=cols,
    )
    with AnalysisDB(sub.analysis_db) as db:
        n = label_partition(db, PARTITION_KEY).n_boxes
        return frame_labels_from_db(db, [PARTITION_KEY], root=sub.root), n


def training_frames(
    recs: list[dict], folder: Path, work: Path, shifts: int, nfft: int, hop: int, cols: int, seed: int = 0
) -> tuple[list, list[str], int]:
    """Labelled frames (FrameLabels, renumbered) of every variant of every training recording."""
    from sdr_assets.ml.dataset import FrameLabels
    from sdr_assets.paths import DataPaths

    frames, parts, n_boxes = [], [], 0
    for j in range(shifts):  # shift-major: the time split's validation frames are the last variants
        for i, rec in enumerate(recs):
            rng = np.random.default_rng([seed, j, i])
            shift = 0.0 if j == 0 else float(rng.uniform(-0.3, 0.3))
            clean, noisy = variant(folder / rec["file"], j / shifts, shift, NOISE_X_FLOOR[j % 4], rng)
            labelled, n = _ingest_labelled(clean, DataPaths(work / f"s{j:02d}_r{i:02d}"), rec, nfft, hop, cols)
            if noisy is not clean:  # the noisy frames, with the clean frames' boxes (same geometry)
                seen, _ = _ingest_labelled(noisy, DataPaths(work / f"s{j:02d}_r{i:02d}_noisy"), rec, nfft, hop, cols)
                if len(seen) == len(labelled):
                    labelled = [FrameLabels(0, f.path, f.t_start_ns, c.boxes) for f, c in zip(seen, labelled)]
            n_boxes += n
            for f in labelled:
                frames.append(FrameLabels(len(frames) + 1, f.path, f.t_start_ns, f.boxes))
            parts.append(f"{rec['file']}@{j}/{shifts}")
    return frames, parts, n_boxes


def run_fold(fold: int, train: list[dict], held: list[dict], args, work: Path) -> dict:
    """Train fold ``fold`` (or, with --reuse, take its model) and score its held-out files."""
    from sdr_assets.ml.training import TrainingConfig, train_frames_and_register
    from sdr_assets.paths import DataPaths
    from sdr_assets.store.registry import promote
    from sdr_assets.store.window import AnalysisDB

    root = work / f"fold{fold}"
    paths = DataPaths(root)
    os.environ["SDR_ASSETS_HOME"] = str(root)  # offline dirs and --detector yolo use this root
    os.environ["SDR_ASSETS_NO_SHIPPED_MODEL"] = "1"  # from scratch, not from the shipped model
    if args.reuse and paths.analysis_db.exists():
        return {**json.loads((root / "training.json").read_text()), **score(held, args)}
    root.mkdir(parents=True)
    t0 = time.perf_counter()
    frames, parts, n_boxes = training_frames(
        train, args.recordings, root / "train", args.shifts, args.nfft, args.hop, args.frame_cols
    )
    print(
        f"[fold {fold}] {len(train)} training files x {args.shifts} variants: {len(frames)} frames, "
        f"{n_boxes} auto-label boxes ({time.perf_counter() - t0:.0f} s)",
        flush=True,
    )
    cfg = TrainingConfig(
        epochs=args.epochs,
        imgsz=args.imgsz,
        batch=args.batch,
        device=args.device,
        patience=args.epochs,
        val_fraction=args.val_fraction,
        warm_start=False,
    )
    with AnalysisDB(paths.analysis_db) as db:
        out = train_frames_and_register(
            db, paths, cfg, frames, parts, log=lambda line: print(f"[fold {fold}] {line}", flush=True)
        )
        # frames from other data roots cannot be scored by the held-back contest: the fold's
        # model is registered, not promoted; the held-out files below are its test
        promote(db, out.version)
    print(
        f"[fold {fold}] trained {out.epochs_run} epochs at {args.imgsz} px in {out.train_s / 60:.1f} min on "
        f"{out.device}: val map50 {out.challenger_metrics.get('map50', float('nan')):.3f}",
        flush=True,
    )
    result = {
        "fold": fold,
        "train_files": [r["file"] for r in train],
        "held_out_files": [r["file"] for r in held],
        "n_frames": len(frames),
        "epochs": out.epochs_run,
        "imgsz": args.imgsz,
        "train_s": round(out.train_s, 1),
        "model_version": out.version,
        "val_map50": out.challenger_metrics.get("map50"),
    }
    (root / "training.json").write_text(json.dumps(result))
    return {**result, **score(held, args)}


def score(held: list[dict], args) -> dict:
    """Held-out figures of the current model of $SDR_ASSETS_HOME and of the energy detector."""
    from sdr_assets.cli.evaluation import evaluate_recordings
    from sdr_assets.paths import DataPaths

    result = {}
    for detector in ("yolo", "energy"):
        s = evaluate_recordings(
            held,
            args.recordings,
            home=DataPaths.from_env(),
            detector=detector,
            tol_s=args.tol_s,
            conf=args.conf,
            nfft=args.nfft,
            hop=args.hop,
            frame_cols=args.frame_cols,
        )
        result[detector] = {
            "tp": s.tp,
            "fp": s.fp,
            "fn": s.fn,
            "recall": s.recall,
            "precision": s.precision,
            "per_file": {f.file: [f.tp, f.fp, f.fn] for f in s.files},
            "detections": [d for f in s.files for d in f.detections],
        }
        print(f"  held-out {s.line()}", flush=True)
        for f in s.files:
            if f.fp or f.fn:
                print(f"    {detector} {f.file}: tp {f.tp} fp {f.fp} fn {f.fn}", flush=True)
    return result


def pooled(results: list[dict], detector: str) -> str:
    tp, fp, fn = (sum(r[detector][k] for r in results) for k in ("tp", "fp", "fn"))
    return (
        f"{detector:6s} recall {tp / max(tp + fn, 1):.3f} ({tp}/{tp + fn})  "
        f"precision {tp / max(tp + fp, 1):.3f} ({tp}/{tp + fp})  TP {tp} FP {fp} FN {fn}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recordings", type=Path, default=DATA)
    ap.add_argument("--manifest", type=Path, default=None, help="default: RECORDINGS/manifest.json")
    ap.add_argument("--folds", type=int, default=2)
    ap.add_argument("--only-fold", type=int, action="append", default=None, help="run only these folds")
    ap.add_argument("--shifts", type=int, default=10, help="variants of each training recording")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--val-fraction", type=float, default=0.15)
    ap.add_argument("--conf", type=float, default=0.25)
    ap.add_argument("--tol-s", type=float, default=0.02)
    ap.add_argument("--nfft", type=int, default=640)
    ap.add_argument("--hop", type=int, default=640)
    ap.add_argument("--frame-cols", type=int, default=640)
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a new temp folder)")
    ap.add_argument("--reuse", action="store_true", help="score the models already trained under --work")
    ap.add_argument("--json", type=Path, default=None, help="write every figure and detection here")
    args = ap.parse_args()
    manifest = args.manifest or args.recordings / "manifest.json"
    if not manifest.is_file():
        print(f"no manifest at {manifest}; pass --recordings (and --manifest)", file=sys.stderr)
        return 2
    from sdr_assets.cli.evaluation import load_manifest

    recs = load_manifest(manifest)
    work = args.work or Path(tempfile.mkdtemp(prefix="rtl433_yolo_"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"[rtl433_yolo] {len(recs)} recordings, {args.folds} folds by file, work in {work}", flush=True)
    held_sets = split_by_file(recs, args.folds)
    results = []
    for fold, held in enumerate(held_sets):
        if args.only_fold is not None and fold not in args.only_fold:
            continue
        train = [r for k, h in enumerate(held_sets) if k != fold for r in h]
        results.append(run_fold(fold, train, held, args, work))
    print("[rtl433_yolo] per fold (held-out files only):")
    for r in results:
        print(
            f"  fold {r['fold']}: {len(r['held_out_files'])} files, {r['n_frames']} training frames, "
            f"{r['epochs']} epochs at {r['imgsz']} px, {r['train_s'] / 60:.1f} min"
        )
        for det in ("yolo", "energy"):
            print(f"    {pooled([r], det)}")
    print("[rtl433_yolo] pooled over folds:")
    for det in ("yolo", "energy"):
        print(f"  {pooled(results, det)}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
