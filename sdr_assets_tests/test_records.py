"""The shared vocabulary (records.py): the one UTC formatter and the one time-frequency box."""

import pytest

from sdr_assets.records import NS_PER_S, TimeFreqBox, box_of, describe_time_ns, utc_datetime, utc_iso

T_NS = 1_714_564_800 * NS_PER_S + 123_456_789  # 2024-05-01T12:00:00.123456789Z


def test_utc_iso_formats_are_the_ones_the_package_prints():
    assert utc_iso(T_NS) == "2024-05-01T12:00:00Z"
    assert utc_iso(T_NS, digits=9) == "2024-05-01T12:00:00.123456789Z"  # SigMF core:datetime
    assert utc_iso(T_NS, digits=6) == "2024-05-01T12:00:00.123456Z"  # truncated, never rounded up
    assert utc_iso(T_NS, digits=3, suffix="+00:00") == "2024-05-01T12:00:00.123+00:00"
    assert utc_iso(T_NS, sep=" ", suffix=" UTC") == "2024-05-01 12:00:00 UTC"
    assert utc_iso(NS_PER_S - 1, digits=9) == "1970-01-01T00:00:00.999999999Z"  # exact, no float
    assert utc_iso(-1) == "1969-12-31T23:59:59Z"
    assert utc_datetime(T_NS).isoformat() == "2024-05-01T12:00:00.123456+00:00"


def test_a_time_past_the_calendar_is_described_by_its_year():
    assert describe_time_ns(T_NS) == "2024-05-01T12:00:00Z"
    assert describe_time_ns(2**70).startswith("the year 3.9")
    with pytest.raises(OverflowError):
        utc_iso(2**70)


def test_time_freq_box_overlap_needs_both_time_and_band():
    a = TimeFreqBox(0, 10, 100.0, 200.0, "ook")
    assert a.duration_ns == 10 and a.confidence is None
    assert a.overlaps(TimeFreqBox(5, 15, 150.0, 250.0, "fsk"))
    assert not a.overlaps(TimeFreqBox(10, 20, 150.0, 250.0, "fsk"))  # [t_start, t_end): touching is apart
    assert not a.overlaps(TimeFreqBox(5, 15, 200.0, 250.0, "fsk"))
    row = type("Row", (), {"t_start_ns": 1, "t_end_ns": 2, "freq_lower_hz": 3, "freq_upper_hz": 4, "label": "x"})()
    assert box_of(row, 0.5) == TimeFreqBox(1, 2, 3.0, 4.0, "x", 0.5)
