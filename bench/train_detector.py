"""A real detector training, end to end through the Dagster assets, in a scratch data root.

Replays the seeded synthetic band into past 1-minute partitions, materialises
hot_snapshot -> iq_window -> spectrograms -> training_labels for each, then detector_model
(ultralytics from a yaml, offline), and prints the registry row and the per-epoch curve
(mAP50 on the held-back, later-in-time split) from the telemetry table.

    .venv/bin/python bench/train_detector.py --minutes 6 --rate 1024000 --epochs 60 --imgsz 320

Takes tens of minutes on a CPU; use a CUDA machine (device auto-detected) for bigger runs.
"""

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--home", default=None, help="data root (default: a new temp folder)")
    ap.add_argument("--minutes", type=int, default=6, help="minutes of synthetic band")
    ap.add_argument("--rate", type=float, default=1_024_000, help="sample rate, Hz")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--model", default="yolo11n.yaml")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--patience", type=int, default=100)
    ap.add_argument(
        "--warm-start",
        action="store_true",
        help="start from the current model of --home (continue a run) instead of from scratch",
    )
    ap.add_argument(
        "--train-only", action="store_true", help="reuse --home's labelled partitions: no capture, no rendering"
    )
    ap.add_argument(
        "--scenario", default="", help="extra synthetic:// query keys, e.g. 'snr_db_min=10&emissions_per_s=6'"
    )
    args = ap.parse_args()

    home = Path(args.home or tempfile.mkdtemp(prefix="sdr_train_"))
    os.environ["SDR_ASSETS_HOME"] = str(home)
    os.environ["SDR_ASSETS_PARTITION_MINUTES"] = "1"
    os.environ["SDR_ASSETS_NO_SHIPPED_MODEL"] = "1"  # from scratch, not from the shipped model
    bin_dir = Path(sys.executable).parent
    start = (datetime.now(UTC) - timedelta(days=1, minutes=args.minutes + 30)).replace(second=0, microsecond=0)
    uri = (
        f"synthetic://?seed={args.seed}&rate={int(args.rate)}"
        f"&start={start:%Y-%m-%dT%H:%M:%SZ}&duration_s={args.minutes * 60}"
    )
    if args.scenario:
        uri += "&" + args.scenario.lstrip("&?")
    t0 = time.time()
    if not args.train_only:
        subprocess.run(
            [str(bin_dir / "sdr-assets"), "capture", "--source", uri, "--no-realtime", "--partition-minutes", "1"],
            check=True,
        )
        print(
            f"[train] captured {args.minutes} min at {args.rate / 1e6:.3f} MS/s into {home} "
            f"in {time.time() - t0:.0f} s",
            flush=True,
        )

    import dagster as dg

    from sdr_assets.definitions import defs
    from sdr_assets.defs.partitions import DAILY_PARTITIONS
    from sdr_assets.defs.resources import DetectorSettings

    resources = dict(defs.resources)
    resources["detector"] = DetectorSettings(
        epochs=args.epochs,
        imgsz=args.imgsz,
        batch=args.batch,
        model=args.model,
        device=args.device,
        patience=args.patience,
        lookback_partitions=args.minutes,
        warm_start=args.warm_start,
        fine_tune_epochs=args.epochs,
    )
    from sdr_assets.defs.partitions import ensure_sensor_partitions

    instance = dg.DagsterInstance.ephemeral()
    ensure_sensor_partitions(instance, ["default"])
    chain = [defs.get_assets_def(k) for k in ("hot_snapshot", "iq_window", "spectrograms", "training_labels")]
    for i in range(0 if args.train_only else args.minutes):
        key = "default|" + (start + timedelta(minutes=i)).strftime("%Y-%m-%d-%H:%M")
        res = dg.materialize(chain, partition_key=key, resources=resources, instance=instance)
        assert res.success
    print(f"[train] {args.minutes} partitions rendered and labelled ({time.time() - t0:.0f} s so far)", flush=True)
    t1 = time.time()
    res = dg.materialize(
        [defs.get_assets_def("detector_model")],
        partition_key=DAILY_PARTITIONS.get_last_partition_key(),
        resources=resources,
        instance=instance,
    )
    train_s = time.time() - t1
    meta = res.asset_materializations_for_node("detector_model")[0].metadata
    print(f"[train] detector_model in {train_s / 60:.1f} min")
    for k, v in meta.items():
        print(f"  {k}: {getattr(v, 'value', v)}")
    if not meta["promoted"].value:  # the bench goes on with its own model (--warm-start), whatever the contest said
        from sdr_assets.store.registry import promote

        promote(home / "analysis.db", meta["version"].value)
        print(f"[train] promoted {meta['version'].value} by hand (the held-back contest kept the incumbent)")
    conn = sqlite3.connect(home / "analysis.db")
    rows = conn.execute(
        "SELECT metric, value FROM telemetry WHERE process = 'training' "
        "AND metric IN ('epoch', 'map50', 'map50_95') ORDER BY t_ns"
    ).fetchall()
    print("[train] curve (epoch: mAP50 / mAP50-95):")
    epoch = None
    for metric, value in rows:
        if metric == "epoch":
            epoch = int(value)
        elif metric == "map50":
            line = f"  {epoch}: {value:.3f}"
        else:
            print(f"{line} / {value:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
