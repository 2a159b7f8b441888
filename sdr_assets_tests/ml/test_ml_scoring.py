"""ml.scoring: IoU in time x frequency, one-to-one matching, AP, per-class tallies (pure)."""

import math

import pytest

from sdr_assets.ml.scoring import Box, Tally, average_precision, iou, match_iou, match_starts, widened


def test_iou_is_area_based_in_time_x_frequency_and_time_only_without_a_band():
    a = Box(0.0, 1.0, 0.0, 10.0)
    b = Box(0.5, 1.5, 5.0, 15.0)  # a quarter of each: 0.5 s x 5 Hz = 2.5 over 10 + 10 - 2.5
    assert iou(a, b) == pytest.approx(2.5 / 17.5)
    assert iou(a, a) == 1.0 and iou(a, Box(2.0, 3.0, 0.0, 10.0)) == 0.0
    assert iou(a, Box(0.0, 1.0, 20.0, 30.0)) == 0.0  # same time, other band
    # a box without frequency (or a point) is compared in time only
    assert iou(a, Box(0.5, 1.5)) == pytest.approx(0.5 / 1.5)
    assert iou(Box(0.0, 1.0, 433.9e6, 433.9e6), Box(0.0, 1.0, 1.0, 2.0)) == 1.0


def test_widened_grows_thin_boxes_about_their_centre_only():
    cw = widened(Box(1.0, 1.01, 100.0, 101.0, "cw"), min_duration_s=0.04, min_bandwidth_hz=6.0)
    assert (cw.t_start_s, cw.t_end_s) == pytest.approx((0.985, 1.025))
    assert (cw.freq_lower_hz, cw.freq_upper_hz) == pytest.approx((97.5, 103.5)) and cw.label == "cw"
    wide = Box(0.0, 1.0, 0.0, 50.0)
    assert widened(wide, 0.04, 6.0) == wide
    assert widened(Box(0.0, 0.01), 0.04, 6.0).freq_lower_hz is None


def test_match_iou_takes_detections_by_score_and_each_reference_once():
    refs = [Box(0.0, 1.0, 0.0, 10.0, "ook"), Box(2.0, 3.0, 0.0, 10.0, "fsk")]
    dets = [
        Box(0.1, 1.0, 0.0, 10.0, "ook", score=0.3),  # IoU 0.9 with ref 0, but weaker
        Box(0.0, 0.8, 0.0, 10.0, "fsk", score=0.9),  # IoU 0.8 with ref 0: takes it first
        Box(2.0, 2.4, 0.0, 10.0, "fsk", score=0.5),
    ]  # IoU 0.4 with ref 1: under 0.5
    assert match_iou(dets, refs, 0.5) == [None, 0, None]
    assert match_iou(dets, refs, 0.35) == [None, 0, 1]
    # by class: the fsk detection may not take the ook reference, so the ook one gets it
    assert match_iou(dets, refs, 0.5, same_label=True) == [0, None, None]
    # a thin detection over a thin reference matches once both are widened the same way
    tone, det = Box(5.0, 5.002, 100.0, 100.5, "cw"), Box(4.999, 5.004, 99.0, 101.0, "burst")
    assert match_iou([det], [tone], 0.5) == [None]
    assert match_iou([det], [tone], 0.5, min_duration_s=0.04, min_bandwidth_hz=6.0) == [0]


def test_match_starts_pairs_closest_first_and_checks_a_frequency_point():
    refs = [Box(1.000, 1.2, 433.86e6, 433.86e6, "ook"), Box(2.000, 2.2, label="ook")]  # the 2nd: time only
    dets = [Box(1.015, 1.2, 433.88e6, 433.90e6), Box(1.005, 1.2, 433.95e6, 433.97e6), Box(2.010, 2.1, 1.0, 2.0)]
    assert match_starts(dets, refs, 0.02) == [None, 0, 1]  # 5 ms beats 15 ms
    # with a frequency check the 5 ms detection is 90 kHz off; the 15 ms one is 20 kHz off
    assert match_starts(dets, refs, 0.02, freq_tol_hz=25e3) == [0, None, 1]
    assert match_starts(dets, refs, 0.02, freq_tol_hz=10e3) == [None, None, 1]
    assert match_starts(dets, refs, 0.004) == [None, None, None]


def test_average_precision_all_point_interpolated():
    # ranked tp, fp, tp with 3 references: P/R = (1, 1/3), (1/2, 1/3), (2/3, 2/3) -> 1/3 + 2/3 * 1/3
    assert average_precision([0.9, 0.8, 0.7], [True, False, True], 3) == pytest.approx(1 / 3 + 2 / 9)
    # the order is by score, not as given
    assert average_precision([0.7, 0.8, 0.9], [True, False, True], 3) == pytest.approx(1 / 3 + 2 / 9)
    assert average_precision([0.5, 0.4], [True, True], 2) == 1.0
    assert average_precision([], [], 2) == 0.0 and math.isnan(average_precision([0.5], [False], 0))


def test_tally_sums_recordings_per_class_and_map_over_reference_classes():
    t = Tally()
    refs = [Box(0, 1, 0, 10, "ook"), Box(2, 3, 0, 10, "fsk")]
    dets = [Box(0, 1, 0, 10, "ook", 0.9), Box(5, 6, 0, 10, "ook", 0.8)]
    t.add(dets, refs, match_iou(dets, refs), match_iou(dets, refs, same_label=True))
    dets2 = [Box(2, 3, 0, 10, "ook", 0.7)]  # finds the fsk reference, but under the wrong label
    t.add(dets2, refs, match_iou(dets2, refs), match_iou(dets2, refs, same_label=True))
    assert (t.tp, t.fp, t.fn, t.n_reference, t.n_detections) == (2, 1, 2, 4, 3)
    assert t.found_by_ref_label == {"ook": 1, "fsk": 1} and t.n_ref_by_label == {"ook": 2, "fsk": 2}
    assert t.tp_by_det_label == {"ook": 2} and t.precision == pytest.approx(2 / 3) and t.recall == 0.5
    # any class: 0.9 tp, 0.8 fp, 0.7 tp of 4 references
    assert t.ap() == pytest.approx(1 / 4 + 2 / 3 * 1 / 4)
    assert t.ap_by_class() == {"fsk": 0.0, "ook": pytest.approx(0.5)}  # ook: 1 of 2 found, first ranked
    assert t.map() == pytest.approx(0.25)


def test_match_time_band_asks_time_overlap_and_the_reference_frequency_in_the_band():
    from sdr_assets.ml.scoring import match_time_band

    ook = Box(1.0, 1.08, 433.922e6, 433.937e6, "ook")  # a label's nominal band: 15 kHz
    wide = Box(1.0, 1.08, 433.905e6, 433.963e6, "burst")  # the energy detector's keyed spectrum: 58 kHz
    assert iou(wide, ook) == pytest.approx(15 / 58, abs=0.01)  # a time-frequency IoU would reject it
    assert match_iou([wide], [ook], 0.5) == [None]
    assert match_time_band([wide], [ook], 0.5) == [0]
    elsewhere = Box(1.0, 1.08, 433.0e6, 433.05e6)  # right time, other frequency
    late = Box(1.05, 1.13, 433.905e6, 433.963e6)  # time IoU 0.03 / 0.13
    assert match_time_band([elsewhere, late], [ook], 0.5) == [None, None]
    # thin boxes are widened first, as match_iou does: a 1 ms click and its 41 ms label box
    click = Box(2.0, 2.001, 100.0, 101.0)
    label = Box(1.98, 2.021, 90.0, 110.0)
    assert match_time_band([click], [label], 0.5) == [None]
    assert match_time_band([click], [label], 0.5, min_duration_s=0.041) == [0]
    # one to one, strongest detection first, by label on request
    a, b = Box(1.0, 1.08, 433.92e6, 433.94e6, "fsk", 0.9), Box(1.0, 1.07, 433.92e6, 433.94e6, "ook", 0.5)
    assert match_time_band([b, a], [ook], 0.5) == [None, 0]
    assert match_time_band([b, a], [ook], 0.5, same_label=True) == [0, None]
