"""`sdr-assets evaluate`: the detection chain on recordings, scored against a reference
(a manifest, rtl_433 run on each file, or the files' SigMF annotations); see evaluation.py."""

from pathlib import Path

import click


@click.command()
@click.option(
    "--recordings",
    "recordings_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Folder holding the recordings (cu8 files named like NAME_433.92M_250k.cu8, or SigMF).",
)
@click.option(
    "--reference",
    default=None,
    metavar="manifest|rtl433|sigmf",
    help="What the detections are scored against: the --manifest's burst spans (the default "
    "with --manifest), rtl_433's -A packages (rtl_433 run on each recording), or the "
    "recordings' SigMF annotations (time x frequency IoU, AP50, mAP50).",
)
@click.option(
    "--manifest",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="JSON manifest (format: ../shared/data/rtl433/manifest.json).",
)
@click.option(
    "--detector",
    default=None,
    metavar="energy|yolo|energy,yolo",
    help="yolo: the current model of $SDR_ASSETS_HOME's registry; several, comma-separated, "
    "run on the same windows and are scored side by side. Default: energy and yolo, yolo "
    "where the registry has a current model (else it is reported unavailable, with the reason).",
)
@click.option(
    "--out",
    "out_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="JSON lines, one per detection (with the detector and whether it matched).",
)
@click.option("--limit", type=int, default=None, help="Only the first N recordings.")
@click.option(
    "--tol-s", type=float, default=0.02, show_default=True, help="manifest/rtl433: start-time tolerance for a match."
)
@click.option(
    "--freq-tol-hz",
    type=float,
    default=40e3,
    show_default=True,
    help="rtl433: rtl_433's frequency estimate may lie this far outside a detection's band.",
)
@click.option(
    "--iou",
    "iou_threshold",
    type=float,
    default=0.5,
    show_default=True,
    help="sigmf: IoU in time x frequency for a match (0.5: AP50 / mAP50).",
)
@click.option(
    "--conf",
    type=float,
    default=0.1,
    show_default=True,
    help="yolo: minimum confidence (0.1 = ml.infer.DEFAULT_CONF, the product's default; lower it, e.g. 0.05, "
    "for a full AP curve).",
)
@click.option(
    "--single-transmitter",
    is_flag=True,
    help="yolo: one transmitter at a time (ISM captures): keep only boxes whose band shows "
    "energy over its floor, and suppress boxes overlapping stronger ones in time at any "
    "frequency.",
)
def evaluate(
    recordings_dir,
    reference,
    manifest,
    detector,
    out_path,
    limit,
    tol_s,
    freq_tol_hz,
    iou_threshold,
    conf,
    single_transmitter,
) -> None:
    """Ingest each recording, run the chain to detections, score against a reference."""
    import json

    from tqdm import tqdm

    from sdr_assets.cli.evaluation import DEFAULT_DETECTORS, make_reference, parse_detectors
    from sdr_assets.cli.evaluation import evaluate as run_evaluation
    from sdr_assets.errors import ConfigError
    from sdr_assets.paths import DataPaths
    from sdr_assets.store.files import OutputFiles

    if limit is not None and limit < 1:
        raise ConfigError(f"--limit {limit}: must be at least 1 (omit it to evaluate every recording).")
    optional = DEFAULT_DETECTORS[1:] if detector is None else ()
    detectors = parse_detectors(DEFAULT_DETECTORS if detector is None else detector)
    ref = make_reference(reference, manifest)
    recs = ref.recordings(Path(recordings_dir))[:limit]
    # results go to OUT.tmp, renamed over OUT only once every recording is done: a failed run
    # leaves an earlier OUT as it was
    with OutputFiles("--out") as files:
        fh = files.open(Path(out_path), "w") if out_path is not None else None

        def write(res) -> None:
            if fh is not None:
                fh.writelines(json.dumps(d) + "\n" for d in res.detections)

        ev = run_evaluation(
            recs,
            ref,
            detectors,
            tol_s=tol_s,
            iou_threshold=iou_threshold,
            freq_tol_hz=freq_tol_hz,
            conf=conf,
            on_file=write,
            progress=lambda it: tqdm(it, desc="evaluate", unit="file"),
            require_energy=single_transmitter,
            suppress_across_freq=single_transmitter,
            home=DataPaths.from_env(create=not optional) if "yolo" in detectors else None,
            optional=optional,
        )
        if fh is not None:
            fh.close()
        files.commit()
    for line in ev.lines():
        click.echo(line)
    n = sum(len(f.detections) for s in ev.summaries for f in s.files)
    click.echo(f"{n} detections" + (f" -> {out_path}" if out_path else ""))
