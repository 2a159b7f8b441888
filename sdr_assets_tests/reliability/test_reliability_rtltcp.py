"""rtl_tcp server restarts and stalls under a live capture (a real `sdr-assets capture`
client of a real RtlTcpServer on localhost): each drop reconnects and is one recorded
`reconnect` gap, nothing crashes, the client's RSS stays flat (bench/soak.py: 60 drops)."""

from sdr_assets_tests.reliability_faults import RSS_GROWTH_BOUND_MB, rtl_tcp_churn


def test_server_restarts_and_stalls_reconnect_with_recorded_gaps_and_flat_memory(data_root, tmp_path, port):
    rep = rtl_tcp_churn(data_root / "hot.db", port, n_restarts=6, n_stalls=2, log_dir=tmp_path / "logs")
    print(rep)
    assert rep.problems == []
    assert rep.restarts == 6 and rep.stalls == 2 and rep.reconnect_gaps == 8
    assert rep.reconnect_lost_samples > 0 and rep.received == rep.stored > 0
    assert len(rep.rss_mb) == 8 and rep.rss_growth_mb <= RSS_GROWTH_BOUND_MB
    assert rep.exit_code == 0 and rep.end_reason == "signal"
