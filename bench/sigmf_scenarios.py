"""Write a folder of annotated SigMF recordings from the synthetic generator, for evaluation.

Each scenario is ``synthetic://`` (``dsp.synth.BandScenario`` behind the synthetic source) read
once, its chunks streamed into ``NAME.sigmf-data`` and its ground-truth annotations (one per
emission; in the ISM profile one per rtl_433 package) written into ``NAME.sigmf-meta``, so that

    sdr-assets evaluate --recordings DIR --reference sigmf

scores the energy detector and the current model against them (time x frequency IoU, per class).

The seeds, SNR ranges and rates are ones ``bench/ship_model.py`` does NOT train on (it trains on
ISM seeds 11 and 12 at 250 kS/s and the mixed band seed 21 at 1.024 MS/s; checked below): ISM
seeds 101-103 at 250 and 240 kS/s with SNRs of 6-30 dB, the five-class band seed 201 at 2.048
and 2.4 MS/s with SNRs of 8-30 dB.

    nice -n 5 .venv/bin/python bench/sigmf_scenarios.py --out var/eval-sigmf        # ~360 MB, ~1-2 min
    .venv/bin/python bench/sigmf_scenarios.py --out /tmp/eval-small --seconds 5    # every scenario, 5 s each
"""

import argparse
import importlib.util
import sys
import time
from pathlib import Path
from urllib.parse import parse_qsl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

START = "2026-01-01T00:00:00Z"  # fixed: the recordings do not depend on the day they are made
# (name, synthetic:// query, seconds)
SCENARIOS = (
    ("ism-101-250k", "seed=101&rate=250000&center=433920000&profile=ism&snr_db_min=6&snr_db_max=30", 60),
    ("ism-102-250k", "seed=102&rate=250000&center=433920000&profile=ism&snr_db_min=6&snr_db_max=30", 60),
    ("ism-103-240k", "seed=103&rate=240000&center=433920000&profile=ism&snr_db_min=6&snr_db_max=30", 60),
    ("mixed-201-2048k", "seed=201&rate=2048000&center=868300000&profile=mixed&snr_db_min=8&snr_db_max=30", 30),
    ("mixed-201-2400k", "seed=201&rate=2400000&center=100000000&profile=mixed&snr_db_min=8&snr_db_max=30", 30),
)


def training_seeds() -> set[int]:
    """The seeds bench/ship_model.py trains on (its SCENARIOS)."""
    spec = importlib.util.spec_from_file_location("ship_model", REPO / "bench" / "ship_model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return {int(dict(parse_qsl(q))["seed"]) for _, q, _ in mod.SCENARIOS}


def write_scenario(folder: Path, name: str, query: str, seconds: float) -> tuple[Path, int, float]:
    """One scenario as NAME.sigmf-data/-meta in ``folder``; (meta path, annotations, MB)."""
    from sdr_assets.capture.uri import open_source
    from sdr_assets.records import NS_PER_S, Annotation, Chunk
    from sdr_assets.sigmf import annotation_item, capture_item, global_meta, meta_text, sigmf_paths

    meta_path, data_path = sigmf_paths(folder / name)
    src = open_source(f"synthetic://?{query}&start={START}&duration_s={seconds:g}", realtime=False)
    info = src.open()
    t0_ns, n, anns = None, 0, []
    try:
        with open(data_path, "wb") as fh:
            for ev in src.events():
                if isinstance(ev, Chunk):
                    t0_ns = ev.t_start_ns if t0_ns is None else t0_ns
                    fh.write(ev.iq)
                    n += len(ev.iq) // 2
                elif isinstance(ev, Annotation):
                    anns.append(ev)
    finally:
        src.close()
    fs = info.sample_rate_hz
    items = []
    for a in sorted(anns, key=lambda a: a.t_start_ns):
        start = round((a.t_start_ns - t0_ns) * fs / NS_PER_S)
        end = min(n, round((a.t_end_ns - t0_ns) * fs / NS_PER_S))
        if start >= n or end <= start:
            continue
        item = annotation_item(start, end - start, a.freq_lower_hz, a.freq_upper_hz, a.label)
        if a.snr_db is not None:
            item["core:comment"] = f"snr_db={a.snr_db:.2f}"
        items.append(item)
    doc = {
        "global": global_meta(fs, description=f"synthetic://?{query} (bench/sigmf_scenarios.py)"),
        "captures": [capture_item(0, info.center_freq_hz, t0_ns)],
        "annotations": items,
    }
    meta_path.write_text(meta_text(doc))
    return meta_path, len(items), 2 * n / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="folder to write the recordings into (created)")
    ap.add_argument("--seconds", type=float, default=None, help="every scenario this long (default: its own)")
    ap.add_argument("--only", default=None, help="only the scenarios whose name contains this (ism, mixed, 2400k)")
    args = ap.parse_args()
    if args.seconds is not None and not args.seconds > 0:
        sys.exit(f"error: --seconds {args.seconds:g}: must be > 0.")
    overlap = {int(dict(parse_qsl(q))["seed"]) for _, q, _ in SCENARIOS} & training_seeds()
    if overlap:
        sys.exit(f"error: seeds {sorted(overlap)} are bench/ship_model.py's training seeds; pick others.")
    chosen = [s for s in SCENARIOS if args.only is None or args.only in s[0]]
    if not chosen:
        sys.exit(f"error: --only {args.only!r} matches no scenario ({', '.join(s[0] for s in SCENARIOS)}).")
    args.out.mkdir(parents=True, exist_ok=True)
    for name, query, seconds in chosen:
        t = time.perf_counter()
        meta, n_ann, mb = write_scenario(args.out, name, query, args.seconds or seconds)
        print(
            f"{meta}: {args.seconds or seconds:g} s, {n_ann} annotations, {mb:.0f} MB ({time.perf_counter() - t:.1f} s)"
        )
    print(f"\nevaluate them:\n  .venv/bin/sdr-assets evaluate --recordings {args.out} --reference sigmf")


if __name__ == "__main__":
    main()
