"""Annotation <-> pixel/YOLO box geometry, with pixel indices worked out by hand."""

import sqlite3

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdr_assets.errors import ModelError
from sdr_assets.ml.labels import (
    AUTO_CLASS,
    CLASSES,
    EDGE_SLIVER_PX,
    MIN_BOX_PX,
    BoxGeometry,
    annotation_to_pixels,
    annotation_to_yolo,
    class_id,
    label_frame,
    pixel_span,
    pixels_to_annotation,
    yolo_to_pixels,
)
from sdr_assets.records import Annotation

# fs = 256 kHz, hop = 256 -> one column = 1 ms; band 433.792..434.048 MHz on 256 rows -> 1 kHz a row.
T0 = 1_700_000_000_000_000_000
FS = 256_000.0
F_LO, F_HI = 433_792_000.0, 434_048_000.0
ROW = {
    "t_start_ns": T0,
    "t_end_ns": T0 + 641_000_000,  # t_end includes the last FFT window: hop decides
    "freq_lower_hz": F_LO,
    "freq_upper_hz": F_HI,
    "center_freq_hz": 433_920_000.0,
    "sample_rate_hz": FS,
    "nfft": 256,
    "hop": 256,
    "width_px": 640,
    "height_px": 256,
}
MS = 1_000_000


def test_known_annotation_lands_on_hand_computed_pixels():
    g = BoxGeometry.of(ROW)
    assert g.col_ns == 1_000_000.0 and g.row_hz == 1000.0
    # 100..150 ms after the frame start -> columns 100..149; 433.900..433.920 MHz ->
    # top row (434.048 - 433.920) / 0.001 = 128, bottom row (434.048 - 433.900) / 0.001 - 1 = 147.
    box = annotation_to_pixels(g, T0 + 100 * MS, T0 + 150 * MS, 433_900_000.0, 433_920_000.0)
    assert box == (100.0, 128.0, 150.0, 148.0)
    assert pixel_span(box) == (100, 149, 128, 147)
    xc, yc, w, h = annotation_to_yolo(g, T0 + 100 * MS, T0 + 150 * MS, 433_900_000.0, 433_920_000.0)
    assert (xc, yc, w, h) == pytest.approx((125 / 640, 138 / 256, 50 / 640, 20 / 256))


def test_box_covers_exactly_the_drawn_pixels():
    """Draw the emission into an image by its pixel span; the YOLO box covers those pixels only."""
    g = BoxGeometry.of(ROW)
    img = np.zeros((256, 640), dtype=np.uint8)
    c0, c1, r0, r1 = pixel_span(
        annotation_to_pixels(g, T0 + 300 * MS, T0 + 312 * MS, 434_000_000.0, 434_010_000.0, min_px=8)
    )
    assert (c0, c1, r0, r1) == (300, 311, 38, 47)
    img[r0 : r1 + 1, c0 : c1 + 1] = 255
    x0, y0, x1, y1 = yolo_to_pixels(
        *annotation_to_yolo(g, T0 + 300 * MS, T0 + 312 * MS, 434_000_000.0, 434_010_000.0, min_px=8), 640, 256
    )
    rows, cols = np.nonzero(img)
    assert (cols.min(), cols.max() + 1, rows.min(), rows.max() + 1) == pytest.approx((x0, x1, y0, y1))


def test_partially_inside_is_clipped_and_outside_is_skipped():
    g = BoxGeometry.of(ROW)
    # starts 20 ms before the frame, ends 10 ms in; upper edge above the band
    assert annotation_to_pixels(g, T0 - 20 * MS, T0 + 10 * MS, 434_040_000.0, 434_100_000.0, min_px=8) == (
        0.0,
        0.0,
        10.0,
        8.0,
    )
    # runs past the end of the image (640 columns)
    assert annotation_to_pixels(g, T0 + 630 * MS, T0 + 700 * MS, F_LO, F_LO + 5000)[2] == 640.0
    assert annotation_to_pixels(g, T0 - 50 * MS, T0 - 1 * MS, F_LO, F_HI) is None  # before
    # a sliver: 3 of its 53 columns inside the frame is not labelled here (the next frame has it)
    assert annotation_to_pixels(g, T0 - 50 * MS, T0 + 3 * MS, F_LO, F_HI) is None
    assert annotation_to_pixels(g, T0 + 637 * MS, T0 + 690 * MS, F_LO, F_HI) is None
    # ... but a whole short emission inside the frame is widened, never dropped
    assert annotation_to_pixels(g, T0 + 100 * MS, T0 + 103 * MS, F_LO, F_HI) is not None
    assert annotation_to_pixels(g, T0 + 640 * MS, T0 + 650 * MS, F_LO, F_HI) is None  # after the image
    assert annotation_to_pixels(g, T0, T0 + MS, F_HI + 1000, F_HI + 5000) is None  # above the band


def test_thin_boxes_widen_to_the_minimum_inside_the_frame():
    g = BoxGeometry.of(ROW)
    # a CW tone 100 Hz wide (0.1 row) centred at row 64.5, lasting 0.2 ms (0.2 column)
    box = annotation_to_pixels(g, T0 + 10 * MS, T0 + 10 * MS + 200_000, 433_983_450.0, 433_983_550.0)
    x0, y0, x1, y1 = box
    assert x1 - x0 == pytest.approx(MIN_BOX_PX) and y1 - y0 == pytest.approx(MIN_BOX_PX)
    assert (x0 + x1) / 2 == pytest.approx(10.1) and (y0 + y1) / 2 == pytest.approx(64.5)
    # the same tone at the very top row stays inside the image
    top = annotation_to_pixels(g, T0 + 10 * MS, T0 + 11 * MS, F_HI - 100, F_HI)
    assert top[1] == 0.0 and top[3] == pytest.approx(MIN_BOX_PX)


def test_hop_sets_the_column_pitch_else_the_span():
    with_hop = BoxGeometry.of(ROW)
    no_hop = BoxGeometry.of({k: v for k, v in ROW.items() if k != "hop"})
    assert with_hop.col_ns == 1_000_000.0
    assert no_hop.col_ns == pytest.approx(641_000_000 / 640)


def test_geometry_from_a_sqlite_row_and_from_dsp_frame_geometry():
    conn = sqlite3.connect(":memory:")
    conn.row_factory = sqlite3.Row
    cols = ", ".join(ROW)
    row = conn.execute(f"SELECT {', '.join('? AS ' + k for k in ROW)}", list(ROW.values())).fetchone()
    assert set(row.keys()) == set(cols.split(", "))
    assert BoxGeometry.of(row) == BoxGeometry.of(ROW)
    stft = pytest.importorskip("sdr_assets.dsp.stft")
    fg = stft.FrameGeometry(T0, FS, 433_920_000.0, nfft=256, hop=256, width_px=640, height_px=256)
    g = BoxGeometry.of(fg)
    # our pixel coordinates agree with the dsp geometry's own mapping
    assert g.col_ns == fg.col_ns and g.row_hz == fg.row_hz
    x0, y0, x1, y1 = annotation_to_pixels(g, T0 + 100 * MS, T0 + 150 * MS, 433_900_000.0, 433_920_000.0)
    assert x0 == pytest.approx(fg.t_ns_to_x(T0 + 100 * MS)) and y0 == pytest.approx(fg.freq_hz_to_y(433_920_000.0))


@settings(max_examples=200, deadline=None)
@given(
    t0_ms=st.floats(-100, 700), dur_ms=st.floats(0, 300), f0=st.floats(F_LO - 20e3, F_HI + 20e3), bw=st.floats(0, 100e3)
)
def test_inverse_round_trips_within_a_pixel(t0_ms, dur_ms, f0, bw):
    g = BoxGeometry.of(ROW)
    t0, t1 = T0 + int(t0_ms * MS), T0 + int((t0_ms + dur_ms) * MS)
    box = annotation_to_pixels(g, t0, t1, f0, f0 + bw)
    if box is None:
        col_ns = g.col_ns
        sliver = (t0 < T0 or t1 > T0 + 640 * MS) and (min(t1, T0 + 640 * MS) - max(t0, T0)) / col_ns < min(
            EDGE_SLIVER_PX, MIN_BOX_PX
        )
        assert t1 <= T0 or t0 >= T0 + 640 * MS or f0 >= F_HI or f0 + bw <= F_LO or sliver
        return
    a0, a1, lo, hi = pixels_to_annotation(g, *box)
    ct0, ct1 = max(t0, T0), min(t1, T0 + 640 * MS)  # the annotation clipped to the image
    cf0, cf1 = max(f0, F_LO), min(f0 + bw, F_HI)
    for (got0, got1), (want0, want1), pitch in (((a0, a1), (ct0, ct1), g.col_ns), ((lo, hi), (cf0, cf1), g.row_hz)):
        if want1 - want0 >= MIN_BOX_PX * pitch:  # big enough: the inverse gives it back within a pixel
            assert abs(got0 - want0) <= pitch and abs(got1 - want1) <= pitch
        else:  # widened to the minimum, still covering the annotation
            assert got1 - got0 == pytest.approx(MIN_BOX_PX * pitch, rel=1e-6)
            assert got0 <= want0 + 1 and got1 >= want1 - 1


def test_label_frame_uses_class_ids_and_skips_outside():
    g = BoxGeometry.of(ROW)
    anns = [
        Annotation(T0 + 10 * MS, T0 + 20 * MS, 433_900_000.0, 433_910_000.0, "fsk"),
        Annotation(T0 + 900 * MS, T0 + 920 * MS, 433_900_000.0, 433_910_000.0, "ook"),  # after the frame
        Annotation(T0 + 30 * MS, T0 + 40 * MS, 433_900_000.0, 433_910_000.0, AUTO_CLASS),
    ]
    boxes = label_frame(g, anns)
    assert [b[0] for b in boxes] == [CLASSES.index("fsk"), CLASSES.index("burst")]
    assert all(0 <= v <= 1 for b in boxes for v in b[1:])
    with pytest.raises(ModelError, match="unknown label"):
        label_frame(g, [Annotation(T0, T0 + MS, F_LO, F_HI, "lora")])
    assert class_id("chirp") == 3


def test_bad_geometry_is_refused():
    with pytest.raises(ModelError, match="ascending"):
        BoxGeometry(T0, T0 + 1, F_HI, F_LO, 10, 10)
    with pytest.raises(ModelError, match="lacks"):
        BoxGeometry.of({"t_start_ns": T0})
