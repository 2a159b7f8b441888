"""Spectrogram frames on a real analysis DB: the pixel <-> (t, f) mapping stays exact with the
faster PNG encoder and the energy detector riding on the same STFT (store.frames)."""

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from sdr_assets.dsp.iq import complex64_to_cu8
from sdr_assets.dsp.stft import FrameGeometry
from sdr_assets.records import NS_PER_S, Chunk, SourceInfo, samples_to_ns
from sdr_assets.store.frames import encode_png_gray, render_partition
from sdr_assets.store.hot import HotWriter
from sdr_assets.store.snapshot import take_snapshot
from sdr_assets.store.window import AnalysisDB

FS_HZ = 1_024_000.0  # a 640-point window is 0.625 ms: the detector reuses the spectrogram's STFT
FC_HZ = 433.92e6
T0 = 1_700_000_000 * NS_PER_S
NFFT = HOP = COLS = 640
FRAME = COLS * HOP  # samples a frame
TONE_HZ = 200e3  # +200 kHz from the centre, the whole recording
BURST_HZ = -300e3
BURST_AT = FRAME + 123 * HOP  # frame 1, exactly at column 123
BURST_N = 12_800  # 12.5 ms: 20 columns
KEY = "default|k"
N_SAMPLES = int(3.2 * FRAME)


def _iq(n: int) -> np.ndarray:
    rng = np.random.default_rng(5)
    k = np.arange(n)
    x = (rng.standard_normal(2 * n).astype(np.float32) * np.float32(0.02)).view(np.complex64)
    x += (0.1 * np.exp(2j * np.pi * TONE_HZ / FS_HZ * k)).astype(np.complex64)
    s = slice(BURST_AT, BURST_AT + BURST_N)
    x[s] += (0.3 * np.exp(2j * np.pi * BURST_HZ / FS_HZ * k[s])).astype(np.complex64)
    return x


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """3.2 frames of samples rendered with the energy detector on: (db, stats, data root)."""
    d = tmp_path_factory.mktemp("frames")
    cu8 = complex64_to_cu8(_iq(N_SAMPLES)).tobytes()
    info = SourceInfo(uri="synthetic://f", kind="synthetic", center_freq_hz=FC_HZ, sample_rate_hz=FS_HZ)
    with HotWriter(d / "hot.db", cap_bytes=None) as w:
        cid = w.begin_capture(info, 0)
        step, t = 200_000, T0  # chunks that do not line up with frames
        for i in range(0, len(cu8), step):
            c = Chunk(t, FC_HZ, FS_HZ, None, cu8[i : i + step])
            w.write_batch(cid, [c], [], [])
            t = c.t_end_ns
    snap = take_snapshot(d / "hot.db", d / "snap.db")
    db = AnalysisDB(d / "analysis.db")
    db.open()
    db.load_window(snap.path, KEY, T0, T0 + 10 * NS_PER_S, keep_partitions=2)
    st = render_partition(db, KEY, d / "spectrograms", nfft=NFFT, hop=HOP, frame_cols=COLS, energy={})
    yield db, st, d
    db.close()


def _image(root, frame) -> np.ndarray:
    img = Image.open(root / frame.path)
    assert img.mode == "L" and img.size == (COLS, NFFT)  # 8-bit grey, 640 x 640: what YOLO and the UI read
    return np.asarray(img)


def test_a_tone_lands_on_its_row_in_every_frame(rendered):
    db, st, root = rendered
    frames = db.frames(KEY)
    assert st.n_frames == st.expected_frames == len(frames) == 4  # 3 whole frames and a padded one
    for f in frames:
        geom = FrameGeometry(f.t_start_ns, f.sample_rate_hz, f.center_freq_hz, f.nfft, f.hop, f.width_px, f.height_px)
        img = _image(root, f).astype(np.float32)
        offset = round((f.t_start_ns - T0) * FS_HZ / NS_PER_S)
        cols = min(COLS, (N_SAMPLES - offset) // HOP)  # the padded frame's black columns left out
        row = int(np.argmax(img[:, :cols].mean(axis=1)))
        assert row == int(geom.freq_hz_to_y(FC_HZ + TONE_HZ))  # exact: the tone sits on a bin centre
        assert abs(geom.y_to_freq_hz(row) - (FC_HZ + TONE_HZ)) < geom.bin_hz / 2


def test_a_burst_starts_in_its_column(rendered):
    db, _, root = rendered
    f = db.frames(KEY)[1]
    geom = FrameGeometry(f.t_start_ns, f.sample_rate_hz, f.center_freq_hz, f.nfft, f.hop, f.width_px, f.height_px)
    t_burst = T0 + samples_to_ns(BURST_AT, FS_HZ)
    x0 = geom.t_ns_to_x(t_burst)
    assert x0 == pytest.approx(123, abs=1e-6)
    img = _image(root, f)
    y = int(geom.freq_hz_to_y(FC_HZ + BURST_HZ))
    lit = np.flatnonzero(img[y] > 200)
    assert lit[0] == 123 and lit[-1] == 123 + BURST_N // HOP - 1  # first and last column of the burst
    assert img[y, 122] < 100 and img[y, 123 + BURST_N // HOP] < 100


def test_the_energy_detector_ran_once_on_the_same_stft_and_stored_its_burst(rendered):
    db, st, _ = rendered
    run = db.energy_run(KEY)
    assert st.n_bursts == run.n_bursts == 1 and "spectrogram's STFT 640/640" in run.geometry
    (b,) = db.energy_bursts(KEY)
    t_burst = T0 + samples_to_ns(BURST_AT, FS_HZ)
    assert (
        abs(b.t_start_ns - t_burst) < 200_000 and abs(b.t_end_ns - (t_burst + samples_to_ns(BURST_N, FS_HZ))) < 200_000
    )
    assert b.freq_lower_hz <= FC_HZ + BURST_HZ <= b.freq_upper_hz  # the tone is persistent: the floor, not a burst


def test_a_window_loaded_again_makes_stored_bursts_stale(rendered):
    db, _, d = rendered
    assert db.energy_bursts(KEY) is not None
    db.load_window(d / "snap.db", KEY, T0, T0 + 10 * NS_PER_S, keep_partitions=2)
    assert db.energy_bursts(KEY) is None  # rendered before this load: read as missing
    render_partition(db, KEY, d / "spectrograms", nfft=NFFT, hop=HOP, frame_cols=COLS, energy={})
    assert len(db.energy_bursts(KEY)) == 1


@pytest.mark.parametrize("shape", [(640, 640), (17, 5), (1, 1)])
def test_png_encoder_round_trips_through_pil_and_opencv(shape):
    img = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    png = encode_png_gray(img)
    assert (cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED) == img).all()
    pil = Image.open(io.BytesIO(png))
    assert pil.mode == "L" and (np.asarray(pil) == img).all()
    with pytest.raises(ValueError, match="H x W"):
        encode_png_gray(np.zeros((4, 4, 3), np.uint8))
