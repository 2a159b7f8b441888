"""The soak, short form (60 s; bench/soak.py runs the 10-minute form): a real-time capture at
3.2 MS/s while hot_snapshot, iq_window, spectrograms and detections run on the closed
partition in this process. Nothing lost, every check as it should be, bounds held."""

import pytest

from sdr_assets_tests.reliability_soak import SoakConfig, run_soak


@pytest.mark.slow
def test_a_60_s_capture_at_3_2_msps_loses_nothing_while_the_chain_runs(data_root, tmp_path):
    # hop 2560 (a quarter of the default frames) keeps this form short on a busy 2-core box;
    # bench/soak.py measures the default settings.
    rep = run_soak(data_root, SoakConfig(duration_s=60, hop=2560), tmp_path / "logs", echo=print)
    assert rep.problems == []
    assert rep.received == rep.stored > 3_200_000 * 50 and rep.lost == 0
    assert rep.gaps == {} and rep.hot_integrity == "ok" and rep.end_reason == "signal"
    assert rep.runs and all(r.success for r in rep.runs)
    run = rep.runs[0]
    assert {c[0] for c in run.checks} == {"snapshot_integrity", "window_coverage", "frame_count"}
    # The chain ran while the capture was writing (not after it), on real data.
    assert run.at_s + run.seconds < rep.capture_s and run.figures["window_samples"] > 0
    assert run.figures["frames"] > 0 and run.figures["detections"] is not None
    assert 1 <= rep.partitions_max <= rep.config.keep_partitions
    assert rep.procs["capture"]["samples"] >= 30 and rep.procs["capture"]["rss_max_mb"] > 0
