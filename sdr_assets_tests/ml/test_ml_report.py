"""The report picture (ml.report, ml.waterfall) on real analysis DBs: the window's waterfall from its
IQ on one dBFS scale, UTC and MHz axes, boxes by class with a legend, rtl_433 devices named."""

import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sdr_assets.records import NS_PER_S

RATE_HZ = 250_000
FC_HZ = 433.92e6
T0_NS = int(datetime(2026, 3, 1, 10, 0, tzinfo=UTC).timestamp()) * NS_PER_S


def _window(root: Path, uri: str, key: str, t0_ns: int, t1_ns: int):
    """``uri`` captured into a hot DB, snapshotted and loaded as window ``key`` = [t0_ns, t1_ns)."""
    from sdr_assets.capture.service import CaptureService
    from sdr_assets.capture.uri import open_source
    from sdr_assets.store.snapshot import take_snapshot
    from sdr_assets.store.window import AnalysisDB

    root.mkdir(parents=True, exist_ok=True)
    CaptureService(open_source(uri, realtime=False), root / "hot.db", window_s_for_capacity_check=60.0).run()
    take_snapshot(root / "hot.db", root / "snap.db", nice=0)
    db = AnalysisDB(root / "analysis.db")
    db.open()
    db.load_window(root / "snap.db", key, t0_ns, t1_ns, keep_partitions=2)
    return db


def _tone(n: int, offset_hz: float, amplitude: float) -> bytes:
    """cu8 of a complex tone at ``offset_hz`` from the centre (SigMF's (x - 128) / 128 scale)."""
    t = np.arange(n) / RATE_HZ
    x = amplitude * np.exp(2j * np.pi * offset_hz * t)
    iq = np.empty(2 * n, np.float64)
    iq[0::2], iq[1::2] = x.real, x.imag
    return np.clip(np.round(iq * 127.5 + 127.5), 0, 255).astype(np.uint8).tobytes()


@pytest.fixture
def two_tones(tmp_path):
    """A 4 s window: 1 s of a full-scale tone at 433.97 MHz (centre 433.92 MHz) from 0.5 s, a
    recorded gap, then 1 s of the same tone 20 dB weaker from 2.5 s, retuned to 434.02 MHz."""
    from sdr_assets.sigmf import format_datetime_ns

    f_tone = FC_HZ + 50e3
    parts = [(0.5, FC_HZ, 0.99), (2.5, FC_HZ + 100e3, 0.099)]
    data, captures, pos = b"", [], 0
    for start_s, fc, amp in parts:
        captures.append(
            {
                "core:sample_start": pos,
                "core:frequency": fc,
                "core:datetime": format_datetime_ns(T0_NS + int(start_s * NS_PER_S)),
            }
        )
        data += _tone(RATE_HZ, f_tone - fc, amp)
        pos += RATE_HZ
    folder = tmp_path / "rec"
    folder.mkdir()
    (folder / "tones.sigmf-data").write_bytes(data)
    doc = {"global": {"core:datatype": "cu8", "core:sample_rate": float(RATE_HZ), "core:version": "1.0.0"}}
    (folder / "tones.sigmf-meta").write_text(json.dumps({**doc, "captures": captures, "annotations": []}))
    db = _window(
        tmp_path / "root", f"file://{folder / 'tones.sigmf-meta'}", "lab|2026-03-01-10:00", T0_NS, T0_NS + 4 * NS_PER_S
    )
    yield db, f_tone
    db.close()


def test_waterfall_is_the_iq_in_dbfs_on_one_scale(two_tones):
    from sdr_assets.ml.waterfall import window_waterfall

    db, f_tone = two_tones
    wf = window_waterfall(db.conn, "lab|2026-03-01-10:00", T0_NS, T0_NS + 4 * NS_PER_S, n_cols=400, n_rows=256)
    assert wf.n_samples == 2 * RATE_HZ and wf.covered_ns == 2 * NS_PER_S
    a, b = wf.tiles  # one tile per segment, in time order, each with its own band
    assert (a.col0, a.col1) == (50, 150) and (b.col0, b.col1) == (250, 350)  # 10 ms columns: 0.5-1.5 s, 2.5-3.5 s
    assert (a.freq_lower_hz + a.freq_upper_hz) / 2 == pytest.approx(FC_HZ, abs=RATE_HZ / 512)
    assert b.freq_lower_hz - a.freq_lower_hz == pytest.approx(100e3)
    for tile, level_db in ((a, 0.0), (b, -20.0)):
        assert tile.db.dtype == np.float32 and np.isfinite(tile.db).all()
        row_hz = (tile.freq_upper_hz - tile.freq_lower_hz) / tile.db.shape[0]
        row = int(np.argmax(tile.db.mean(axis=1)))
        assert tile.freq_lower_hz + row * row_hz <= f_tone < tile.freq_lower_hz + (row + 1) * row_hz
        # the same absolute scale in both segments: a full-scale tone reads ~0 dBFS, 20 dB less reads ~-20
        assert np.median(tile.db[row]) == pytest.approx(level_db, abs=1.0)
        assert np.median(tile.db) < level_db - 20  # the rest of the band is far below the tone


def test_report_of_a_window_with_a_gap_and_a_retune(two_tones, tmp_path):
    from sdr_assets.ml.report import render_report

    db, _ = two_tones
    rep = render_report(db, "lab|2026-03-01-10:00", tmp_path / "root", tmp_path / "r.png")
    d = rep.drawn
    assert d.x_range_ns == (T0_NS, T0_NS + 4 * NS_PER_S) and rep.window_s == 4.0 and rep.covered_s == 2.0
    ((lo, hi),) = d.y_ranges_hz  # a retune by 100 kHz: one panel holding both bands
    assert lo == pytest.approx(FC_HZ - RATE_HZ / 2, abs=RATE_HZ / 512)
    assert hi == pytest.approx(FC_HZ + 100e3 + RATE_HZ / 2, abs=RATE_HZ / 512)
    assert d.legend == ["no samples"]  # no detections, no decodes: only the gap is named
    assert d.db_range[1] == pytest.approx(0.0, abs=1.0) and d.db_range[1] - d.db_range[0] >= 30
    assert "no detections" in d.title and rep.n_boxes_drawn == rep.n_decodes_drawn == 0


def test_report_picture_has_axes_a_legend_by_class_and_decoded_devices_named(tmp_path):
    from sdr_assets.ml.report import CLASS_COLOURS, render_report
    from sdr_assets.store.detections import DetectionRow
    from sdr_assets.store.messages import DecodeRun, MessageRecord, replace_decodes

    key = "roof|2026-03-01-10:00"
    t1_ns = T0_NS + 6 * NS_PER_S
    uri = f"synthetic://?seed=5&rate={RATE_HZ}&center={FC_HZ:.0f}&profile=ism&start=2026-03-01T10:00:00Z&duration_s=6"
    db = _window(tmp_path / "root", uri, key, T0_NS, t1_ns)
    anns = db.annotations(key)
    rows = [
        DetectionRow(a.t_start_ns, a.t_end_ns, a.freq_lower_hz, a.freq_upper_hz, a.label, 0.9, -1, 0, 0) for a in anns
    ]
    rows.append(DetectionRow(T0_NS + NS_PER_S, T0_NS + 2 * NS_PER_S, FC_HZ - 5e3, FC_HZ + 5e3, "burst", 0.5, -1, 0, 0))
    db.replace_detections(key, "yolo-test-7", rows)
    want = {lab: sum(r.label == lab for r in rows) for lab in CLASS_COLOURS}
    assert sum(v > 0 for v in want.values()) >= 3 and want["chirp"] == want["wideband"] == 0
    pkg = anns[0]
    msg = MessageRecord(
        pkg.t_start_ns, pkg.t_end_ns, FC_HZ, None, pkg.freq_lower_hz, pkg.freq_upper_hz, "Acurite-Tower", "41",
        "A", "OOK", -3.0, 12.0, -15.0, {"model": "Acurite-Tower"}, decoder_version="22.11",
    )  # fmt: skip
    run = DecodeRun(key, "rtl_433", "22.11", T0_NS, 1, 6 * RATE_HZ, 2, 0, 0.1)
    replace_decodes(db.conn, run, [], [msg, msg])  # one package, two identical messages

    out = tmp_path / "reports" / "roof" / "2026-03-01-1000.png"
    rep = render_report(db, key, tmp_path / "root", out)
    db.close()
    img = Image.open(io.BytesIO(out.read_bytes()))
    assert out.read_bytes() == rep.png and img.format == "PNG" and img.size == (1200, 595)
    assert 20_000 < len(rep.png) < 400_000
    d = rep.drawn
    assert d.xlabel == "time (UTC, HH:MM:SS)" and d.ylabel == "frequency (MHz)"
    assert "dBFS" in d.colorbar_label
    # the legend lists exactly the classes present, with their counts, then the decodes
    assert d.legend == [f"{k} ({n})" for k, n in want.items() if n] + ["rtl_433 decoded (1 packages, 1 devices)"]
    assert d.device_names == ["Acurite-Tower id 41 ch A"]
    assert rep.n_boxes_drawn == len(rows) and rep.n_decodes_drawn == 1
    assert rep.devices == {"Acurite-Tower id 41 ch A": 2} and rep.counts["burst"] == 1
    # the time axis is the whole window, labelled HH:MM:SS in UTC; the band is the capture's
    assert d.x_range_ns == (T0_NS, t1_ns)
    assert d.x_ticks and all(re.fullmatch(r"10:00:0\d", t) for t in d.x_ticks) and d.x_ticks[0] == "10:00:00"
    assert d.y_ranges_hz == [
        pytest.approx((FC_HZ - RATE_HZ / 2 - RATE_HZ / 1024, FC_HZ + RATE_HZ / 2 - RATE_HZ / 1024))
    ]
    assert key in d.title and "sensor roof" in d.title and "yolo-test-7" in d.title and "rtl_433 22.11" in d.title
    md = rep.markdown("t")
    assert "data:image/png;base64," in md and "| ook |" in md and "| Acurite-Tower id 41 ch A | 2 |" in md


def test_report_of_a_partition_never_loaded_says_so(tmp_path):
    from sdr_assets.ml.report import render_report
    from sdr_assets.store.window import AnalysisDB

    with AnalysisDB(tmp_path / "analysis.db") as db:
        rep = render_report(db, "roof|2026-03-01-11:00", tmp_path, tmp_path / "none.png")
    assert (tmp_path / "none.png").read_bytes() == rep.png and rep.n_boxes_drawn == 0
    assert "no samples held" in rep.drawn.title and rep.window_s == 0 and rep.drawn.legend == []


def test_far_apart_tunings_get_a_panel_each():
    from sdr_assets.ml.report import bands_of
    from sdr_assets.ml.waterfall import Tile

    def tile(col0, fc_hz, fs_hz=RATE_HZ):
        return Tile(col0, col0 + 10, fc_hz - fs_hz / 2, fc_hz + fs_hz / 2, np.zeros((4, 10), np.float32))

    a, b, c, d = tile(0, 868.3e6), tile(10, 433.92e6), tile(20, 434.02e6), tile(30, 434.7e6)
    bands = bands_of([a, b, c, d])
    assert [(x.freq_lower_hz, x.freq_upper_hz) for x in bands] == [
        (433.92e6 - RATE_HZ / 2, 434.02e6 + RATE_HZ / 2),  # overlapping: one panel
        (434.7e6 - RATE_HZ / 2, 434.7e6 + RATE_HZ / 2),  # 430 kHz above the first: over its 350 kHz
        (868.3e6 - RATE_HZ / 2, 868.3e6 + RATE_HZ / 2),
    ]
    assert [x.tiles for x in bands] == [[b, c], [d], [a]] and bands[0].covered_cols == 20
