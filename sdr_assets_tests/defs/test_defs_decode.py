"""rtl_433 as the decoder and the teacher, through Dagster on real recordings (../shared/data/rtl433):
capture -> snapshot -> window -> decoded_messages gives what rtl_433 gives on each file; lineage;
one rtl_433 run per segment of a window with recorded gaps; decoder-taught labels; decodes meet
detections (view, report, SigMF export); without rtl_433 the rest of the chain runs."""

import json
import shutil
import sqlite3
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sdr_assets.records import NS_PER_S, samples_to_ns
from sdr_assets_tests.helpers import check_results, failure_text, materialize, meta

RTL433 = Path(__file__).resolve().parents[3] / "shared" / "data" / "rtl433"
needs_data = pytest.mark.skipif(
    not (RTL433 / "manifest.json").is_file(), reason="needs ../shared/data/rtl433 (real recordings)"
)
needs_rtl433 = pytest.mark.skipif(
    shutil.which("rtl_433") is None, reason="needs rtl_433 (sudo apt-get install rtl-433)"
)
RATE_HZ = 250_000
GAP_S = 0.5
CHAIN = ["hot_snapshot", "iq_window"]


def recordings() -> list[dict]:
    return json.loads((RTL433 / "manifest.json").read_text())["recordings"]


def rtl433_on_file(path: Path) -> list[dict]:
    """What Debian's rtl_433 prints reading the file itself (its own file input, -M time:rel)."""
    out = subprocess.run(
        ["rtl_433", "-c", "0", "-r", str(path), "-F", "json", "-M", "time:rel"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def multi_recording_sigmf(folder: Path, recs: list[dict], t0_ns: int) -> tuple[Path, list[int]]:
    """One SigMF recording holding ``recs`` one after another, each its own capture segment
    (own centre) starting GAP_S after the previous one ended: GAP_S of recorded gap between
    them. Returns the meta path and each recording's first-sample time (ns)."""
    from sdr_assets.sigmf import format_datetime_ns

    data, captures, starts, t, pos = bytearray(), [], [], t0_ns, 0
    for rec in recs:
        raw = (RTL433 / rec["file"]).read_bytes()
        captures.append(
            {
                "core:sample_start": pos,
                "core:frequency": float(rec["center_freq_hz"]),
                "core:datetime": format_datetime_ns(t),
            }
        )
        starts.append(t)
        data += raw
        pos += len(raw) // 2
        t += samples_to_ns(len(raw) // 2, RATE_HZ) + int(GAP_S * NS_PER_S)
    meta_doc = {
        "global": {"core:datatype": "cu8", "core:sample_rate": float(RATE_HZ), "core:version": "1.0.0"},
        "captures": captures,
        "annotations": [],
    }
    (folder / "all.sigmf-data").write_bytes(bytes(data))
    meta_path = folder / "all.sigmf-meta"
    meta_path.write_text(json.dumps(meta_doc))
    return meta_path, starts


def capture(uri: str, hot_db: Path) -> tuple[int, int]:
    """The recording -> the hot DB through the capture service; the held time range (ns)."""
    from sdr_assets.capture.service import CaptureService
    from sdr_assets.capture.uri import open_source
    from sdr_assets.store.snapshot import hot_time_range

    CaptureService(open_source(uri, realtime=False), hot_db, window_s_for_capacity_check=60.0).run()
    return hot_time_range(hot_db)


def partition_of(t_ns: int) -> str:
    """The 1-minute time key holding ``t_ns`` (the tests' partitions)."""
    return datetime.fromtimestamp(t_ns / NS_PER_S, tz=UTC).strftime("%Y-%m-%d-%H:%M")


def start_of_a_past_minute(minutes_ago: int, second: int = 2) -> int:
    t = (datetime.now(UTC) - timedelta(minutes=minutes_ago)).replace(second=second, microsecond=0)
    return int(t.timestamp()) * NS_PER_S


@pytest.fixture(scope="module")
def all_recordings_window(tmp_path_factory):
    """Every recording of the manifest in one 1-minute window, separated by recorded gaps,
    captured, snapshotted, loaded and decoded once for the tests of this module."""
    import os

    root = tmp_path_factory.mktemp("decode_home")
    old = os.environ.get("SDR_ASSETS_HOME")
    os.environ["SDR_ASSETS_HOME"] = str(root)
    try:
        recs = recordings()
        meta_path, starts = multi_recording_sigmf(root, recs, start_of_a_past_minute(90))
        held = capture(f"file://{meta_path}", root / "hot.db")
        key = partition_of(held[0])
        assert partition_of(held[1] - 1) == key  # the window holds them all
        res = materialize(
            CHAIN + ["spectrograms", "decoded_messages", "training_labels", "detections", "detection_report"], key
        )
        assert res.success, failure_text(res)
        yield {"root": root, "recs": recs, "starts": starts, "key": f"default|{key}", "result": res}
    finally:
        if old is None:
            os.environ.pop("SDR_ASSETS_HOME", None)
        else:
            os.environ["SDR_ASSETS_HOME"] = old


def _messages(root: Path, key: str) -> list[dict]:
    conn = sqlite3.connect(root / "analysis.db")
    conn.row_factory = sqlite3.Row
    try:
        return [
            dict(r)
            for r in conn.execute(
                "SELECT * FROM decoded_messages WHERE partition_key = ? ORDER BY t_start_ns, message_id", (key,)
            )
        ]
    finally:
        conn.close()


@needs_data
@needs_rtl433
def test_each_recording_decodes_as_rtl_433_decodes_the_file(all_recordings_window):
    """Same models, same message count, same first offset as rtl_433 reading each file; one
    rtl_433 run per segment (the recorded gaps between recordings never glue two together)."""
    w = all_recordings_window
    msgs = _messages(w["root"], w["key"])
    ends = w["starts"][1:] + [2**63]
    decodable = 0
    for rec, t0, t1 in zip(w["recs"], w["starts"], ends):
        expected = rtl433_on_file(RTL433 / rec["file"])
        mine = [m for m in msgs if t0 <= m["t_start_ns"] < t1]
        assert sorted(m["model"] for m in mine) == sorted(e["model"] for e in expected), rec["file"]
        if expected:
            decodable += 1
            # each message starts on the sample where its package starts (the manifest's starts:
            # rtl_433 reading a file reports a package still open at its end one 65536-sample
            # block late, x10 and chuango; decode_cu8 pads the input so it is not)
            starts = {b["start_sample"] for b in rec["rtl_433_bursts"]}
            assert {round((m["t_start_ns"] - t0) * RATE_HZ / NS_PER_S) for m in mine} <= starts
            for m in mine:  # each message sits in its recording and its band near its centre
                assert m["t_end_ns"] <= t0 + rec["duration_s"] * NS_PER_S + samples_to_ns(1, RATE_HZ)
                assert abs(m["freq_hz"] - rec["center_freq_hz"]) < RATE_HZ / 2
                assert m["freq_lower_hz"] < m["freq_upper_hz"] and m["decoder_version"]
    assert decodable >= 20
    d = meta(w["result"], "decoded_messages")
    assert d["messages"] == len(msgs) == sum(r["rtl_433_decoded_messages"] for r in w["recs"])
    assert d["segments"] == len(w["recs"])  # one run per contiguous segment
    assert d["rtl_433_version"] == subprocess.run(["rtl_433", "-V"], capture_output=True, text=True).stderr.split()[2]
    assert d["count_GT-WT02"] == 6 and d["devices"] >= 18 and "GT-WT02" in d["first_messages"]


@needs_data
@needs_rtl433
def test_lineage_seqs_cover_each_message(all_recordings_window):
    """first_seq..last_seq are hot-DB chunks whose samples cover the message, and no fewer."""
    from sdr_assets_tests.capture_support import query

    w = all_recordings_window
    spans = {
        seq: (t, t + samples_to_ns(n, fs))
        for seq, t, n, fs in query(
            w["root"] / "hot.db", "SELECT seq, t_start_ns, n_samples, sample_rate_hz FROM chunks"
        )
    }
    for m in _messages(w["root"], w["key"]):
        first, last = m["first_seq"], m["last_seq"]
        assert spans[first][0] <= m["t_start_ns"] < spans[first][1]
        assert spans[last][0] < m["t_end_ns"] <= spans[last][1]
        inside = [q for q, (a, b) in spans.items() if a < m["t_end_ns"] and b > m["t_start_ns"]]
        assert (min(inside), max(inside)) == (first, last)


@needs_data
@needs_rtl433
def test_decoder_packages_teach_the_labels(all_recordings_window):
    """Every package rtl_433 found (decoded or not) labels the frames, class from its modulation;
    no energy fallback where the decoder spoke."""
    w = all_recordings_window
    labels = meta(w["result"], "training_labels")
    n_packages = sum(len(r["rtl_433_bursts"]) for r in w["recs"])
    assert labels["rtl_433_packages"] == n_packages
    assert labels["source"] == "rtl_433" and labels["boxes_from_rtl_433"] == labels["boxes"] >= n_packages
    assert labels["auto_boxes"] == 0 and set(labels["boxes_per_class"]) == {"ook", "fsk"}
    conn = sqlite3.connect(w["root"] / "analysis.db")
    assert conn.execute("SELECT DISTINCT source, auto FROM labels WHERE partition_key = ?", (w["key"],)).fetchall() == [
        ("rtl_433", 0)
    ]
    fsk = conn.execute(
        "SELECT count(*) FROM decoded_packages WHERE partition_key = ? AND modulation = 'FSK'", (w["key"],)
    ).fetchone()[0]
    assert fsk == 3  # danfoss and ec3k (twice)


@needs_data
@needs_rtl433
def test_decodes_meet_detections_in_the_view_the_report_and_sigmf(all_recordings_window, tmp_path):
    from sdr_assets.sigmf.export import export_partition
    from sdr_assets.store import messages as store

    w = all_recordings_window
    conn = sqlite3.connect(w["root"] / "analysis.db")
    links = store.message_detections(conn, w["key"])
    msgs = {m.message_id: m for m in store.messages(conn, w["key"])}
    dets = {
        r[0]: r[1:]
        for r in conn.execute(
            "SELECT detection_id, t_start_ns, t_end_ns, freq_lower_hz, "
            "freq_upper_hz FROM detections WHERE partition_key = ?",
            (w["key"],),
        )
    }
    assert len({link.message_id for link in links}) >= 0.9 * len(msgs)  # the energy detector saw them
    for link in links:
        m, (t0, t1, lo, hi) = msgs[link.message_id], dets[link.detection_id]
        assert t0 < m.t_end_ns and t1 > m.t_start_ns and lo < m.freq_upper_hz and hi > m.freq_lower_hz
    report = meta(w["result"], "detection_report")
    assert report["decoded_messages"] == len(msgs) and "GT-WT02 id 52 ch 1" in report["waterfall"]

    res = export_partition(w["root"] / "analysis.db", w["key"], tmp_path / "out")
    decodes = [
        a
        for rec in res.recordings
        for a in json.loads(rec.meta_path.read_text())["annotations"]
        if a["sdr_assets:origin"] == "rtl_433"
    ]
    assert len(decodes) == len(msgs) == sum(r.n_decodes for r in res.recordings)
    nexus = next(a for a in decodes if a["sdr_assets:device"] == "Nexus-TH id 181 ch 2")
    assert nexus["core:label"] == "Nexus-TH" and nexus["core:generator"].startswith("rtl_433 ")
    assert nexus["sdr_assets:message"]["temperature_C"] == 19.0 and nexus["sdr_assets:first_seq"] >= 1
    assert nexus["core:freq_lower_edge"] < nexus["core:freq_upper_edge"]


@needs_data
def test_without_rtl_433_the_decode_fails_in_one_line_and_the_chain_runs(data_root, tmp_path):
    from sdr_assets.defs.resources import DecoderSettings

    rec = next(r for r in recordings() if r["file"].startswith("nexus"))
    meta_path, _ = multi_recording_sigmf(tmp_path, [rec], start_of_a_past_minute(95))
    held = capture(f"file://{meta_path}", data_root / "hot.db")
    res = materialize(
        CHAIN + ["spectrograms", "decoded_messages", "device_inventory", "training_labels", "detections"],
        partition_of(held[0]),
        decoder=DecoderSettings(rtl_433=str(tmp_path / "bin" / "rtl_433")),
    )
    assert not res.success
    text = failure_text(res)
    assert text.startswith("decoded_messages: ") and text.count("\n") == 0  # one step failed, one line
    assert "rtl_433 not found at" in text and "sudo apt-get install rtl-433" in text
    done = {
        n
        for n in CHAIN + ["spectrograms", "decoded_messages", "device_inventory", "training_labels", "detections"]
        if res.asset_materializations_for_node(n)
    }
    assert {"hot_snapshot", "iq_window", "spectrograms", "training_labels", "detections"} <= done
    assert "decoded_messages" not in done and "device_inventory" not in done
    assert meta(res, "training_labels")["source"] == "energy"


@needs_data
@needs_rtl433
def test_two_devices_one_stops_and_a_new_one_appears(data_root, tmp_path):
    """Windows of one minute: A (Nexus) and B (GT-WT02) every 10 s, A stops after the first
    window, C (Prologue) starts in the third: one 'missing' (A, in the second window) and one
    'new' (C, in the third) check result, each a WARN and a line in the run log."""
    from sdr_assets.sigmf import format_datetime_ns

    by_name = {r["file"].split("_")[0]: r for r in recordings()}
    a, b, c = by_name["nexus"], by_name["GT-WT-02"], by_name["prologue"]
    t0 = start_of_a_past_minute(80, second=0)
    plan = []  # (t_ns, recording)
    for k in range(18):  # three minutes, a transmission of each live device every 10 s
        t = t0 + k * 10 * NS_PER_S
        plan += (
            [(t + 1 * NS_PER_S, b)]
            + ([(t + 4 * NS_PER_S, a)] if k < 6 else [])
            + ([(t + 7 * NS_PER_S, c)] if k >= 12 else [])
        )
    data, captures, pos = bytearray(), [], 0
    for t, rec in plan:
        raw = (RTL433 / rec["file"]).read_bytes()
        captures.append(
            {
                "core:sample_start": pos,
                "core:frequency": float(rec["center_freq_hz"]),
                "core:datetime": format_datetime_ns(t),
            }
        )
        data += raw
        pos += len(raw) // 2
    (tmp_path / "band.sigmf-data").write_bytes(bytes(data))
    (tmp_path / "band.sigmf-meta").write_text(
        json.dumps(
            {
                "global": {"core:datatype": "cu8", "core:sample_rate": float(RATE_HZ), "core:version": "1.0.0"},
                "captures": captures,
                "annotations": [],
            }
        )
    )
    capture(f"file://{tmp_path / 'band.sigmf-meta'}", data_root / "hot.db")

    import logging

    import dagster as dg

    instance = dg.DagsterInstance.ephemeral()
    failed, logged = [], []
    for minute in range(3):
        key = partition_of(t0 + minute * 60 * NS_PER_S)
        res = materialize(CHAIN + ["decoded_messages", "device_inventory"], key, instance=instance)
        assert res.success, failure_text(res)
        failed += [
            (minute, name, sev)
            for name, passed, sev in check_results(res)
            if not passed and name in ("no_new_devices", "no_missing_devices")
        ]
        logged += [
            (minute, r.user_message)
            for r in instance.all_logs(res.run_id)
            if r.level >= logging.WARNING and "device" in (r.user_message or "")
        ]
    assert failed == [(1, "no_missing_devices", "WARN"), (2, "no_new_devices", "WARN")]
    assert [m for m, line in logged if "missing" in line and "Nexus-TH id 181 ch 2" in line] == [1]
    assert [m for m, line in logged if "new device" in line and "Prologue-TH" in line] == [2]
    conn = sqlite3.connect(data_root / "analysis.db")
    inv = {
        r[0]: r[1:]
        for r in conn.execute(
            "SELECT model, n_messages, usual_interval_s FROM device_inventory WHERE sensor = 'default'"
        )
    }
    assert inv["Nexus-TH"] == (6, pytest.approx(10.0, abs=0.01))
    assert inv["GT-WT02"][0] == 18 * 6  # its six repeats 0.24 s apart are one transmission:
    assert 8.0 < inv["GT-WT02"][1] < 10.0  # from the last repeat to the next transmission
    assert inv["Prologue-TH"][0] == 6


def test_decodes_run_in_the_hourly_chain_but_block_nothing():
    """decoded_messages and device_inventory are in analysis_job (what hot_db_sensor runs) and
    no asset of the detection chain depends on them."""
    from sdr_assets.definitions import defs

    hourly = {k.path[-1] for k in defs.resolve_job_def("analysis_job").asset_layer.executable_asset_keys}
    assert {"decoded_messages", "device_inventory"} <= hourly
    for name in ("hot_snapshot", "iq_window", "spectrograms", "training_labels", "detections", "detection_report"):
        deps = {k.path[-1] for k in defs.get_assets_def(name).dependency_keys}
        assert not deps & {"decoded_messages", "device_inventory"}, name
    assert {k.path[-1] for k in defs.get_assets_def("decoded_messages").dependency_keys} == {"iq_window"}
