"""Draw docs/img/detection_report.png: the report picture of a synthetic window, through the product's code.

A minute of the synthetic ISM band (``BandScenario`` profile ism, seed 7, 250 kS/s at 433.92 MHz,
0.8 transmissions/s) with six real recordings of ``../shared/data/rtl433`` spliced into it, so that
rtl_433 has devices to decode (without that folder the window stays synthetic and nothing is
decoded). The band is written as SigMF with the generator's annotations, captured through the
file source into a scratch data root, snapshotted and loaded as window ``attic|2026-03-01-10:00``;
rtl_433 decodes it (``decode.window.decode_partition``, what ``decoded_messages`` runs); the
generator's annotations stand in for a model's detections (model version ``generator-truth``,
said in the title); then ``ml.report.render_report`` draws it.

    PYTHONPATH=$PWD .venv/bin/python docs/gen_report_example.py [--out docs/img/detection_report.png]
"""

import argparse
import json
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECORDINGS = REPO.parent / "shared" / "data" / "rtl433"
SPLICED = (  # (file, second of the window it starts at)
    ("GT-WT-02_01_gfile003_433.92M_250k.cu8", 4.0),
    ("nexus_01_gfile001_433.92M_250k.cu8", 13.0),
    ("prologue_01_gfile001_433.92M_250k.cu8", 22.0),
    ("alectov1_gfile001_433.92M_250k.cu8", 31.0),
    ("oregon_scientific_01_BTHR968_433.92M_250k.cu8", 40.0),
    ("TFA-Twin-Plus-30.3049_01_gfile010_433.92M_250k.cu8", 49.0),
)
RATE_HZ, FC_HZ, SEED, DURATION_S = 250_000, 433.92e6, 7, 60
START = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
KEY = "attic|2026-03-01-10:00"
MARGIN_S = 0.05  # generator emissions this near a splice are dropped with it


def band_with_splices(folder: Path) -> tuple[Path, int]:
    """The SigMF recording of the window; returns (meta path, number of recordings spliced in)."""
    import numpy as np

    from sdr_assets.dsp.synth import BandScenario
    from sdr_assets.records import NS_PER_S, Annotation
    from sdr_assets.sigmf import write_sigmf

    n = DURATION_S * RATE_HZ
    scen = BandScenario(SEED, RATE_HZ, FC_HZ, profile="ism", emissions_per_s=0.8)
    cu8, emissions = scen.render(n)
    cu8 = np.array(cu8, dtype=np.uint8)
    spans = []
    for name, at_s in SPLICED if (RECORDINGS / "manifest.json").is_file() else ():
        raw = np.fromfile(RECORDINGS / name, dtype=np.uint8)
        s0 = int(at_s * RATE_HZ)
        cu8[2 * s0 : 2 * s0 + raw.size] = raw
        spans.append((s0 - MARGIN_S * RATE_HZ, s0 + raw.size // 2 + MARGIN_S * RATE_HZ))
    t0_ns = int(START.timestamp()) * NS_PER_S
    anns = [
        Annotation(
            t0_ns + e.start_sample * NS_PER_S // RATE_HZ,
            t0_ns + min(e.end_sample, n) * NS_PER_S // RATE_HZ,
            e.freq_lower_hz,
            e.freq_upper_hz,
            e.label,
            e.snr_db,
        )
        for e in emissions
        if e.start_sample < n and not any(e.start_sample < b and e.end_sample > a for a, b in spans)
    ]
    meta, _ = write_sigmf(folder / "attic", cu8.tobytes(), RATE_HZ, FC_HZ, anns, datetime_ns=t0_ns)
    return meta, len(spans)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "img" / "detection_report.png")
    args = ap.parse_args()

    from sdr_assets.capture.service import CaptureService
    from sdr_assets.capture.uri import open_source
    from sdr_assets.ml.report import render_report
    from sdr_assets.records import NS_PER_S
    from sdr_assets.store.detections import DetectionRow
    from sdr_assets.store.snapshot import take_snapshot
    from sdr_assets.store.window import AnalysisDB

    with tempfile.TemporaryDirectory(prefix="report_example_") as tmp:
        root = Path(tmp)
        meta, n_spliced = band_with_splices(root)
        CaptureService(open_source(f"file://{meta}", realtime=False), root / "hot.db").run()
        take_snapshot(root / "hot.db", root / "snap.db", nice=0)
        t0_ns = int(START.timestamp()) * NS_PER_S
        with AnalysisDB(root / "analysis.db") as db:
            db.load_window(root / "snap.db", KEY, t0_ns, t0_ns + DURATION_S * NS_PER_S, keep_partitions=1)
            rows = [
                DetectionRow(a.t_start_ns, a.t_end_ns, a.freq_lower_hz, a.freq_upper_hz, a.label, 1.0, -1, 0, 0)
                for a in db.annotations(KEY)
            ]
            db.replace_detections(KEY, "generator-truth", rows)
            if shutil.which("rtl_433"):
                from sdr_assets.decode.window import decode_partition

                dec = decode_partition(db, KEY)
                print(f"rtl_433: {len(dec.messages)} messages {json.dumps(dec.per_model)}")
            else:
                print("rtl_433 not found (sudo apt-get install rtl-433): nothing decoded")
            rep = render_report(db, KEY, root, root / "report.png")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(rep.path, args.out)
    print(
        f"{args.out}: {rep.width_px}x{rep.height_px}, {len(rep.png) / 1024:.0f} kB, {n_spliced} recordings spliced in, "
        f"{rep.n_boxes_drawn} boxes {rep.counts}, {rep.n_decodes_drawn} decoded packages, legend {rep.drawn.legend}, "
        f"rendered in {rep.render_s:.2f} s"
    )


if __name__ == "__main__":
    main()
