"""The read-only HTTP API (`sdr-assets serve-api`) as a real uvicorn server on loopback, driven
over HTTP with httpx, on a data root filled by real captures (CLI) and the real Dagster chain
(api_support.fill_root): every endpoint against what the databases hold, /api/iq read back with
the `sigmf` package byte for byte against the stored chunks, 400s for bad parameters (fuzzed),
503 for a missing / corrupt / locked analysis DB while the server runs, a bounded load while a
3.2 MS/s capture runs (no 5xx, no sample lost), and the flags of the command."""

import io
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from sdr_assets.records import NS_PER_S, samples_to_ns, utc_iso
from sdr_assets_tests.api_support import ApiServer, fill_root, have_recordings
from sdr_assets_tests.conftest import free_port

httpx = pytest.importorskip("httpx")
sigmf = pytest.importorskip("sigmf")
from sigmf import sigmffile  # noqa: E402

BIN = Path(sys.executable).parent
needs_recordings = pytest.mark.skipif(
    not have_recordings(), reason="needs ../shared/data/rtl433 and rtl_433 (sudo apt-get install rtl-433)"
)


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    root = tmp_path_factory.mktemp("api_home") / "root"
    old = os.environ.get("SDR_ASSETS_HOME")
    os.environ["SDR_ASSETS_HOME"] = str(root)
    try:
        yield fill_root(root)
    finally:
        if old is None:
            os.environ.pop("SDR_ASSETS_HOME", None)
        else:
            os.environ["SDR_ASSETS_HOME"] = old


@pytest.fixture(scope="module")
def api(filled):
    server = ApiServer(filled.root, free_port())
    client = httpx.Client(base_url=server.url, timeout=60)
    yield client
    client.close()
    server.stop()


def _db(path) -> sqlite3.Connection:
    return sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True)


def _rows(path, sql, args=()):
    conn = _db(path)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def _iso(t_ns: int) -> str:
    return utc_iso(t_ns, digits=9)


# ---- every endpoint against the databases ---------------------------------------------------------
def test_telemetry_history_and_stats_are_the_capture_rows(api, filled):
    hot = filled.root / "hot.db"
    want = _rows(hot, "SELECT t_ns, metric, value FROM telemetry ORDER BY t_ns DESC, rowid DESC LIMIT 7")
    r = api.get("/api/telemetry/history", params={"hours": 24 * 30, "limit": 7})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == 7 and body["truncated"] is True
    assert [(x["t_ns"], x["metric"], x["value"]) for x in body["rows"]] == list(reversed(want))
    one = api.get(
        "/api/telemetry/history", params={"hours": 24 * 30, "metric": "commit_ms_p99", "limit": 100000}
    ).json()
    n_p99 = _rows(hot, "SELECT count(*) FROM telemetry WHERE metric = 'commit_ms_p99'")[0][0]
    assert one["count"] == n_p99 > 0 and one["truncated"] is False
    assert {x["metric"] for x in one["rows"]} == {"commit_ms_p99"}

    stats = api.get("/api/telemetry/stats", params={"hours": 24 * 30}).json()
    (p99,) = [m for m in stats["groups"]["commit_latency"] if m["metric"] == "commit_ms_p99"]
    lo, hi, avg, n = _rows(
        hot, "SELECT min(value), max(value), avg(value), count(*) FROM telemetry WHERE metric = 'commit_ms_p99'"
    )[0]
    assert (p99["min"], p99["max"], p99["count"]) == (lo, hi, n) and abs(p99["avg"] - avg) < 1e-9
    assert [m["metric"] for m in stats["groups"]["ram"]] == ["rss_mb"]
    assert "samples_lost" in [m["metric"] for m in stats["groups"]["samples_lost"]]
    assert stats["groups"]["gpu"] == [] and "gpu" in stats["notes"]  # the capture records no GPU figure
    # a window before any telemetry: nothing, and no error
    assert api.get("/api/telemetry/history", params={"hours": 1e-6}).json()["count"] == 0


def test_database_stats_per_database(api, filled):
    r = api.get("/api/database/stats")
    assert r.status_code == 200, r.text
    dbs = {d["db"]: d for d in r.json()["databases"]}
    assert set(dbs) == {"analysis", "hot"} and all(d["ok"] for d in dbs.values())
    for name, d in dbs.items():
        path = filled.root / f"{name}.db"
        assert d["path"] == str(path) and d["file_bytes"] == path.stat().st_size
        assert d["rows"]["chunks"] == _rows(path, "SELECT count(*) FROM chunks")[0][0] > 0
        assert d["oldest_chunk_t_start_ns"] == _rows(path, "SELECT min(t_start_ns) FROM chunks")[0][0]
        assert d["free_disk_bytes"] == pytest.approx(shutil.disk_usage(path.parent).free, rel=0.05)
    assert dbs["analysis"]["rows"]["partitions"] == (2 if filled.ism_key else 1)


def test_detections_with_lineage_and_filters(api, filled):
    adb = filled.root / "analysis.db"
    every = _rows(
        adb,
        "SELECT detection_id, partition_key, t_start_ns, t_end_ns, freq_lower_hz, freq_upper_hz, "
        "label, model_version, first_seq, last_seq FROM detections ORDER BY t_start_ns, detection_id",
    )
    assert len(every) >= 5
    body = api.get("/api/detections", params={"limit": 10000}).json()
    assert [d["detection_id"] for d in body["detections"]] == [e[0] for e in every]
    chunks = {
        q: (t, t + samples_to_ns(n, fs))
        for q, t, n, fs in _rows(
            adb, "SELECT seq, t_start_ns, n_samples, sample_rate_hz FROM chunks WHERE sensor = 'default'"
        )
    }
    for d in body["detections"]:  # lineage: the chunks holding the box's first and last sample
        assert (
            chunks[d["first_seq"]][0] <= d["t_start_ns"] < chunks[d["first_seq"]][1]
            or d["t_start_ns"] < chunks[d["first_seq"]][0]
        )
        assert d["first_seq"] <= d["last_seq"] and d["model_version"] == "energy"
        assert d["iq_url"] == f"/api/iq?detection_id={d['detection_id']}"
    # a span: exactly the detections overlapping it
    t0, t1 = filled.synth_span[0] + 2 * NS_PER_S, filled.synth_span[0] + 9 * NS_PER_S
    got = api.get("/api/detections", params={"from": _iso(t0), "to": str(t1)}).json()["detections"]
    assert [d["detection_id"] for d in got] == [e[0] for e in every if e[2] < t1 and e[3] > t0] != []
    # a band: exactly those overlapping it
    lo, hi = every[0][4], every[0][5]
    got = api.get("/api/detections", params={"freq_min_hz": lo, "freq_max_hz": hi}).json()["detections"]
    assert [d["detection_id"] for d in got] == [e[0] for e in every if e[4] <= hi and e[5] >= lo]
    # limit and label
    two = api.get("/api/detections", params={"limit": 2}).json()
    assert two["count"] == 2 and two["truncated"] is True
    assert api.get("/api/detections", params={"label": "no-such-label"}).json()["count"] == 0
    assert api.get("/api/detections", params={"label": every[0][6]}).json()["count"] == sum(
        1 for e in every if e[6] == every[0][6]
    )


@needs_recordings
def test_messages_and_devices(api, filled):
    adb = filled.root / "analysis.db"
    msgs = _rows(
        adb, "SELECT message_id, model, device_id, channel FROM decoded_messages ORDER BY t_start_ns, message_id"
    )
    assert len(msgs) >= 10
    body = api.get("/api/messages", params={"limit": 10000}).json()
    assert [m["message_id"] for m in body["messages"]] == [m[0] for m in msgs]
    first = body["messages"][0]
    assert first["partition_key"] == filled.ism_key and first["decoder_version"] and first["message"]["model"]
    assert first["first_seq"] <= first["last_seq"]
    model, device_id = msgs[0][1], msgs[0][2]
    by_model = api.get("/api/messages", params={"model": model}).json()["messages"]
    assert [m["message_id"] for m in by_model] == [m[0] for m in msgs if m[1] == model]
    by_id = api.get("/api/messages", params={"model": model, "device_id": device_id}).json()["messages"]
    assert [m["message_id"] for m in by_id] == [m[0] for m in msgs if m[1] == model and m[2] == device_id]
    # a span after every message: none
    after = filled.ism_span[1] + NS_PER_S
    assert api.get("/api/messages", params={"from": str(after), "to": str(after + NS_PER_S)}).json()["count"] == 0

    inv = _rows(adb, "SELECT model, device_id, channel, n_messages FROM device_inventory WHERE sensor = 'default'")
    devices = api.get("/api/devices").json()
    assert sorted((d["model"], d["device_id"], d["channel"], d["n_messages"]) for d in devices["devices"]) == sorted(
        inv
    )
    assert devices["as_of_ns"] == _rows(adb, "SELECT max(as_of_ns) FROM device_inventory")[0][0]
    # the first window a sensor decodes is its baseline: nothing in it is new
    assert not any(d["new"] for d in devices["devices"])
    assert all(d["missing"] is (d["missing_since_ns"] is not None) for d in devices["devices"])


def test_device_flags_new_and_missing():
    from sdr_assets.decode.inventory import device_states
    from sdr_assets.store.messages import DeviceRow

    w0, as_of = 1_000 * NS_PER_S, 1_060 * NS_PER_S
    old = DeviceRow("A", "1", "", 10 * NS_PER_S, 1_050 * NS_PER_S, 9, usual_interval_s=30.0, as_of_ns=as_of)
    fresh = DeviceRow("B", "2", "", 1_010 * NS_PER_S, 1_010 * NS_PER_S, 1, as_of_ns=as_of)
    silent = DeviceRow("C", "3", "", 10 * NS_PER_S, 900 * NS_PER_S, 5, usual_interval_s=40.0, as_of_ns=as_of)
    got = {s.device.model: (s.new, s.missing) for s in device_states([old, fresh, silent], w0, as_of, 3.0)}
    assert got == {"A": (False, False), "B": (True, False), "C": (False, True)}
    # without a baseline (every device first heard in this window) nothing is new
    assert not any(s.new for s in device_states([fresh], w0, as_of))


# ---- /api/iq: SigMF, byte-exact -------------------------------------------------------------------
def _archive(api, tmp_path, name: str, **params):
    r = api.get("/api/iq", params=params)
    assert r.status_code == 200, r.text
    assert int(r.headers["content-length"]) == len(r.content)
    path = tmp_path / f"{name}.sigmf"
    path.write_bytes(r.content)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an undeclared extension namespace warns: make it fail
        rec = sigmffile.fromfile(str(path), autoscale=False)  # checks core:sha512 against the samples
        rec.validate()
    with tarfile.open(fileobj=io.BytesIO(r.content)) as tar:
        names = sorted(m.name for m in tar.getmembers())
    return rec, names


def _stored_samples(adb: Path, t0: int, t1: int) -> np.ndarray:
    """The cu8 the analysis DB holds for [t0, t1) of the default sensor, as uint8 I/Q pairs: each
    sample's time is its chunk's start + round(k * 1e9 / fs)."""
    parts = []
    for t, n, fs, iq in _rows(
        adb,
        "SELECT t_start_ns, n_samples, sample_rate_hz, iq FROM chunks "
        "WHERE sensor = 'default' ORDER BY t_start_ns, seq",
    ):
        times = t + np.round(np.arange(n) * (NS_PER_S / fs)).astype(np.int64)
        keep = (times >= t0) & (times < t1)
        parts.append(np.frombuffer(iq, np.uint8).reshape(-1, 2)[keep])
    return np.concatenate(parts)


def test_iq_span_is_the_stored_samples_byte_for_byte(api, filled, tmp_path):
    adb = filled.root / "analysis.db"
    # edges inside chunks (not on a chunk boundary), inside the synthetic window
    t0 = filled.synth_span[0] + int(1.3 * NS_PER_S) + 12_345
    t1 = filled.synth_span[0] + int(4.7 * NS_PER_S) + 777
    rec, names = _archive(api, tmp_path, "span", **{"from": _iso(t0), "to": str(t1)})
    base = names[0]
    assert names == [base, f"{base}/{base}.sigmf-data", f"{base}/{base}.sigmf-meta"]
    want = _stored_samples(adb, t0, t1)
    got = rec.read_samples()
    assert len(got) == len(want) == rec.sample_count
    assert np.array_equal(got.real.astype(np.uint8), want[:, 0])
    assert np.array_equal(got.imag.astype(np.uint8), want[:, 1])
    assert rec.get_global_field("core:datatype") == "cu8"
    caps = rec.get_captures()
    assert len(caps) == 1 and caps[0]["core:datetime"] >= _iso(t0)[:23]
    # ground truth and detections overlapping the span are annotations (clipped at its edges)
    truth = _rows(adb, "SELECT DISTINCT annotation_id FROM annotations WHERE t_start_ns < ? AND t_end_ns > ?", (t1, t0))
    dets = _rows(adb, "SELECT detection_id FROM detections WHERE t_start_ns < ? AND t_end_ns > ?", (t1, t0))
    anns = rec.get_annotations()
    assert (
        sorted(a["sdr_assets:annotation_id"] for a in anns if "sdr_assets:annotation_id" in a)
        == sorted(r[0] for r in truth)
        != []
    )
    assert sorted(a["sdr_assets:detection_id"] for a in anns if "sdr_assets:detection_id" in a) == sorted(
        r[0] for r in dets
    )
    for a in anns:
        assert 0 <= a["core:sample_start"] and a["core:sample_start"] + a["core:sample_count"] <= len(want)


@needs_recordings
def test_iq_across_recorded_gaps_has_one_capture_segment_each_and_the_decodes(api, filled, tmp_path):
    adb = filled.root / "analysis.db"
    t0, t1 = filled.ism_span
    rec, _ = _archive(api, tmp_path, "ism", **{"from": str(t0), "to": str(t1)})
    want = _stored_samples(adb, t0, t1)
    got = rec.read_samples()
    assert np.array_equal(got.real.astype(np.uint8), want[:, 0]) and np.array_equal(
        got.imag.astype(np.uint8), want[:, 1]
    )
    caps = rec.get_captures()
    assert len(caps) == len(filled.ism_starts)  # one segment per recording: the recorded gaps split them
    fs = rec.get_global_field("core:sample_rate")
    for cap, start_ns in zip(caps, filled.ism_starts):
        assert cap["core:global_index"] == round((start_ns - filled.ism_starts[0]) * fs / NS_PER_S)
    n_msgs = _rows(adb, "SELECT count(*) FROM decoded_messages WHERE t_start_ns < ? AND t_end_ns > ?", (t1, t0))[0][0]
    assert sum(1 for a in rec.get_annotations() if a["sdr_assets:origin"] == "rtl_433") == n_msgs > 0


def test_iq_of_one_detection_with_margin(api, filled, tmp_path):
    adb = filled.root / "analysis.db"
    det_id, t0, t1 = _rows(
        adb, "SELECT detection_id, t_start_ns, t_end_ns FROM detections ORDER BY detection_id LIMIT 1"
    )[0]
    rec, names = _archive(api, tmp_path, "det", detection_id=det_id, margin_s=0.25)
    assert names[0] == f"default_detection{det_id}"
    pad = int(0.25 * NS_PER_S)
    want = _stored_samples(adb, t0 - pad, t1 + pad)
    assert np.array_equal(rec.read_samples().real.astype(np.uint8), want[:, 0])
    assert det_id in [a.get("sdr_assets:detection_id") for a in rec.get_annotations()]
    assert rec.get_global_field("sdr_assets:span_t_start_ns") == t0 - pad


def test_iq_errors_say_what_to_do(api, filled):
    t0 = filled.synth_span[0]
    far = api.get("/api/iq", params={"from": str(t0), "to": str(t0 + NS_PER_S), "freq_min_hz": 2e9})
    assert far.status_code == 404 and "no sample" in far.json()["error"]
    before = api.get("/api/iq", params={"from": "1971-01-01T00:00:00Z", "to": "1971-01-01T00:00:01Z"})
    assert before.status_code == 404 and "its windows" in before.json()["error"]
    assert api.get("/api/iq", params={"detection_id": 10**9}).status_code == 404
    both = api.get("/api/iq", params={"detection_id": 1, "from": str(t0)})
    assert both.status_code == 400 and "not both" in both.json()["error"]
    assert api.get("/api/iq", params={"from": str(t0)}).status_code == 400  # no 'to'


def test_iq_over_the_size_limit_is_413(filled):
    server = ApiServer(filled.root, free_port(), "--max-iq-mb", "0.5")
    try:
        t0 = filled.synth_span[0]
        small = httpx.get(server.url + "/api/iq", params={"from": str(t0), "to": str(t0 + NS_PER_S // 2)})
        assert small.status_code == 200 and int(small.headers["x-samples"]) == 125_000
        big = httpx.get(server.url + "/api/iq", params={"from": str(t0), "to": str(t0 + 2 * NS_PER_S)})
        assert big.status_code == 413
        assert "over the limit of 0.5 MB" in big.json()["error"] and "shorter span" in big.json()["error"]
    finally:
        server.stop()


# ---- bad parameters: 400 with the reason ------------------------------------------------------------
BAD = [
    ("/api/telemetry/history", {"hours": "0"}, "hours"),
    ("/api/telemetry/history", {"hours": "nan"}, "hours"),
    ("/api/telemetry/history", {"limit": "0"}, "limit"),
    ("/api/telemetry/history", {"db": "cold"}, "db"),
    ("/api/telemetry/stats", {"sensor": "Nope!"}, "sensor"),
    ("/api/telemetry/stats", {"sensor": "roof"}, "not registered"),
    ("/api/detections", {"from": "yesterday"}, "from"),
    ("/api/detections", {"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "not after"),
    ("/api/detections", {"freq_min_hz": "5e8", "freq_max_hz": "4e8"}, "freq_max_hz"),
    ("/api/detections", {"freq_min_hz": "-inf"}, "freq_min_hz"),
    ("/api/detections", {"limit": "abc"}, "limit"),
    ("/api/detections", {"limit": "10001"}, "limit"),
    ("/api/detections", {"frm": "x"}, "unknown parameter"),
    ("/api/messages", {"model": ""}, "model"),
    ("/api/messages", {"to": "99999999999999999999"}, "to"),
    ("/api/devices", {"missing_after": "0.5"}, "missing_after"),
    ("/api/iq", {"detection_id": "-3"}, "detection_id"),
    ("/api/iq", {"detection_id": "1", "margin_s": "61"}, "margin_s"),
    ("/api/database/stats", {"sensor": "default"}, "unknown parameter"),
]


@pytest.mark.parametrize("path,query,word", BAD)
def test_bad_parameter_is_400_naming_it(api, path, query, word):
    r = api.get(path, params=query)
    assert r.status_code == 400, (path, query, r.text)
    assert word in r.json()["error"]


def test_repeated_parameter_is_400(api):
    r = api.get("/api/detections?limit=1&limit=2")
    assert r.status_code == 400 and "more than once" in r.json()["error"]


ENDPOINTS = {
    "/api/telemetry/history": ("sensor", "hours", "limit", "metric", "db"),
    "/api/telemetry/stats": ("sensor", "hours", "db"),
    "/api/detections": ("sensor", "from", "to", "label", "freq_min_hz", "freq_max_hz", "limit"),
    "/api/messages": ("sensor", "from", "to", "model", "device_id", "channel", "freq_min_hz", "freq_max_hz", "limit"),
    "/api/devices": ("sensor", "missing_after"),
    "/api/iq": ("sensor", "from", "to", "freq_min_hz", "freq_max_hz", "detection_id", "margin_s"),
}


def test_fuzzed_parameters_never_give_a_server_error(api):
    """Random values (and names) for every parameter: 200, 400 (with a reason), 404 or 413, never
    a 5xx, and a 400 always names one of the parameters sent."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    values = st.one_of(
        st.text(max_size=30),
        st.integers(-(2**70), 2**70).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.sampled_from(["", "nan", "1e400", "2026-13-01T00:00:00Z", "0", "-1", "\x00", "default"]),
    )

    @st.composite
    def requests(draw):
        path = draw(st.sampled_from(sorted(ENDPOINTS)))
        names = draw(st.lists(st.sampled_from(ENDPOINTS[path] + ("bogus",)), min_size=1, max_size=4, unique=True))
        return path, {n: draw(values) for n in names}

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(requests())
    def check(req):
        path, query = req
        r = api.get(path, params=query)
        assert r.status_code in (200, 400, 404, 413), (path, query, r.status_code, r.text[:300])
        if r.status_code == 400:
            msg = r.json()["error"]
            assert any(name in msg for name in query) or "from and to" in msg, (query, msg)

    check()


# ---- a damaged analysis DB while the server runs --------------------------------------------------
def test_analysis_db_deleted_corrupted_locked_gives_503_and_the_rest_keeps_working(filled, tmp_path):
    root = tmp_path / "copy"
    root.mkdir()
    for name in ("hot.db", "analysis.db"):
        src = sqlite3.connect(filled.root / name)
        dst = sqlite3.connect(root / name)
        src.backup(dst)
        src.close()
        dst.close()
    good = (root / "analysis.db").read_bytes()
    server = ApiServer(root, free_port())
    client = httpx.Client(base_url=server.url, timeout=30)
    try:
        assert client.get("/api/detections").status_code == 200

        def analysis_down(word: str) -> None:
            for path in (
                "/api/detections",
                "/api/messages",
                "/api/devices",
                f"/api/iq?from={filled.synth_span[0]}&to={filled.synth_span[0] + NS_PER_S}",
            ):
                r = client.get(path)
                assert r.status_code == 503, (path, r.text)
                assert "analysis.db" in r.json()["error"] and word in r.json()["error"], r.json()
            # the capture's figures come from the hot DB: still served
            assert client.get("/api/telemetry/history").status_code == 200
            assert client.get("/api/telemetry/stats").status_code == 200
            dbs = {d["db"]: d for d in client.get("/api/database/stats").json()["databases"]}
            assert dbs["hot"]["ok"] is True and dbs["analysis"]["ok"] is False and dbs["analysis"]["error"]

        for suffix in ("", "-wal", "-shm"):
            Path(f"{root / 'analysis.db'}{suffix}").unlink(missing_ok=True)
        analysis_down("does not exist")

        (root / "analysis.db").write_bytes(b"this is not a database at all" * 1000)
        analysis_down("not an SQLite database")

        damaged = bytearray(good)  # a real header, the schema pages overwritten
        damaged[100:200_000] = os.urandom(199_900)
        (root / "analysis.db").write_bytes(bytes(damaged))
        analysis_down("damaged")

        (root / "analysis.db").write_bytes(good)  # restored: served again, no restart
        assert client.get("/api/detections").status_code == 200

        locker = sqlite3.connect(root / "analysis.db", isolation_level=None)
        locker.execute("PRAGMA locking_mode=EXCLUSIVE")
        locker.execute("BEGIN EXCLUSIVE")
        try:
            analysis_down("locked")
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        assert client.get("/api/detections").status_code == 200
    finally:
        client.close()
        server.stop()


# ---- load while a 3.2 MS/s capture runs ------------------------------------------------------------
def test_bounded_load_during_a_fast_capture_loses_no_sample(filled, tmp_path):
    """400 requests from 8 concurrent clients over every endpoint while a 3.2 MS/s capture writes
    the same data root's hot DB: no 5xx, and the capture loses nothing (bench/api_load.py is the
    full size, with p99 latencies)."""
    from sdr_assets_tests.api_support import capture_losses, request_mix, run_load, start_capture

    root = tmp_path / "load"
    shutil.copytree(filled.root, root, ignore=shutil.ignore_patterns("*.sigmf-data", "snapshots", "spectrograms"))
    capture = start_capture(root, rate_hz=3_200_000, duration_s=40)
    server = ApiServer(root, free_port())
    try:
        t0 = time.monotonic()
        results = run_load(server.url, request_mix(filled.synth_span), n_requests=400, concurrency=8)
        load_s = time.monotonic() - t0
        capturing_throughout = capture.poll() is None
    finally:
        server.stop()
        capture.send_signal(2)
        capture.wait(timeout=60)
    statuses = {r.status for r in results}
    assert statuses <= {200}, sorted(statuses)
    assert capturing_throughout
    losses = capture_losses(root / "hot.db")
    assert losses.samples_lost == 0 and losses.gaps == 0, losses
    assert losses.samples_stored == losses.samples_received >= 3_200_000 * load_s, (losses, load_s)


# ---- the command -----------------------------------------------------------------------------------
def test_serve_api_bad_flags_are_one_error_line(data_root):
    cli = str(BIN / "sdr-assets")
    for args, word in (
        (["--port", "0"], "--port 0"),
        (["--port", "70000"], "--port 70000"),
        (["--max-iq-mb", "-1"], "--max-iq-mb"),
        (["--host", "no.such.host.invalid"], "--host"),
    ):
        out = subprocess.run([cli, "serve-api", *args], capture_output=True, text=True, timeout=60)
        assert out.returncode == 2 and out.stderr.startswith("error: ") and word in out.stderr, out.stderr
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        out = subprocess.run([cli, "serve-api", "--port", str(port)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "cannot listen on 127.0.0.1" in out.stderr and "--port" in out.stderr


def test_every_endpoint_is_documented_with_a_curl(api):
    doc = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    paths = api.get("/api").json()["endpoints"]
    assert set(ENDPOINTS) | {"/api/database/stats"} <= set(paths)
    for path in paths:
        assert re.search(rf"^curl -s[^\n]*'http://127\.0\.0\.1:8080{re.escape(path)}['?]", doc, re.M), path


def test_metric_groups_take_resource_metrics_by_name():
    """The capture's metrics, and resource metrics other processes may write (system, process,
    NVIDIA GPU), each land in the group that answers for them."""
    from sdr_assets.api.app import metric_group

    want = {
        "ingest_mb_s": "ingest_rate",
        "samples_received_per_s": "ingest_rate",
        "samples_lost_ring_overflow": "samples_lost",
        "commit_ms_p99": "commit_latency",
        "cpu_percent": "cpu",
        "sys_cpu_percent": "cpu",
        "rss_mb": "ram",
        "proc_rss_mb": "ram",
        "sys_mem_used_mb": "ram",
        "gpu0_util_percent": "gpu",
        "gpu1_mem_used_mb": "gpu",
        "db_size_bytes": None,
        "ring_fill": None,
    }
    assert {m: metric_group(m) for m in want} == want
