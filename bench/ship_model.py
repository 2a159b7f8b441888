"""Train the detector the project ships (``sdr_assets/ml/shipped/``) on its own synthetic generator.

Never on the recordings in ``../shared``: those stay for evaluation. Through the product's own
code in a scratch data root, as a user's night would run it: each scenario below is captured
(``sdr-assets capture --no-realtime``, its own sensor) into past 1-minute partitions that all end
at the same moment (so the time-ordered validation split holds frames of every scenario), then
hot_snapshot -> iq_window -> spectrograms -> training_labels (the generator's annotations are
the labels: one box per emission, one per rtl_433 package in the ISM band), then
``detector_model`` trains a yolo11n from its yaml. The weights, the ONNX export and a model card
(data, this command, time, device, metrics per class on the held-back frames) are copied to
``--out``.

    nice -n 5 .venv/bin/python bench/ship_model.py                 # 99 min on 2 shared CPU cores (60 epochs)
    .venv/bin/python bench/ship_model.py --home /tmp/ship_model --card-only   # rewrite the card

Scenarios (seeds, SNR ranges and rates) are listed in ``SCENARIOS``; the evaluation scenarios of
``bench/sigmf_scenarios.py`` use other seeds, SNRs and rates.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "sdr_assets" / "ml" / "shipped"

# (sensor, synthetic:// query, minutes). ISM: rtl_433-like devices at 250 kS/s, 433.92 MHz,
# two seeds, the default SNR range (3-40 dB) and a weak one; the five-class band at 1.024 MS/s.
SCENARIOS = (
    ("ism-a", "seed=11&rate=250000&center=433920000&profile=ism", 4),
    ("ism-b", "seed=12&rate=250000&center=433920000&profile=ism&snr_db_min=3&snr_db_max=18&emissions_per_s=2.5", 3),
    ("band-a", "seed=21&rate=1024000&center=100000000&profile=mixed", 2),
)


def capture(home: Path, end: datetime) -> list[str]:
    """Capture every scenario into its sensor's hot DB; the partition keys to render."""
    exe = str(Path(sys.executable).parent / "sdr-assets")
    keys = []
    for sensor, query, minutes in SCENARIOS:
        start = end - timedelta(minutes=minutes)
        uri = f"synthetic://?{query}&start={start:%Y-%m-%dT%H:%M:%SZ}&duration_s={minutes * 60}"
        t0 = time.time()
        subprocess.run([exe, "sensors", "add", sensor, "--source", uri], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(
            [exe, "capture", "--sensor", sensor, "--source", uri, "--no-realtime", "--partition-minutes", "1"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        print(f"[ship] {sensor}: captured {minutes} min of {uri} in {time.time() - t0:.0f} s", flush=True)
        keys += [f"{sensor}|{start + timedelta(minutes=i):%Y-%m-%d-%H:%M}" for i in range(minutes)]
    return keys


def train(home: Path, args) -> dict:
    import dagster as dg

    from sdr_assets.definitions import defs
    from sdr_assets.defs.partitions import DAILY_PARTITIONS, ensure_sensor_partitions
    from sdr_assets.defs.resources import DetectorSettings

    end = (datetime.now(UTC) - timedelta(days=1)).replace(second=0, microsecond=0)
    t0 = time.time()
    keys = capture(home, end)
    resources = dict(defs.resources)
    resources["detector"] = DetectorSettings(
        epochs=args.epochs,
        imgsz=args.imgsz,
        batch=args.batch,
        model=args.model,
        device=args.device,
        patience=args.epochs,
        lookback_partitions=len(keys),
        seed=args.seed,
    )
    instance = dg.DagsterInstance.ephemeral()
    ensure_sensor_partitions(instance, sorted({s for s, _, _ in SCENARIOS}))
    chain = [defs.get_assets_def(k) for k in ("hot_snapshot", "iq_window", "spectrograms", "training_labels")]
    for key in keys:
        if not dg.materialize(chain, partition_key=key, resources=resources, instance=instance).success:
            raise SystemExit(f"materialising {key} failed")
    print(f"[ship] {len(keys)} partitions rendered and labelled ({time.time() - t0:.0f} s)", flush=True)
    t1 = time.time()
    res = dg.materialize(
        [defs.get_assets_def("detector_model")],
        resources=resources,
        instance=instance,
        partition_key=DAILY_PARTITIONS.get_partition_key_for_timestamp(end.timestamp()),
    )
    if not res.success:
        raise SystemExit("detector_model failed")
    meta = {
        k: getattr(v, "value", v) for k, v in res.asset_materializations_for_node("detector_model")[0].metadata.items()
    }
    meta["train_wall_s"] = round(time.time() - t1, 1)
    meta["total_wall_s"] = round(time.time() - t0, 1)
    (home / "ship_train.json").write_text(json.dumps(meta, indent=2, default=str))
    return meta


def per_class(weights: Path, data_yaml: Path, imgsz: int) -> dict:
    """mAP50, precision and recall per class on the held-back frames (ultralytics val)."""
    from sdr_assets.ml.offline import ensure_offline

    ensure_offline()
    from ultralytics import YOLO

    res = YOLO(str(weights)).val(data=str(data_yaml), imgsz=imgsz, batch=16, device="cpu", plots=False, verbose=False)
    names = res.names
    out = {}
    for i, c in enumerate(res.box.ap_class_index):
        p, r, ap50, ap = res.box.class_result(i)
        out[names[int(c)]] = {
            "precision": round(p, 4),
            "recall": round(r, 4),
            "map50": round(ap50, 4),
            "map50_95": round(ap, 4),
        }
    out["all"] = {
        k: round(float(v), 4) for k, v in zip(("precision", "recall", "map50", "map50_95"), res.mean_results())
    }
    return out


def ship(home: Path, args) -> Path:
    """Copy the registry's newest model to --out with its model card."""
    from sdr_assets.paths import DataPaths
    from sdr_assets.store import registry
    from sdr_assets.store.window import AnalysisDB

    paths = DataPaths.from_env()
    with AnalysisDB(paths.analysis_db) as db:
        row = registry.list_models(db)[-1]
    meta = json.loads((home / "ship_train.json").read_text()) if (home / "ship_train.json").exists() else {}
    data_yaml = paths.datasets / row.version / "data.yaml"
    classes = per_class(Path(row.path), data_yaml, int(row.params.get("imgsz", args.imgsz)))
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(row.path, args.out / "detector.pt")
    shutil.copy2(row.onnx_path, args.out / "detector.onnx")
    card = {
        "version": f"shipped-{row.version}",
        "trained_from": row.version,
        "classes": list(row.classes),
        "architecture": row.params.get("model", args.model),
        "imgsz": int(row.params.get("imgsz", args.imgsz)),
        "data": {
            "generator": "sdr_assets.dsp.synth BandScenario through the synthetic:// source (never ../shared)",
            "scenarios": [{"sensor": s, "query": q, "minutes": m} for s, q, m in SCENARIOS],
            "train_frames": meta.get("train_frames"),
            "val_frames": meta.get("val_frames"),
            "boxes": meta.get("boxes"),
            "split": "by time: the latest 20 % of frames (every scenario ends at the same moment)",
        },
        "command": "nice -n 5 .venv/bin/python bench/ship_model.py " + " ".join(sys.argv[1:]),
        "epochs_run": meta.get("epochs_run"),
        "train_s": meta.get("train_s"),
        "device": meta.get("device") or "cpu",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.python_version()}",
        "trained_at_utc": datetime.fromtimestamp(row.created_ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "metrics_val": classes,
        "spectrogram": {"nfft": 640, "hop": 640, "frame_cols": 640},
    }
    (args.out / "model_card.json").write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps(card, indent=2), flush=True)
    return args.out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, default=None, help="scratch data root (default: a new temp folder)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="yolo11n.yaml")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--card-only", action="store_true", help="ship --home's newest model again (no training)")
    args = ap.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="ship_model_"))
    os.environ["SDR_ASSETS_HOME"] = str(home)
    os.environ["SDR_ASSETS_PARTITION_MINUTES"] = "1"
    os.environ["SDR_ASSETS_NO_SHIPPED_MODEL"] = "1"  # train from scratch, not from what ships now
    print(f"[ship] data root {home}", flush=True)
    if not args.card_only:
        meta = train(home, args)
        print(f"[ship] trained {meta.get('epochs_run')} epochs in {meta['train_wall_s'] / 60:.1f} min", flush=True)
    ship(home, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
