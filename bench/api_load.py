"""Load on the HTTP API while a 3.2 MS/s capture runs: p99 latency per endpoint, samples lost.

A data root is filled as the API tests fill it (a synthetic capture and, where present, real ISM
recordings, through the Dagster chain), `sdr-assets serve-api` starts on loopback, then
--requests requests from --clients concurrent clients (each endpoint in turn, /api/iq streaming
two spans of samples) run twice: alone (the baseline) and while a live synthetic capture writes
the same data root's hot DB at --rate-hz. Printed: per endpoint requests, statuses, p50/p99/max
latency in both runs and the p99 ratio; the capture's samples received/stored/lost and gaps, and
its commit p99 during the load. Exit 1 when a sample was lost or a request got a 5xx.

    .venv/bin/python bench/api_load.py [--requests 2000] [--clients 20] [--rate-hz 3200000]
"""

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

# before sdr_assets.definitions is imported (as the test suite does): 1-minute partitions from a week ago
os.environ["SDR_ASSETS_PARTITION_MINUTES"] = "1"
os.environ.setdefault("SDR_ASSETS_PARTITION_START", (datetime.now(UTC) - timedelta(days=7)).strftime("%Y-%m-%d"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdr_assets_tests.api_support import (  # noqa: E402
    ApiServer,
    capture_losses,
    fill_root,
    latency_table,
    request_mix,
    run_load,
    start_capture,
)
from sdr_assets_tests.conftest import free_port  # noqa: E402

CAPTURE_ALONE_S = 10.0


def commit_ms(hot_db: Path, capture_id: int, t0_ns: int, t1_ns: int) -> tuple[float, float]:
    """(median, max) of the capture's per-second commit p99 in [t0_ns, t1_ns)."""
    import statistics

    from sdr_assets_tests.capture_support import query

    values = [
        v
        for (v,) in query(
            hot_db,
            "SELECT value FROM telemetry WHERE capture_id = ? AND metric = 'commit_ms_p99' AND t_ns >= ? AND t_ns < ?",
            (capture_id, t0_ns, t1_ns),
        )
    ]
    return (statistics.median(values), max(values)) if values else (0.0, 0.0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--rate-hz", type=float, default=3_200_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="api_load_") as tmp:
        root = Path(tmp) / "root"
        os.environ["SDR_ASSETS_HOME"] = str(root)
        t = time.perf_counter()
        filled = fill_root(root)
        print(
            f"data root filled in {time.perf_counter() - t:.0f} s ({root}; windows {filled.synth_key}"
            f"{', ' + filled.ism_key if filled.ism_key else ''})",
            flush=True,
        )
        mix = request_mix(filled.synth_span)
        server = ApiServer(root, free_port())
        try:
            run_load(server.url, mix, n_requests=len(mix) * 2, concurrency=2)  # warm the caches
            t = time.perf_counter()
            alone = run_load(server.url, mix, n_requests=args.requests, concurrency=args.clients)
            alone_s = time.perf_counter() - t
            capture = start_capture(root, rate_hz=args.rate_hz, duration_s=3600)
            try:
                t_alone_ns = time.time_ns()
                time.sleep(CAPTURE_ALONE_S)  # the capture's own commit latency, before the load
                t_load_ns = time.time_ns()
                t = time.perf_counter()
                loaded = run_load(server.url, mix, n_requests=args.requests, concurrency=args.clients)
                loaded_s = time.perf_counter() - t
                still_running = capture.poll() is None
                t_end_ns = time.time_ns()
            finally:
                capture.send_signal(2)
                capture.wait(timeout=60)
        finally:
            server.stop()
        losses = capture_losses(root / "hot.db")
        commit_alone = commit_ms(root / "hot.db", losses.capture_id, t_alone_ns, t_load_ns)
        commit_loaded = commit_ms(root / "hot.db", losses.capture_id, t_load_ns, t_end_ns)

    base = {row["endpoint"]: row for row in latency_table(alone)}
    print(
        f"\n{args.requests} requests from {args.clients} clients on loopback; alone {alone_s:.1f} s, "
        f"during a {args.rate_hz / 1e6:g} MS/s capture {loaded_s:.1f} s\n"
    )
    print("| endpoint | requests | status | p50 ms | p99 ms | max ms | p99 ms alone | p99 ratio | MB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in latency_table(loaded):
        b = base[row["endpoint"]]
        print(
            f"| {row['endpoint']} | {row['requests']} | {row['status']} | {row['p50_ms']:.1f} | "
            f"{row['p99_ms']:.1f} | {row['max_ms']:.1f} | {b['p99_ms']:.1f} | "
            f"{row['p99_ms'] / max(b['p99_ms'], 1e-9):.2f} | {row['mb']:.1f} |"
        )
    print(
        f"\ncapture {losses.capture_id}: {losses.samples_received:,} samples received, "
        f"{losses.samples_stored:,} stored, {losses.samples_lost} lost, {losses.gaps} gaps "
        f"(dead time before it started, not counted: {losses.samples_lost_before_start:,}); "
        f"still running when the load ended: {still_running}"
    )
    print(
        f"capture commit p99 per second, median / max: {commit_alone[0]:.1f} / {commit_alone[1]:.1f} ms in "
        f"{CAPTURE_ALONE_S:g} s alone, {commit_loaded[0]:.1f} / {commit_loaded[1]:.1f} ms under the load"
    )
    errors = [r for r in alone + loaded if r.status >= 500]
    if errors or losses.samples_lost or losses.gaps or not still_running:
        print(f"FAIL: {len(errors)} server errors, {losses.samples_lost} samples lost", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
