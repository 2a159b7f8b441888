"""Dataset writing, and a tiny end-to-end run under a guard that fails on ANY network attempt:
synthetic band -> spectrogram PNGs + labels in the analysis DB -> YOLO dataset (split by time)
-> 2-epoch training on CPU -> registry row -> ONNX export -> onnxruntime and torch detectors.
"""

import os
import socket
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from sdr_assets.errors import ModelError
from sdr_assets.ml.dataset import FrameLabels, build_dataset, frame_labels_from_db, split_by_time
from sdr_assets.ml.labels import CLASSES, annotation_to_yolo
from sdr_assets.records import Annotation, samples_to_ns

T0 = 1_700_000_000_000_000_000
FS, FC = 256_000.0, 433_920_000.0
NFFT = HOP = COLS = 128  # 128 x 128 frames of 64 ms: small enough to train in seconds


class NetworkBlocked(OSError):
    pass


@pytest.fixture
def no_network(monkeypatch):
    """Every non-AF_UNIX connect, DNS lookup or datagram send is recorded and refused; the test
    fails at teardown if anything tried (even if the caller swallowed the error)."""
    attempts: list[tuple[str, object]] = []
    real_connect, real_connect_ex, real_sendto = socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto

    def refuse(what, target):
        attempts.append((what, target))
        raise NetworkBlocked(f"network access attempted in an offline test: {what} {target!r}")

    def connect(self, address):
        if self.family == socket.AF_UNIX:
            return real_connect(self, address)
        refuse("connect", address)

    def connect_ex(self, address):
        if self.family == socket.AF_UNIX:
            return real_connect_ex(self, address)
        refuse("connect_ex", address)

    def sendto(self, data, *args):
        if self.family == socket.AF_UNIX:
            return real_sendto(self, data, *args)
        refuse("sendto", args[-1])

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket.socket, "sendto", sendto)
    monkeypatch.setattr(socket, "create_connection", lambda address, *a, **k: refuse("create_connection", address))
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: refuse("getaddrinfo", host))
    monkeypatch.setattr(socket, "gethostbyname", lambda host: refuse("gethostbyname", host))
    yield attempts
    assert attempts == [], f"network access attempted: {attempts}"


def test_the_network_guard_refuses_and_records(no_network):
    with pytest.raises(NetworkBlocked):
        socket.create_connection(("example.com", 80), timeout=1)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s, pytest.raises(NetworkBlocked):
        s.connect(("127.0.0.1", 9))
    with pytest.raises(NetworkBlocked):
        socket.getaddrinfo("one.one.one.one", 0)
    assert [a[0] for a in no_network] == ["create_connection", "connect", "getaddrinfo"]
    no_network.clear()  # this test's own attempts were the point


def _png(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 60, (32, 32), dtype=np.uint8)).save(path)
    return path


def test_dataset_is_split_by_time_with_yolo_layout(tmp_path):
    frames = [
        FrameLabels(
            i,
            _png(tmp_path / f"f{i}.png", i),
            T0 + (9 - i) * 10**9,  # ids run backwards in time
            [(1, 0.5, 0.5, 0.25, 0.125)] if i % 2 else [],
        )
        for i in range(10)
    ]
    info = build_dataset(frames[::3] + frames[1::3] + frames[2::3], tmp_path / "ds", val_fraction=0.2)
    assert (info.n_train, info.n_val) == (8, 2)
    assert set(info.val_frame_ids) == {0, 1}  # the two LATEST frames
    assert info.val_t_start_ns == T0 + 8 * 10**9
    starts = {f.frame_id: f.t_start_ns for f in frames}
    assert max(starts[i] for i in info.train_frame_ids) < min(starts[i] for i in info.val_frame_ids)
    data = yaml.safe_load(info.data_yaml.read_text())
    assert Path(data["path"]).is_absolute() and data["names"] == dict(enumerate(CLASSES)) and data["nc"] == 6
    root = Path(data["path"])
    assert sorted(p.name for p in (root / "images" / "val").iterdir()) == ["000000000.png", "000000001.png"]
    assert (root / "labels" / "val" / "000000001.txt").read_text() == "1 0.500000 0.500000 0.250000 0.125000\n"
    assert (root / "labels" / "val" / "000000000.txt").read_text() == ""  # background frame
    img = root / "images" / "train" / "000000009.png"
    assert os.stat(img).st_ino == os.stat(tmp_path / "f9.png").st_ino  # hard link, no copy
    # rebuilding replaces the previous split: no stale image survives
    info2 = build_dataset(frames[:4], tmp_path / "ds", val_fraction=0.25)
    assert (info2.n_train, info2.n_val) == (3, 1)
    assert len(list((root / "images" / "train").iterdir())) == 3


def test_dataset_refuses_what_it_cannot_train_on(tmp_path):
    one = [FrameLabels(1, _png(tmp_path / "a.png", 1), T0, [])]
    with pytest.raises(ModelError, match="at least 2 frames"):
        split_by_time(one, 0.2)
    with pytest.raises(ModelError, match="val_fraction"):
        split_by_time(one * 2, 1.0)
    two = [FrameLabels(1, tmp_path / "missing.png", T0, []), FrameLabels(2, _png(tmp_path / "b.png", 2), T0 + 1, [])]
    with pytest.raises(ModelError, match="missing"):
        build_dataset(two, tmp_path / "ds")
    bad = [FrameLabels(i, _png(tmp_path / f"c{i}.png", i), T0 + i, [(9, 0.5, 0.5, 0.1, 0.1)]) for i in range(2)]
    with pytest.raises(ModelError, match="class id 9"):
        build_dataset(bad, tmp_path / "ds")


def _analysis_db(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        from sdr_assets.store.db import ANALYSIS_APP_ID, analysis_migrations, migrate

        migrate(conn, analysis_migrations(), application_id=ANALYSIS_APP_ID)
    except ImportError:  # the migration runner not there yet: the schema text itself
        from importlib import resources

        conn.executescript(resources.files("sdr_assets.store").joinpath("analysis_schema.sql").read_text())
    return conn


def _synthetic_partition(conn: sqlite3.Connection, root: Path, pk: str, n_frames: int) -> list[Path]:
    """Render a seeded band with the dsp pipeline into PNG frames; index frames + labels."""
    from sdr_assets.dsp import stft
    from sdr_assets.dsp.synth import BandScenario

    band = BandScenario(
        7,
        FS,
        FC,
        emissions_per_s=40.0,
        snr_db_range=(20.0, 30.0),
        duration_s_range=(0.01, 0.05),
        kinds=("cw", "ook", "fsk", "chirp", "wideband"),
    )
    cu8, emissions = band.render(n_frames * COLS * HOP)
    anns = [
        Annotation(
            T0 + samples_to_ns(e.start_sample, FS),
            T0 + samples_to_ns(e.end_sample, FS),
            e.freq_lower_hz,
            e.freq_upper_hz,
            e.label,
        )
        for e in emissions
    ]
    folder = root / "spectrograms" / pk
    folder.mkdir(parents=True)
    paths = []
    for k, db in enumerate(stft.frames_from_cu8(cu8, NFFT, HOP, COLS)):
        t0 = T0 + samples_to_ns(k * COLS * HOP, FS)
        path = folder / f"{t0}.png"
        Image.fromarray(stft.normalize_frame_u8(db)).save(path)
        paths.append(path)
        geom = stft.FrameGeometry(t0, FS, FC, NFFT, HOP, COLS, NFFT)
        fid = conn.execute(
            "INSERT INTO frames (partition_key, t_start_ns, t_end_ns, freq_lower_hz, freq_upper_hz, center_freq_hz,"
            " sample_rate_hz, nfft, hop, width_px, height_px, first_seq, last_seq, path)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                pk,
                t0,
                geom.t_end_ns,
                geom.freq_lower_hz,
                geom.freq_upper_hz,
                FC,
                FS,
                NFFT,
                HOP,
                COLS,
                NFFT,
                k,
                k,
                str(path.relative_to(root)),
            ),
        ).lastrowid
        for a in anns:
            box = annotation_to_yolo(geom, a.t_start_ns, a.t_end_ns, a.freq_lower_hz, a.freq_upper_hz)
            if box is not None:
                conn.execute(
                    "INSERT INTO labels (frame_id, partition_key, class_name, x_center, y_center, width,"
                    " height, auto) VALUES (?,?,?,?,?,?,?,0)",
                    (fid, pk, a.label, *box),
                )
    return paths


def test_tiny_end_to_end_offline(tmp_path, data_root, no_network):
    pytest.importorskip("sdr_assets.dsp.synth")
    import torch

    torch.set_num_threads(2)
    from sdr_assets.ml.infer import Detection, OnnxDetector, TorchDetector, load_detector
    from sdr_assets.ml.labels import BoxGeometry
    from sdr_assets.ml.postprocess import TimeFreqBox, suppress_overlaps, to_time_freq
    from sdr_assets.ml.train import evaluate, export_onnx, train_detector
    from sdr_assets.store.registry import current_model, promote, register_model, set_onnx_path

    db_path = data_root / "analysis.db"
    conn = _analysis_db(db_path)
    pk = "2026-11-23-00:00"
    paths = _synthetic_partition(conn, data_root, pk, n_frames=8)
    from sdr_assets.store.window import AnalysisDB

    with AnalysisDB(db_path) as db:
        frames = frame_labels_from_db(db, [pk], root=data_root)
    assert [f.path for f in frames] == paths and sum(len(f.boxes) for f in frames) >= 8
    info = build_dataset(frames, data_root / "datasets" / "run1", val_fraction=0.25)
    assert (info.n_train, info.n_val) == (6, 2)

    epochs_seen = []
    result = train_detector(
        info.data_yaml,
        data_root / "models" / "run1",
        epochs=2,
        imgsz=128,
        batch=4,
        device="cpu",
        workers=0,
        seed=0,
        on_epoch=lambda e, m: epochs_seen.append((e, m)),
    )
    assert result.weights_path.is_file() and result.weights_path.name == "best.pt"
    assert result.epochs_run == 2 and result.device == "cpu" and result.params["imgsz"] == 128
    assert [e for e, _ in epochs_seen] == [1, 2]
    assert {"map50", "map50_95", "precision", "recall", "train/box_loss"} <= set(epochs_seen[-1][1])
    assert set(result.metrics) == {"map50", "map50_95", "precision", "recall"}
    assert all(0.0 <= v <= 1.0 for v in result.metrics.values())
    print(f"\ntiny training: {result.seconds:.1f} s, metrics {result.metrics}")

    val_metrics = evaluate(result.weights_path, info.data_yaml, imgsz=128, device="cpu")
    assert set(val_metrics) == {"map50", "map50_95", "precision", "recall"}
    assert val_metrics["map50"] == pytest.approx(result.metrics["map50"], abs=1e-6)  # best.pt, same val frames

    # fine-tuning a checkpoint starts from ITS weights (ultralytics drops them under
    # pretrained=False): one epoch at learning rate 0 leaves every parameter as it was
    tuned = train_detector(
        info.data_yaml,
        data_root / "models" / "tune",
        model=result.weights_path,
        epochs=1,
        imgsz=128,
        batch=4,
        device="cpu",
        optimizer="SGD",
        lr0=0.0,
        lrf=1.0,
        warmup_epochs=0,
        warmup_bias_lr=0.0,
        momentum=0.0,
    )
    before, after = (
        torch.load(w, map_location="cpu", weights_only=False)["model"].float().state_dict()
        for w in (result.weights_path, tuned.weights_path)
    )  # best.pt: the EMA as "model"
    params = [k for k in before if "running_" not in k and "num_batches" not in k]
    assert len(params) > 100 and all(torch.equal(before[k], after[k]) for k in params)

    register_model(
        db_path, "20261123T020000-yolo11n", result.weights_path, None, [pk], result.params, result.metrics, CLASSES
    )
    onnx_path = export_onnx(result.weights_path, imgsz=128)
    assert onnx_path.suffix == ".onnx" and onnx_path.stat().st_size > 100_000
    set_onnx_path(db_path, "20261123T020000-yolo11n", onnx_path)
    promote(db_path, "20261123T020000-yolo11n")
    row = current_model(db_path)

    det = load_detector(row)  # CPU here: onnxruntime
    assert isinstance(det, OnnxDetector) and det.classes == CLASSES and det.imgsz == 128
    out = det([paths[-1], paths[-2]])
    assert isinstance(out, list) and len(out) == 2 and all(isinstance(d, list) for d in out)
    # a low threshold yields boxes to check the decoding on: torch (ultralytics) and onnxruntime agree
    onnx_low = OnnxDetector(onnx_path, 128, CLASSES, conf=0.001)([paths[-1]])[0]
    torch_low = TorchDetector(result.weights_path, "cpu", 128, conf=0.001)([paths[-1]])[0]
    assert onnx_low and all(isinstance(d, Detection) and d.class_name in CLASSES for d in onnx_low)
    for d in onnx_low:
        assert 0 <= d.x0 <= d.x1 <= COLS and 0 <= d.y0 <= d.y1 <= NFFT and 0.001 <= d.confidence <= 1
    assert len(onnx_low) == pytest.approx(len(torch_low), abs=max(2, len(torch_low) // 10))
    best_o, best_t = onnx_low[0], torch_low[0]
    assert best_o.class_name == best_t.class_name
    assert best_o.confidence == pytest.approx(best_t.confidence, abs=1e-3)
    assert np.allclose(best_o[2:], best_t[2:], atol=0.5)

    cur = conn.execute("SELECT * FROM frames WHERE frame_id = ?", (frames[-1].frame_id,))
    geom = BoxGeometry.of(dict(zip([c[0] for c in cur.description], cur.fetchone())))
    boxes = suppress_overlaps(to_time_freq(onnx_low, geom, frames[-1].frame_id))
    assert boxes and all(isinstance(b, TimeFreqBox) for b in boxes)
    assert all(geom.t_start_ns <= b.t_start_ns <= b.t_end_ns <= geom.image_t_end_ns for b in boxes)
    conn.close()


def test_untrained_checkpoint_loads_with_the_product_classes(tmp_path, no_network):
    from sdr_assets.ml.infer import TorchDetector
    from sdr_assets.ml.train import save_untrained

    weights = save_untrained(tmp_path / "untrained.pt")
    det = TorchDetector(weights, "cpu", imgsz=64)
    assert det.classes == CLASSES
    out = det([np.zeros((64, 64), dtype=np.uint8)])
    assert out == [[]] or all(d.class_name in CLASSES for d in out[0])
    with pytest.raises(ModelError, match="yaml"):
        save_untrained(tmp_path / "x.pt", model="yolo11n.pt")


def test_a_bare_pt_name_is_refused_before_anything_downloads(tmp_path, no_network):
    from sdr_assets.ml.train import train_detector

    data_yaml = tmp_path / "data.yaml"
    data_yaml.write_text("path: /nowhere\n")
    with pytest.raises(ModelError, match="would be downloaded"):
        train_detector(data_yaml, tmp_path / "out", model="yolo11n.pt", epochs=1)
    with pytest.raises(ModelError, match="build the dataset"):
        train_detector(tmp_path / "missing.yaml", tmp_path / "out")


def _spectrogram_like(path: Path, seed: int) -> Path:
    """A grey 160 x 160 frame: noise with a few bright rectangles (bursts and a tone)."""
    rng = np.random.default_rng(seed)
    img = rng.normal(40, 12, (160, 160))
    for _ in range(4):
        x0, y0 = rng.integers(0, 120, 2)
        img[y0 : y0 + rng.integers(3, 30), x0 : x0 + rng.integers(8, 40)] += rng.uniform(90, 180)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
    return path


CONF_UNTRAINED = 1e-3  # random weights score near the head's bias prior: a few boxes a frame


def test_batched_inference_gives_the_boxes_of_one_at_a_time(tmp_path, no_network):
    from sdr_assets.ml.infer import OnnxDetector, decode_output, letterbox, load_image
    from sdr_assets.ml.train import export_onnx, save_untrained

    weights = save_untrained(tmp_path / "untrained.pt")
    dynamic = export_onnx(weights, imgsz=128)
    paths = [_spectrogram_like(tmp_path / f"{i}.png", i) for i in range(5)]
    batched = OnnxDetector(dynamic, conf=CONF_UNTRAINED, batch=4)  # 5 frames: a batch of 4, then 1
    assert batched.fixed_batch is None and batched.batch == 4 and batched.imgsz == 128
    one = OnnxDetector(dynamic, conf=CONF_UNTRAINED, batch=1)
    got, ref = batched(paths), one(paths)
    # the plain loop of before: 3-channel image, letterbox, one image a run, decode
    plain = []
    for p in paths:
        img = load_image(p)
        boxed, r, pad = letterbox(img, 128)
        x = np.ascontiguousarray(boxed[:, :, ::-1].transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
        out = one.session.run(None, {one.input_name: x})[0]
        plain.append(decode_output(out, one.classes, r=r, pad=pad, hw=img.shape[:2], conf=CONF_UNTRAINED))
    assert sum(map(len, got)) > 0
    for a, b, c in zip(got, ref, plain):
        assert len(a) == len(b) == len(c)
        for x, y, z in zip(a, b, c):
            assert x.class_name == y.class_name == z.class_name
            assert x.confidence == pytest.approx(y.confidence, abs=1e-4) == pytest.approx(z.confidence, abs=1e-4)
            assert np.allclose(x[2:], y[2:], atol=0.05) and np.allclose(y[2:], z[2:], atol=0.05)
    # an export with a fixed batch of 1 (before this session) still runs, one frame a run
    from ultralytics import YOLO  # after export_onnx made ultralytics offline

    fixed = Path(YOLO(str(weights)).export(format="onnx", imgsz=128, dynamic=False, device="cpu", simplify=False))
    old = OnnxDetector(fixed, conf=CONF_UNTRAINED, batch=16)
    assert old.fixed_batch == 1 and old.batch == 1
    assert [len(d) for d in old(paths)] == [len(d) for d in ref]
