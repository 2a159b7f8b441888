"""How the product picks the detector's defaults: the confidence threshold and the clean-ups
after the model, chosen on the generator's held-out SigMF scenarios, never on ``../shared``.

For a model (an ONNX file), every recording goes through the evaluate chain once (file source ->
capture service -> snapshot -> window -> frames, ``cli.evaluation.ingest``); the model runs once
per frame at a low threshold and each variant (threshold x clean-up) filters its output, then
``ml.detections.detect_partition`` post-processes as the asset does. Scored as ``sdr-assets
evaluate`` scores: SigMF annotations by IoU >= 0.5 in time x frequency (the choice), rtl_433's
packages of the real recordings by start within 20 ms (reported beside, for information only).

    nice -n 5 .venv/bin/python bench/detector_defaults.py --onnx sdr_assets/ml/shipped/detector.onnx \\
        --sigmf /tmp/sigmf_scenarios --rtl433 ../shared/data/rtl433
"""

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

VARIANTS = {
    "plain": {"echoes": False},
    "echoes": {"echoes": True},
    "echoes+energy": {"echoes": True, "require_energy": True},
    "one-transmitter": {"echoes": True, "require_energy": True, "suppress_across_freq": True},
}


class Cached:
    """The model's detections per frame, computed once at ``floor``; ``conf`` filters them."""

    def __init__(self, det):
        self.det, self.cache, self.conf = det, {}, 0.25

    def __call__(self, images):
        todo = [p for p in images if p not in self.cache]
        for p, dets in zip(todo, self.det(todo) if todo else []):
            self.cache[p] = dets
        return [[d for d in self.cache[p] if d[1] >= self.conf] for p in images]


def run(recs, reference, model, confs, tally_cls, args) -> dict:
    from sdr_assets.cli.evaluation import PARTITION_KEY, _min_extent, detection_boxes, ingest, read_recording
    from sdr_assets.ml.detections import detect_partition
    from sdr_assets.ml.scoring import match_iou, match_starts, match_time_band
    from sdr_assets.paths import DataPaths
    from sdr_assets.store.window import AnalysisDB

    tallies = defaultdict(tally_cls)
    with tempfile.TemporaryDirectory(prefix="det_defaults_") as tmp:
        for i, rec in enumerate(recs):
            cache = []

            def read(rec=rec, cache=cache):
                if not cache:
                    cache.append(read_recording(rec))
                return cache[0]

            refs = reference.boxes(rec, read)
            paths = DataPaths(Path(tmp) / f"{i:04d}")
            paths.root.mkdir(parents=True)
            t0_ns, _ = ingest(
                rec.path,
                paths,
                sample_rate_hz=rec.sample_rate_hz,
                center_freq_hz=rec.center_freq_hz,
                nfft=640,
                hop=640,
                frame_cols=640,
            )
            cached = Cached(model)
            with AnalysisDB(paths.analysis_db) as db:
                frames = db.frames(PARTITION_KEY)
                extent = _min_extent(frames[0].sample_rate_hz, 640, 640) if frames else (0.0, 0.0)
                runs = [("energy", None, None, {})] + [
                    (f"yolo {name} conf {c:g}", cached, c, kw) for c in confs for name, kw in VARIANTS.items()
                ]
                for label, det, conf, kw in runs:
                    if det is not None:
                        det.conf = conf
                    _, rows = detect_partition(
                        db, PARTITION_KEY, paths.root, detector=det, model_version="x", write=False, **kw
                    )
                    dets = detection_boxes(rows, t0_ns)
                    if reference.matching == "iou":
                        kwm = {"min_duration_s": extent[0], "min_bandwidth_hz": extent[1]}
                        m = match_iou(dets, refs, 0.5, **kwm)
                        tallies[label].add(dets, refs, m, match_iou(dets, refs, 0.5, same_label=True, **kwm))
                        m = match_time_band(dets, refs, 0.5, **kwm)
                        tallies["[time-band] " + label].add(dets, refs, m)
                    else:
                        tallies[label].add(dets, refs, match_starts(dets, refs, 0.02))
            print(f"  {rec.name}: {len(refs)} references", flush=True)
    return tallies


def show(title: str, tallies: dict) -> None:
    print(
        f"\n{title}\n| detector, clean-up, conf | recall | precision | F1 | TP | FP | FN |\n|---|---|---|---|---|---|---|"
    )
    for label, t in tallies.items():
        r = t.tp / max(t.n_reference, 1)
        p = t.tp / max(t.n_detections, 1)
        f1 = 2 * r * p / max(r + p, 1e-9)
        print(
            f"| {label} | {r:.3f} | {p:.3f} | {f1:.3f} | {t.tp} | {t.n_detections - t.tp} | {t.n_reference - t.tp} |",
            flush=True,
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--onnx", type=Path, required=True)
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--sigmf", type=Path, nargs="*", default=[], help="folders of SigMF scenarios (the choice)")
    ap.add_argument("--rtl433", type=Path, default=None, help="real recordings with manifest.json (reported beside)")
    ap.add_argument("--confs", default="0.05,0.1,0.15,0.25")
    args = ap.parse_args()
    from sdr_assets.cli.evaluation import ManifestReference, SigmfReference, load_manifest, manifest_recordings
    from sdr_assets.ml.infer import OnnxDetector
    from sdr_assets.ml.scoring import Tally

    confs = [float(c) for c in args.confs.split(",")]
    model = OnnxDetector(args.onnx, args.imgsz, conf=min(confs))
    for folder in args.sigmf:
        t0 = time.time()
        ref = SigmfReference()
        show(f"SigMF scenarios {folder} (IoU >= 0.5)", run(ref.recordings(folder), ref, model, confs, Tally, args))
        print(f"({time.time() - t0:.0f} s)")
    if args.rtl433:
        t0 = time.time()
        recs = manifest_recordings(load_manifest(args.rtl433 / "manifest.json"), args.rtl433)
        ref = ManifestReference(args.rtl433 / "manifest.json")
        show(f"real recordings {args.rtl433} (start within 20 ms)", run(recs, ref, model, confs, Tally, args))
        print(f"({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
