"""The analysis chain's real-time factor: one 60 s window through every stage the sensor-driven run executes.

A SigMF recording (a tone and four 20 ms bursts a second over noise, cu8) is captured into a
closed 5-minute partition of a scratch data root, then each stage runs in a worker process
that calls the same functions the assets call (store, decode, ml), in the order the
in-process run executes them:

  start-up          import sdr_assets.definitions (what every Dagster run or step process pays)
  hot_snapshot      SQLite online backup of the hot DB
  iq_window         verify the snapshot, copy the window into the analysis DB, contiguity
  spectrograms      STFT -> 8-bit PNG frames, and the energy detector on the same STFT (once)
  decoded_messages  rtl_433 over the window (when rtl_433 is installed; its CPU is a child's)
  device_inventory  the sensor's devices
  training_labels   rtl_433's packages, else the energy detector's stored bursts
  detections        YOLO (onnxruntime, batched) over every frame, edges refined on the IQ
  detection_report  the waterfall with detections
  partition_plots   the waterfall and the telemetry chart

plus, outside the chain, ``detections (energy)``: the energy-detector path used until a model
exists. Every stage prints wall and CPU seconds (process + children) and the real-time factor
RTF = CPU seconds / window seconds ("one core": the worker is pinned to CPU 0 with
sched_setaffinity and OMP/MKL/OpenBLAS threads = 1; "all cores": unpinned, RTF = wall / window;
onnxruntime runs the asset's default, DetectorSettings.threads = 1, in both). Baselines from the same run, on the same window: batched
scipy.fft for the STFT, Pillow's PNG at its default level for the frame files, a plain
one-image-at-a-time onnxruntime loop for inference.

Then the real Dagster runs, start-up included (the CLI, as CI and the issue measured them):
``dagster asset materialize --select group:analysis`` with SDR_ASSETS_EXECUTOR=multiprocess
(a process per step) and in_process (what the sensor-driven analysis_job runs on), one core.
And 1, 2 and 4 sensors' chains at once (one worker process each, their own hot DB, one
analysis DB), all cores and one core: how the factor grows with the work.

The YOLO model: sdr_assets/ml/shipped/detector.onnx when it exists, else yolo11n built from its
yaml with random weights (``ml.train.save_untrained``) exported to ONNX at 320 px: inference
time does not depend on the weights.

    .venv/bin/python bench/chain.py [--rates 3.2] [--seconds 60] [--sensors 1,2,4] [--no-dagster]
    .venv/bin/python bench/chain.py --rates 0.25,1.024,2.4,3.2 --sensors 1,2,4   # the tables in RESULTS.md
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
BIN = Path(sys.executable).parent
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")
PARTITION_MINUTES = 5
CENTER_HZ = 433.92e6
SHIPPED_ONNX = REPO / "sdr_assets" / "ml" / "shipped" / "detector.onnx"


# ---- the recording and the data root -------------------------------------------------------
def partition_day() -> datetime:
    """A fixed partition start two days back (never a calendar date the results depend on)."""
    return (datetime.now(UTC) - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)


def bench_env(home: Path) -> dict:
    return dict(
        os.environ,
        SDR_ASSETS_HOME=str(home),
        SDR_ASSETS_PARTITION_MINUTES=str(PARTITION_MINUTES),
        SDR_ASSETS_PARTITION_START=f"{partition_day():%Y-%m-%d}",
        PYTHONPATH=str(REPO),
    )


def render_cu8(rate_hz: float, seconds: int, seed: int = 1):
    """cu8 of a tone at +0.1 fs (-8 dBFS) and four 20 ms bursts a second at -0.3, -0.15, +0.2 and
    +0.33 fs, over complex noise ~26 dB below the tone; one second of noise reused with a new
    offset each second (the cost of the chain does not depend on the noise being fresh)."""
    import numpy as np

    from sdr_assets.dsp.iq import complex64_to_cu8

    rng = np.random.default_rng(seed)
    n = int(rate_hz)
    bank = (rng.standard_normal(2 * n, dtype=np.float32) * np.float32(0.02)).view(np.complex64)
    k = np.arange(n, dtype=np.float64)
    for s in range(seconds):
        x = np.roll(bank, int(rng.integers(n)))
        x += (0.2 * np.exp(2j * np.pi * 0.1 * (k + s * n))).astype(np.complex64)
        for j, f in enumerate((-0.3, -0.15, 0.2, 0.33)):
            a = int((0.05 + 0.25 * j) * rate_hz)
            b = a + int(0.02 * rate_hz)
            x[a:b] += (0.3 * np.exp(2j * np.pi * f * (k[a:b] + s * n))).astype(np.complex64)
        yield complex64_to_cu8(x).tobytes()


def make_root(home: Path, rate_hz: float, seconds: int) -> str:
    """Record, capture (unpaced, the product's capture CLI) into ``home``; returns the time key."""
    from sdr_assets.sigmf import write_sigmf

    t0 = partition_day() + timedelta(hours=1, seconds=30)
    key = f"{partition_day() + timedelta(hours=1):%Y-%m-%d-%H:%M}"
    if (home / "hot.db").exists():
        return key
    home.mkdir(parents=True, exist_ok=True)
    rec = home.parent / f"rec-{rate_hz:.0f}"
    if not Path(f"{rec}.sigmf-meta").exists():
        meta, data = write_sigmf(rec, b"", rate_hz, CENTER_HZ, datetime_ns=int(t0.timestamp()) * 10**9)
        with open(data, "ab") as fh:
            for block in render_cu8(rate_hz, seconds):
                fh.write(block)
    out = subprocess.run(
        [str(BIN / "sdr-assets"), "capture", "--source", f"file://{rec}.sigmf-meta", "--no-realtime"]
        + ["--partition-minutes", str(PARTITION_MINUTES)],
        env=bench_env(home),
        capture_output=True,
        text=True,
    )
    if out.returncode:
        sys.exit(f"error: capture failed: {out.stderr[-2000:]}")
    return key


def model_onnx(work: Path) -> tuple[Path, str]:
    """(the ONNX model to run, which it is)."""
    if SHIPPED_ONNX.is_file():
        return SHIPPED_ONNX, f"shipped ({SHIPPED_ONNX.relative_to(REPO)})"
    path = work / "untrained" / "untrained.onnx"
    if not path.is_file():
        from sdr_assets.ml.train import export_onnx, save_untrained

        weights = save_untrained(work / "untrained" / "untrained.pt")
        out = export_onnx(weights, imgsz=320)
        if out != path:
            os.replace(out, path)
    return path, "yolo11n untrained (save_untrained + export_onnx, 320 px, dynamic batch)"


def register(home: Path, onnx: Path) -> None:
    """Make ``onnx`` the current model of the data root's registry (once)."""
    from sdr_assets.ml.labels import CLASSES
    from sdr_assets.store import registry
    from sdr_assets.store.window import AnalysisDB

    with AnalysisDB(home / "analysis.db") as db:
        if registry.current_model(db) is None:
            registry.register_model(db, "bench", onnx.with_suffix(".pt"), onnx, [], {"imgsz": 320}, {}, CLASSES)
            registry.promote(db, "bench")


# ---- one chain, in a worker process --------------------------------------------------------
def cpu_now() -> float:
    self_ = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return self_.ru_utime + self_.ru_stime + kids.ru_utime + kids.ru_stime


class Stages:
    def __init__(self):
        self.rows: list[dict] = []

    def run(self, name, fn, in_chain: bool = True):
        w, c = time.perf_counter(), cpu_now()
        out = fn()
        self.rows.append(
            {"stage": name, "wall_s": time.perf_counter() - w, "cpu_s": cpu_now() - c, "in_chain": in_chain}
        )
        return out


def worker(args) -> dict:
    """Run the chain once in this process (pinned and thread-limited by the parent's choice)."""
    home, sensor, time_key, one_core = Path(args.home), args.sensor, args.key, args.one_core
    st = Stages()
    st.run("start-up", lambda: __import__("sdr_assets.definitions"))

    from sdr_assets.decode.inventory import update_inventory
    from sdr_assets.decode.rtl433 import rtl433_version
    from sdr_assets.decode.window import decode_partition, packages_for_labels
    from sdr_assets.defs.partitions import TIME_PARTITIONS
    from sdr_assets.errors import DecodeError
    from sdr_assets.ml.detections import detect_partition
    from sdr_assets.ml.infer import load_detector
    from sdr_assets.ml.labelling import label_partition
    from sdr_assets.ml.report import render_report
    from sdr_assets.paths import DataPaths
    from sdr_assets.records import NS_PER_S
    from sdr_assets.store import frames as frames_store
    from sdr_assets.store import registry
    from sdr_assets.store import snapshot as snap
    from sdr_assets.store.plots import partition_telemetry, plot_telemetry, summarize
    from sdr_assets.store.sensors import key_slug
    from sdr_assets.store.window import AnalysisDB, check_contiguity

    paths = DataPaths(home, sensor)
    key = f"{sensor}|{time_key}"
    tw = TIME_PARTITIONS.time_window_for_partition_key(time_key)
    t0_ns, t1_ns = int(tw.start.timestamp() * NS_PER_S), int(tw.end.timestamp() * NS_PER_S)
    dest = paths.snapshots / snap.snapshot_file_name(time_key)
    dest.parent.mkdir(parents=True, exist_ok=True)
    from sdr_assets.defs.resources import DetectorSettings

    threads = DetectorSettings().threads or None  # what the detections asset uses (1 a run)
    try:
        rtl_433 = rtl433_version(None)
    except DecodeError:
        rtl_433 = None
    db = AnalysisDB(paths.analysis_db)
    db.open()

    st.run("hot_snapshot", lambda: snap.take_snapshot(paths.hot_db, dest))

    def window():
        assert snap.verify_snapshot(dest) == "ok"
        w = db.load_window(dest, key, t0_ns, t1_ns, keep_partitions=24)
        check_contiguity(list(db.iter_chunks(key, with_iq=False)), db.gaps(key))
        return w

    win = st.run("iq_window", window)
    frames = st.run(
        "spectrograms",
        lambda: frames_store.render_partition(
            db, key, paths.spectrograms, nfft=640, hop=640, frame_cols=640, backend="numpy", energy={}
        ),
    )
    if rtl_433:
        st.run("decoded_messages", lambda: decode_partition(db, key))
        st.run("device_inventory", lambda: update_inventory(db.conn, sensor, key, t0_ns, t1_ns, 3.0))

    def labels():
        try:
            packages, _ = packages_for_labels(db, key)
        except DecodeError:
            packages = []
        return label_partition(db, key, packages=packages)

    lab = st.run("training_labels", labels)
    row = registry.current_model(db)

    def yolo():
        model = load_detector(row, prefer="onnx", threads=threads)
        return detect_partition(db, key, home, detector=model, model_version=row.version, detector_name="yolo onnx")[0]

    det = st.run("detections", yolo)
    st.run("detection_report", lambda: render_report(db, key, home, paths.reports / f"{key_slug(key)}.png"))

    def plots():
        folder = paths.reports / key_slug(key)
        render_report(db, key, home, folder / "waterfall.png", max_frames=8)
        series = partition_telemetry(dest, t0_ns, t1_ns)
        summarize(series)
        plot_telemetry(series, folder / "telemetry.png", title=key, config_root=home)

    st.run("partition_plots", plots)
    energy_det = st.run("detections (energy)", lambda: detect_partition(db, key, home)[0], in_chain=False)

    out = {
        "one_core": one_core,
        "cpus": sorted(os.sched_getaffinity(0)),
        "window_s": win.covered_s,
        "rate_hz": win.sample_rate_hz,
        "stages": st.rows,
        "frames": frames.n_frames,
        "stft_s": frames.stft_s,
        "png_s": frames.png_s,
        "energy_s": frames.energy_s,
        "energy_bursts": frames.n_bursts,
        "labels": {"source": lab.source, "boxes": lab.n_boxes, "energy_from": lab.energy_from},
        "yolo": {"detections": det.n_detections, "ms_per_frame": det.ms_per_frame},
        "energy_detections": {"count": energy_det.n_detections, "energy_from": energy_det.energy_from},
        "rtl_433": rtl_433 or "not installed",
    }
    if args.baselines:
        out["baselines"] = baselines(db, key, home, row, threads, frames.n_frames)
    db.close()
    return out


def baselines(db, key, home, row, threads, n_frames_total) -> dict:
    """Side by side on the same window: our STFT vs batched scipy.fft, our PNG vs Pillow's
    default, our batched OnnxDetector vs a plain one-image-at-a-time onnxruntime loop."""
    import io

    import cv2
    import numpy as np
    import onnxruntime as ort
    import scipy.fft
    from PIL import Image

    from sdr_assets.dsp import stft
    from sdr_assets.dsp.iq import cu8_to_complex64
    from sdr_assets.ml.infer import OnnxDetector, decode_output, letterbox
    from sdr_assets.store.frames import encode_png_gray

    fr = 640 * 640
    t_ours = t_fft = 0.0
    n_frames = 0
    hann = stft.hann_window(640)
    buf = bytearray()
    for c in db.iter_chunks(key):
        buf += c.iq
        while len(buf) >= 2 * fr:
            cu8 = bytes(buf[: 2 * fr])
            del buf[: 2 * fr]
            t = time.process_time()
            stft.normalize_frame_u8(stft.power_to_db(stft.stft_power_cu8(cu8, 640, 640)))
            t_ours += time.process_time() - t
            t = time.process_time()
            x = cu8_to_complex64(np.frombuffer(cu8, np.uint8)).reshape(-1, 640) * hann
            spec = scipy.fft.fft(x, axis=-1, workers=1)
            10 * np.log10(spec.real**2 + spec.imag**2 + stft.EPS_POWER)
            t_fft += time.process_time() - t
            n_frames += 1
    frames = db.frames(key)
    sample = frames[:: max(1, len(frames) // 48)][:48]
    imgs = [cv2.imread(str(home / f.path), cv2.IMREAD_GRAYSCALE) for f in sample]
    t = time.process_time()
    ours = [encode_png_gray(im) for im in imgs]
    t_png = (time.process_time() - t) / len(imgs)
    t = time.process_time()
    pil = []
    for im in imgs:
        b = io.BytesIO()
        Image.fromarray(im).save(b, format="PNG")
        pil.append(b.tell())
    t_pil = (time.process_time() - t) / len(imgs)
    assert all(
        (cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_GRAYSCALE) == im).all() for b, im in zip(ours, imgs)
    )

    paths = [home / f.path for f in sample]
    det = OnnxDetector(row.onnx_path, 320, threads=threads, conf=0.25)
    det(paths[:2])  # warm-up
    t = time.process_time()
    batched = det(paths)
    t_batched = (time.process_time() - t) / len(paths)
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(str(row.onnx_path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    t = time.process_time()
    plain = []
    for p in paths:  # the plain loop: read, letterbox, one image a run, decode
        img = cv2.imread(str(p))
        boxed, r, pad = letterbox(img, 320)
        x = np.ascontiguousarray(boxed[:, :, ::-1].transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
        out = sess.run(None, {name: x})[0]
        plain.append(decode_output(out, det.classes, r=r, pad=pad, hw=img.shape[:2], conf=0.25))
    t_plain = (time.process_time() - t) / len(paths)
    same = all(
        len(a) == len(b) and all(x.class_name == y.class_name and abs(x.x0 - y.x0) < 0.5 for x, y in zip(a, b))
        for a, b in zip(batched, plain)
    )
    return {
        "frames_compared": n_frames,
        "stft_ms_per_frame": 1e3 * t_ours / max(n_frames, 1),
        "fft_baseline_ms_per_frame": 1e3 * t_fft / max(n_frames, 1),
        "png_ms_per_frame": 1e3 * t_png,
        "png_kib": sum(map(len, ours)) / len(ours) / 1024,
        "pillow_default_ms_per_frame": 1e3 * t_pil,
        "pillow_kib": sum(pil) / len(pil) / 1024,
        "infer_batched_ms_per_frame": 1e3 * t_batched,
        "infer_plain_ms_per_frame": 1e3 * t_plain,
        "infer_batch": det.batch,
        "infer_same_boxes": same,
        "infer_frames": len(paths),
    }


def run_worker(
    home: Path, key: str, one_core: bool, sensor: str = "default", baselines: bool = False
) -> subprocess.Popen:
    env = bench_env(home)
    if one_core:
        env.update({v: "1" for v in THREAD_VARS})
    cmd = [sys.executable, __file__, "--worker", "--home", str(home), "--key", key, "--sensor", sensor]
    cmd += ["--one-core"] if one_core else []
    cmd += ["--baselines"] if baselines else []
    return subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=(lambda: os.sched_setaffinity(0, {0})) if one_core else None,
    )


def collect(proc: subprocess.Popen) -> dict:
    out, _ = proc.communicate()
    if proc.returncode:
        sys.exit(f"error: a chain worker failed (exit {proc.returncode}); run it alone to see why")
    return json.loads(out.strip().splitlines()[-1])


# ---- the real Dagster run (CLI), start-up included ----------------------------------------
def dagster_run(home: Path, key: str, executor: str) -> dict:
    env = bench_env(home)
    env.update({v: "1" for v in THREAD_VARS})
    env.update(SDR_ASSETS_EXECUTOR=executor, DAGSTER_HOME=str(home / "dagster"))
    (home / "dagster").mkdir(exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster" / "dagster.yaml")
    subprocess.run([str(BIN / "sdr-assets"), "sensors", "sync"], env=env, check=True, capture_output=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    w = time.perf_counter()
    out = subprocess.run(
        [str(BIN / "dagster"), "asset", "materialize", "-m", "sdr_assets.definitions", "--select", "group:analysis"]
        + ["--partition", f"default|{key}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        preexec_fn=lambda: os.sched_setaffinity(0, {0}),
    )
    wall = time.perf_counter() - w
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    ok = "RUN_SUCCESS" in out.stdout + out.stderr
    return {"executor": executor, "wall_s": wall, "cpu_s": cpu, "success": ok}


# ---- tables --------------------------------------------------------------------------------
def stage_table(one: dict, allc: dict | None) -> str:
    win = one["window_s"]
    lines = [
        f"| stage | 1 core wall s | 1 core CPU s | RTF (CPU / {win:.0f} s) |"
        + (" all cores wall s | RTF (wall) |" if allc else ""),
        "| --- | --- | --- | --- |" + (" --- | --- |" if allc else ""),
    ]
    by = {r["stage"]: r for r in allc["stages"]} if allc else {}
    for r in one["stages"]:
        line = f"| {r['stage']} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} | {r['cpu_s'] / win:.4f} |"
        if allc:
            a = by[r["stage"]]
            line += f" {a['wall_s']:.2f} | {a['wall_s'] / win:.4f} |"
        lines.append(line)
    chain = [r for r in one["stages"] if r["in_chain"]]
    tot_w, tot_c = sum(r["wall_s"] for r in chain), sum(r["cpu_s"] for r in chain)
    line = (
        f"| **chain** (start-up included, energy path excluded) | {tot_w:.2f} | {tot_c:.2f} | **{tot_c / win:.3f}** |"
    )
    if allc:
        aw = sum(r["wall_s"] for r in allc["stages"] if r["in_chain"])
        line += f" {aw:.2f} | {aw / win:.3f} |"
    lines.append(line)
    return "\n".join(lines)


def chain_cpu(res: dict) -> float:
    return sum(r["cpu_s"] for r in res["stages"] if r["in_chain"])


def chain_wall(res: dict) -> float:
    return sum(r["wall_s"] for r in res["stages"] if r["in_chain"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default="3.2", help="MS/s, comma-separated")
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--sensors", default="1,2,4", help="concurrent sensors' chains (at the last rate); '' skips")
    ap.add_argument("--skip-rates", action="store_true", help="only the Dagster runs and the concurrent sensors")
    ap.add_argument("--no-dagster", action="store_true", help="skip the CLI runs (multiprocess vs in_process)")
    ap.add_argument("--no-all-cores", action="store_true", help="skip the unpinned runs")
    ap.add_argument("--work", default="/tmp/bench_chain", help="scratch folder (recordings, data roots)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--home", help=argparse.SUPPRESS)
    ap.add_argument("--key", help=argparse.SUPPRESS)
    ap.add_argument("--sensor", default="default", help=argparse.SUPPRESS)
    ap.add_argument("--one-core", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--baselines", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return 0

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rates = [float(r) * 1e6 for r in args.rates.split(",") if r]
    onnx, model_note = model_onnx(work)
    print(
        f"bench/chain: {args.seconds} s windows, {os.cpu_count()} CPUs (load {os.getloadavg()[0]:.1f}); model {model_note}"
    )
    summary = []
    for rate in [] if args.skip_rates else rates:
        home = work / f"home-{rate / 1e6:g}"
        key = make_root(home, rate, args.seconds)
        register(home, onnx)
        one = collect(run_worker(home, key, one_core=True, baselines=True))
        allc = None if args.no_all_cores else collect(run_worker(home, key, one_core=False))
        print(f"\n### {rate / 1e6:g} MS/s, {one['frames']} frames, rtl_433 {one['rtl_433']}\n")
        print(stage_table(one, allc))
        b = one["baselines"]
        print(
            f"\nper frame, same run: our STFT (cu8 -> power -> dB -> 8-bit) {b['stft_ms_per_frame']:.2f} ms vs batched "
            f"scipy.fft {b['fft_baseline_ms_per_frame']:.2f} ms; our PNG {b['png_ms_per_frame']:.2f} ms "
            f"({b['png_kib']:.0f} KiB) vs Pillow default {b['pillow_default_ms_per_frame']:.2f} ms ({b['pillow_kib']:.0f} KiB); "
            f"inference batched ({b['infer_batch']}) {b['infer_batched_ms_per_frame']:.1f} ms vs plain loop "
            f"{b['infer_plain_ms_per_frame']:.1f} ms ({b['infer_frames']} frames, same boxes: {b['infer_same_boxes']})"
        )
        print(
            f"energy detector: {one['energy_bursts']} bursts, {one['energy_s']:.2f} s CPU = "
            f"{one['energy_s'] / one['window_s']:.4f}x RT (the spectrogram's STFT shared); labels {one['labels']}, "
            f"energy detections {one['energy_detections']}"
        )
        summary.append((rate, one, allc))
    print("\n### real-time factor vs sample rate (chain CPU / window s, one core; wall / window s, all cores)\n")
    print("| MS/s | frames | 1 core CPU s | RTF 1 core | all cores wall s | RTF all cores |")
    print("| --- | --- | --- | --- | --- | --- |")
    for rate, one, allc in summary:
        aw = f"{chain_wall(allc):.2f} | {chain_wall(allc) / one['window_s']:.3f}" if allc else "- | -"
        print(
            f"| {rate / 1e6:g} | {one['frames']} | {chain_cpu(one):.2f} | {chain_cpu(one) / one['window_s']:.3f} | {aw} |"
        )

    rate, home = rates[-1], work / f"home-{rates[-1] / 1e6:g}"
    key = make_root(home, rate, args.seconds)
    if not args.no_dagster:
        print(f"\n### the real Dagster run, {rate / 1e6:g} MS/s, one core (taskset), CLI start-up included\n")
        print("| executor | wall s | CPU s (all processes) | RTF (CPU) | run |")
        print("| --- | --- | --- | --- | --- |")
        for executor in ("multiprocess", "in_process"):
            r = dagster_run(home, key, executor)
            print(
                f"| {executor} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['cpu_s'] / args.seconds:.3f} | "
                f"{'RUN_SUCCESS' if r['success'] else 'FAILED'} |"
            )
    counts = [int(n) for n in args.sensors.split(",") if n]
    if counts:
        print(f"\n### concurrent sensors at {rate / 1e6:g} MS/s: N chains at once, one process each\n")
        print("| sensors | cores | wall s (all done) | CPU s (sum) | RTF = wall / window | windows per window-time |")
        print("| --- | --- | --- | --- | --- | --- |")
        for n in counts:
            sensors = []
            for i in range(n):
                name = f"s{i + 1}"
                from sdr_assets.paths import DataPaths

                hot = DataPaths(home, name).hot_db
                if not hot.exists():
                    hot.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(home / "hot.db", hot)
                sensors.append(name)
            for one_core in (True, False):
                w = time.perf_counter()
                procs = [run_worker(home, key, one_core, s) for s in sensors]
                results = [collect(p) for p in procs]
                wall = time.perf_counter() - w
                cpu = sum(chain_cpu(r) for r in results)
                print(
                    f"| {n} | {'1' if one_core else os.cpu_count()} | {wall:.1f} | {cpu:.1f} | "
                    f"{wall / args.seconds:.3f} | {args.seconds * n / wall:.1f} |"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
