"""Overlap suppression and frame-edge joining on hand-made boxes (absolute ns and Hz)."""

from dataclasses import replace

import numpy as np
import pytest

from sdr_assets.ml.infer import Detection, decode_output, letterbox, nms
from sdr_assets.ml.labels import BoxGeometry
from sdr_assets.ml.postprocess import (
    DetectionBox,
    drop_echoes,
    drop_pieces,
    join_frame_edges,
    refine_box,
    suppress_overlaps,
    to_time_freq,
)

MS = 1_000_000
T0 = 1_700_000_000_000_000_000
F = 433_920_000.0


def box(t0_ms, t1_ms, f_lo=F, f_hi=F + 10e3, label="ook", conf=0.9, frame=1):
    return DetectionBox(T0 + int(t0_ms * MS), T0 + int(t1_ms * MS), f_lo, f_hi, label, conf, (frame,))


def test_two_packets_20ms_apart_stay_two():
    a, b = box(0, 50), box(70, 120, conf=0.5)
    assert suppress_overlaps([a, b]) == [a, b]
    # a frame edge in the gap between them does not join them either
    assert join_frame_edges([a, b], [T0 + 60 * MS], tol_ns=2 * MS) == [a, b]
    # nor a frame edge elsewhere
    assert join_frame_edges([a, b], [T0 + 500 * MS], tol_ns=2 * MS) == [a, b]


def test_a_box_cut_by_a_frame_edge_becomes_one():
    edge = T0 + 64 * MS
    left = box(40, 64, conf=0.6, label="fsk", frame=1)  # ends at frame 1's right edge
    right = box(64, 90, f_lo=F + 1e3, f_hi=F + 11e3, conf=0.8, label="ook", frame=2)
    (joined,) = join_frame_edges([right, left], [edge], tol_ns=MS // 2)
    assert (joined.t_start_ns, joined.t_end_ns) == (T0 + 40 * MS, T0 + 90 * MS)
    assert (joined.freq_lower_hz, joined.freq_upper_hz) == (F, F + 11e3)
    assert joined.label == "ook" and joined.confidence == 0.8  # the more confident piece's
    assert joined.frame_ids == (1, 2)


def test_edge_join_needs_frequency_overlap_and_both_ends_at_the_edge():
    edge = T0 + 64 * MS
    left = box(40, 64)
    other_band = box(64, 90, f_lo=F + 50e3, f_hi=F + 60e3)
    assert len(join_frame_edges([left, other_band], [edge], tol_ns=MS // 2)) == 2
    late_start = box(66, 90)  # starts 2 ms after the edge: a new packet, not a continuation
    assert len(join_frame_edges([left, late_start], [edge], tol_ns=MS // 2)) == 2


def test_overlapping_packets_away_from_edges_are_not_merged():
    a, b = box(0, 50), box(45, 100, conf=0.5)  # 5 ms overlap of 55 ms: 10 % of b
    assert join_frame_edges([a, b], [T0 + 64 * MS], tol_ns=MS) == [a, b]
    assert suppress_overlaps([a, b]) == [a, b]


def test_an_emission_across_three_frames_joins_fully_with_pair_edges():
    # frames that do not abut exactly: (end of A, start of B) pairs
    pieces = [box(50, 64, frame=1), box(64.5, 128, frame=2), box(128.5, 140, frame=3)]
    edges = [(T0 + 64 * MS, T0 + 64 * MS + MS // 2), (T0 + 128 * MS, T0 + 128 * MS + MS // 2)]
    (joined,) = join_frame_edges(pieces, edges, tol_ns=100_000)
    assert (joined.t_start_ns, joined.t_end_ns, joined.frame_ids) == (T0 + 50 * MS, T0 + 140 * MS, (1, 2, 3))


def test_suppress_drops_a_weaker_box_mostly_inside_a_stronger_one():
    strong = box(0, 100, conf=0.9)
    dup_other_class = box(10, 90, label="fsk", conf=0.4)  # 100 % inside in time, same band
    slight = box(80, 200, conf=0.5)  # 20 of 120 ms inside: kept
    elsewhere = box(0, 100, f_lo=F + 100e3, f_hi=F + 110e3, conf=0.3)  # same time, other band: kept
    assert suppress_overlaps([dup_other_class, slight, elsewhere, strong]) == [strong, elsewhere, slight]
    # within-class only: the fsk duplicate survives
    assert dup_other_class in suppress_overlaps([strong, dup_other_class], any_class=False)
    # the threshold is a fraction of the weaker box's duration
    half = box(50, 150, conf=0.5)  # exactly 50 % inside: not more than half, kept
    assert half in suppress_overlaps([strong, half], frac=0.5)
    assert half not in suppress_overlaps([strong, half], frac=0.4)


def test_to_time_freq_maps_pixels_back_to_absolute_time_and_frequency():
    g = BoxGeometry(T0, T0 + 640 * MS, F - 128e3, F + 128e3, 640, 256)  # 1 ms a column, 1 kHz a row
    (b,) = to_time_freq([Detection("cw", 0.7, 100.0, 28.0, 150.0, 48.0)], g, frame_id=7)
    assert (b.t_start_ns, b.t_end_ns) == (T0 + 100 * MS, T0 + 150 * MS)
    assert (b.freq_lower_hz, b.freq_upper_hz) == (F + 80e3, F + 100e3)
    assert (b.label, b.confidence, b.frame_ids) == ("cw", 0.7, (7,))


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=np.float32)
    scores = np.array([0.5, 0.9, 0.3], dtype=np.float32)
    assert nms(boxes, scores, iou=0.5).tolist() == [1, 2]
    assert nms(boxes, scores, iou=0.9).tolist() == [1, 0, 2]


@pytest.mark.parametrize("frac", [0.0, 0.5, 0.99])
def test_suppress_never_drops_disjoint_boxes(frac):
    boxes = [box(i * 30, i * 30 + 20, conf=0.1 * (i + 1)) for i in range(5)]
    assert suppress_overlaps(boxes, frac=frac) == boxes


def _raw(*anchors, nc=6):
    """A (1, 4 + nc, n) YOLO output: each anchor (cx, cy, w, h, class_id, score)."""
    out = np.zeros((1, 4 + nc, len(anchors)), dtype=np.float32)
    for j, (cx, cy, w, h, c, s) in enumerate(anchors):
        out[0, :4, j] = (cx, cy, w, h)
        out[0, 4 + c, j] = s
    return out


def test_decode_thresholds_suppresses_and_undoes_the_letterbox():
    # a 256 x 640 frame letterboxed to 320: scale 0.5, padded 96 rows on top
    img, r, pad = letterbox(np.zeros((256, 640, 3), dtype=np.uint8), 320)
    assert img.shape == (320, 320, 3) and r == 0.5 and pad == (0, 96)
    out = _raw(
        (100, 150, 20, 10, 2, 0.9),  # fsk, kept: x 90..110, y 145..155 in the input
        (101, 150, 20, 10, 2, 0.8),  # near-duplicate of it: suppressed
        (101, 150, 20, 10, 1, 0.7),  # same place, another class: class-aware NMS keeps it
        (300, 200, 10, 10, 0, 0.1),
    )  # below the threshold
    dets = decode_output(out, CLASSES6, r=r, pad=pad, hw=(256, 640), conf=0.25, iou=0.7)
    assert [d.class_name for d in dets] == ["fsk", "ook"]
    assert dets[0] == pytest.approx(Detection("fsk", 0.9, 180.0, 98.0, 220.0, 118.0))
    # a box over the padding is clipped to the original image
    (edge,) = decode_output(_raw((10, 100, 40, 20, 5, 0.5)), CLASSES6, r=r, pad=pad, hw=(256, 640))
    assert (edge.x0, edge.y0) == (0.0, 0.0) and edge.class_name == "burst"


def test_decode_end2end_output_skips_nms():
    out = np.array([[[10, 10, 20, 20, 0.9, 3], [10, 10, 20, 20, 0.8, 3], [0, 0, 5, 5, 0.1, 0]]], dtype=np.float32)
    dets = decode_output(out, CLASSES6, hw=(64, 64), conf=0.25, end2end=True)
    assert [(d.class_name, d.confidence) for d in dets] == [
        ("chirp", pytest.approx(0.9)),
        ("chirp", pytest.approx(0.8)),
    ]


CLASSES6 = ("cw", "ook", "fsk", "chirp", "wideband", "burst")


# --- refine_box: time edges from the IQ envelope in the box's band --------------------------------

FS = 250_000.0


def ook_iq(packets, n_s=0.4, offset_hz=20e3, snr_db=20.0, seed=0):
    """Noise plus OOK packets [(start_ms, duration_ms)] (0.5 ms on / 0.5 ms off) at +offset_hz."""
    rng = np.random.default_rng(seed)
    n = int(n_s * FS)
    x = (rng.normal(size=n) + 1j * rng.normal(size=n)) / np.sqrt(2)
    t = np.arange(n) / FS
    amp = 10 ** (snr_db / 20)
    for start_ms, dur_ms in packets:
        s0, s1 = int(start_ms * 1e-3 * FS), int((start_ms + dur_ms) * 1e-3 * FS)
        gate = np.zeros(n, bool)
        gate[s0:s1] = ((np.arange(s1 - s0) // int(0.5e-3 * FS)) % 2) == 0
        x[gate] += amp * np.exp(2j * np.pi * offset_hz * t[gate])
    return x.astype(np.complex64)


def band_box(t0_ms, t1_ms, lo=F + 15e3, hi=F + 25e3):
    return box(t0_ms, t1_ms, f_lo=lo, f_hi=hi)


def starts_ms(boxes):
    return [round((b.t_start_ns - T0) / MS, 1) for b in boxes]


def test_refine_moves_loose_edges_to_the_packet():
    x = ook_iq([(100, 40)])
    (r,) = refine_box(band_box(88, 155), x, T0, FS, F)
    assert r.refined
    assert abs((r.t_start_ns - T0) / MS - 100) < 0.3
    assert abs((r.t_end_ns - T0) / MS - 139.5) < 0.5  # the last pulse ends at 139.5 ms
    assert (r.freq_lower_hz, r.freq_upper_hz, r.label, r.confidence) == (F + 15e3, F + 25e3, "ook", 0.9)
    # a box that starts 15 ms late, or holds only the packet's middle, still finds its edges
    (late,) = refine_box(band_box(115, 150), x, T0, FS, F)
    assert abs((late.t_start_ns - T0) / MS - 100) < 0.3
    (middle,) = refine_box(band_box(110, 125), x, T0, FS, F)
    assert abs((middle.t_start_ns - T0) / MS - 100) < 0.3 and abs((middle.t_end_ns - T0) / MS - 139.5) < 0.5


def test_refine_splits_a_sync_pulse_and_the_packet_after_it():
    # a lone 1 ms pulse, 13.5 ms of silence, then the packet: rtl_433 reports two packages
    x = ook_iq([(100, 1), (114.5, 60)])
    out = refine_box(band_box(95, 180), x, T0, FS, F)
    assert [abs(s - e) < 0.3 for s, e in zip(starts_ms(out), (100, 114.5))] == [True, True]


def test_refine_ignores_the_tail_of_the_previous_packet():
    x = ook_iq([(50, 48), (113, 48)])  # PT2262-like: 48 ms packets, 15 ms apart
    (r,) = refine_box(band_box(90, 165), x, T0, FS, F)  # holds 8 ms of the first packet
    assert abs((r.t_start_ns - T0) / MS - 113) < 0.3


def test_refine_reads_only_the_box_band():
    x = ook_iq([(100, 40)])
    other = ook_iq([(60, 30)], offset_hz=-60e3, seed=1) - ook_iq([], seed=1)  # a packet at -60 kHz
    (r,) = refine_box(band_box(88, 155), x + other, T0, FS, F)
    assert abs((r.t_start_ns - T0) / MS - 100) < 0.3


def test_refine_leaves_a_box_over_an_empty_band_alone():
    x = ook_iq([(100, 40)])
    b = band_box(88, 155, lo=F - 80e3, hi=F - 70e3)
    assert refine_box(b, x, T0, FS, F) == [b]
    assert not b.refined
    assert refine_box(b, x[:10], T0, FS, F) == [b]  # too short to say anything


def test_refined_duplicates_collapse_under_suppression():
    x = ook_iq([(100, 40)])
    a = refine_box(band_box(90, 150), x, T0, FS, F)
    b = refine_box(replace(band_box(95, 125), confidence=0.4), x, T0, FS, F)
    (kept,) = suppress_overlaps(a + b)
    assert kept.confidence == 0.9 and abs((kept.t_start_ns - T0) / MS - 100) < 0.3


def test_suppress_across_frequencies_for_one_transmitter_at_a_time():
    strong = box(0, 100, conf=0.9)
    image = box(5, 95, f_lo=F - 60e3, f_hi=F - 50e3, conf=0.4)  # same time, another band (an image, a spur)
    later = box(90, 200, f_lo=F - 60e3, f_hi=F - 50e3, conf=0.3)  # 10 of 110 ms inside: kept
    assert suppress_overlaps([strong, image, later]) == [strong, image, later]
    assert suppress_overlaps([strong, image, later], any_freq=True) == [strong, later]


def test_suppress_across_frequencies_counts_the_stronger_boxes_together():
    # a weak box on a harmonic spans four packets; each covers 55 of its 300 ms, together 220
    packets = [box(t, t + 55, conf=0.8) for t in (0, 72, 144, 216)]
    harmonic = box(0, 300, f_lo=F + 110e3, f_hi=F + 120e3, conf=0.1)
    assert harmonic in suppress_overlaps(packets + [harmonic])
    assert suppress_overlaps(packets + [harmonic], any_freq=True) == packets
    assert harmonic in suppress_overlaps(packets[:2] + [harmonic], any_freq=True)  # 110 of 300 ms: kept


def test_drop_pieces_keeps_the_longer_package_of_one_signal():
    whole = replace(box(100, 700, conf=0.15), refined=True)
    pieces = [replace(box(t, t + 68, f_lo=F + 2e3, f_hi=F + 12e3, conf=0.3), refined=True) for t in (100, 350, 570)]
    other_band = replace(box(350, 420, f_lo=F + 60e3, f_hi=F + 70e3, conf=0.2), refined=True)
    unrefined = box(360, 380, conf=0.9)
    out = drop_pieces([*pieces, whole, other_band, unrefined])
    assert [(b.t_start_ns, b.freq_lower_hz) for b in out] == [
        (whole.t_start_ns, F),
        (other_band.t_start_ns, F + 60e3),
        (unrefined.t_start_ns, F),
    ]
    assert out[0].confidence == 0.3 and out[0].t_end_ns == whole.t_end_ns  # the pieces' best confidence


def _refined(b, level_db):
    return replace(b, refined=True, level_db=level_db)


def test_an_echo_keyed_with_a_stronger_box_at_another_frequency_goes():
    carrier = _refined(box(100, 180, conf=0.5), 40.0)
    image = _refined(box(100.5, 179.2, f_lo=F - 60e3, f_hi=F - 50e3, conf=0.9), 15.0)  # more confident, weaker
    assert drop_echoes([image, carrier]) == [carrier]


def test_two_transmitters_keyed_at_different_moments_both_stay():
    a = _refined(box(100, 180), 40.0)
    b = _refined(box(110, 190, f_lo=F - 60e3, f_hi=F - 50e3), 15.0)  # 10 ms later: another device
    c = _refined(box(100, 300, f_lo=F + 60e3, f_hi=F + 70e3), 15.0)  # same start, other end
    assert drop_echoes([a, b, c]) == [a, c, b]  # time order, then frequency


def test_echo_rule_leaves_same_band_and_unrefined_boxes_to_the_other_rules():
    a = _refined(box(100, 180), 40.0)
    same_band = _refined(box(100, 180, f_lo=F + 5e3, f_hi=F + 15e3), 10.0)  # overlaps in frequency
    unrefined = box(100, 180, f_lo=F - 60e3, f_hi=F - 50e3)
    assert set(drop_echoes([a, same_band, unrefined])) == {a, same_band, unrefined}


def test_refine_ranks_the_carrier_over_its_image():
    x = ook_iq([(100, 40)], snr_db=40.0)
    x = x + ook_iq([(100, 40)], offset_hz=-60e3, snr_db=18.0, seed=1) - ook_iq([], seed=1)  # its image, 22 dB down
    (carrier,) = refine_box(band_box(88, 155), x, T0, FS, F)
    (img,) = refine_box(band_box(88, 155, lo=F - 65e3, hi=F - 55e3), x, T0, FS, F)
    assert carrier.refined and img.refined
    assert carrier.level_db > img.level_db + 15
    assert drop_echoes([img, carrier]) == [carrier]


def test_one_default_confidence_everywhere():
    """The measured default threshold (bench/detector_defaults.py) is the one the asset, the
    nightly contest and `sdr-assets evaluate` use."""
    import inspect

    from sdr_assets.cli.evaluate import evaluate as evaluate_cmd
    from sdr_assets.cli.evaluation import evaluate
    from sdr_assets.defs.resources import DetectorSettings
    from sdr_assets.ml.infer import DEFAULT_CONF
    from sdr_assets.ml.training import TrainingConfig

    cli_default = next(p.default for p in evaluate_cmd.params if p.name == "conf")
    assert DetectorSettings().conf == TrainingConfig().conf == cli_default == DEFAULT_CONF
    assert inspect.signature(evaluate).parameters["conf"].default == DEFAULT_CONF
