"""One `error:` line and exit 2, through the real `sdr-assets` executable (issue 12): outputs
that cannot be written (read-only folders, a full disk, a path under a file), damaged or
unwritable data roots, values that parse but cannot be stored, and the small leaks (a password
echoed back, folders created for nothing). Nothing already stored may be lost or changed.

A read-only folder is a chmod 0o555 folder, or, when the tests run as root (where chmod does not
stop writes), a read-only tmpfs mounted there; a full disk is a small tmpfs (root only)."""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from sdr_assets.records import NS_PER_S, Chunk, SourceInfo
from sdr_assets_tests.capture_support import query, run_cli, write_cu8
from sdr_assets_tests.helpers import db_files_digest, integrity

RATE_HZ = 250_000


def one_line_error(out, *needles: str) -> str:
    """The run failed with exit 2 and exactly one `error: ...` line containing ``needles``."""
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert out.returncode == 2, (out.returncode, out.stderr[-3000:])
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr[-3000:]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def _env(**overrides) -> dict:
    return dict(os.environ, **overrides)


def _mount_tmpfs(folder: Path, options: str, why: str) -> None:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip(f"{why}: needs root and mount(8) for a tmpfs")
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"{why}: cannot mount a tmpfs here ({out.stderr.strip() or out.returncode})")


@pytest.fixture
def readonly_dir(tmp_path):
    """An existing, empty folder that no write can go into (see the module doc)."""
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        (folder / ".probe").touch()
    except PermissionError:
        yield folder  # chmod is enough (not root)
        folder.chmod(0o755)
        return
    (folder / ".probe").unlink()
    folder.chmod(0o755)
    # root writes through chmod: a read-only filesystem stops it
    _mount_tmpfs(folder, "ro,size=64k", "root ignores chmod 0o555, so a read-only folder")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture
def small_fs(tmp_path):
    """An 8 MB tmpfs (a disk that fills up)."""
    folder = tmp_path / "small"
    folder.mkdir()
    _mount_tmpfs(folder, "size=8m", "a full disk")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _hot_with_samples(
    hot: Path, n_chunks: int, chunk_bytes: int, t0_ns: int, telemetry_t_ns: int | None = None
) -> list[Chunk]:
    """A real hot DB: one capture of ``n_chunks`` random cu8 chunks from ``t0_ns``, and (with
    ``telemetry_t_ns``) the capture's telemetry rows of one second."""
    from sdr_assets.store.hot import HotWriter

    rng = np.random.default_rng(1)
    chunks, t = [], t0_ns
    for _ in range(n_chunks):
        c = Chunk(t, 433.92e6, RATE_HZ, None, rng.integers(0, 256, chunk_bytes, dtype=np.uint8).tobytes())
        chunks.append(c)
        t = c.t_end_ns
    telemetry = (
        []
        if telemetry_t_ns is None
        else [
            (telemetry_t_ns, "capture", m, v)
            for m, v in (
                ("ingest_mb_s", 0.5),
                ("samples_lost_per_s", 0.0),
                ("samples_lost", 0.0),
                ("commit_ms_p50", 1.0),
                ("commit_ms_p99", 2.0),
                ("db_size_bytes", 1e6),
            )
        ]
    )
    with HotWriter(hot) as w:
        cid = w.begin_capture(SourceInfo("test://", "synthetic", 433.92e6, RATE_HZ), t0_ns)
        w.write_batch(cid, chunks, telemetry=telemetry)
    return chunks


def _analysis_partition(root: Path, n_bytes: int) -> str:
    """An analysis DB holding the time key 2026-01-01-00:00 of the default sensor: ``n_bytes``
    of samples (a real hot DB, snapshot and window load). Returns the time key."""
    from sdr_assets.store.snapshot import take_snapshot
    from sdr_assets.store.window import AnalysisDB

    t0_ns = (time.time_ns() // (60 * NS_PER_S) - 300) * 60 * NS_PER_S
    _hot_with_samples(root / "hot.db", n_bytes // 250_000, 250_000, t0_ns)
    snap = root / "snapshots" / "s.db"
    snap.parent.mkdir(parents=True, exist_ok=True)
    take_snapshot(root / "hot.db", snap, nice=0)
    with AnalysisDB(root / "analysis.db") as db:
        db.load_window(snap, "default|2026-01-01-00:00", t0_ns, t0_ns + 60 * NS_PER_S, keep_partitions=4)
    return "2026-01-01-00:00"


def _tree(folder: Path) -> dict[str, str]:
    import hashlib

    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# ---- 4. sensor names ------------------------------------------------------------------------
def test_sensor_names_with_a_trailing_newline_are_refused(data_root):
    from sdr_assets.errors import ConfigError
    from sdr_assets.store.sensors import check_name

    for bad in ("roof\n", "roof\r\n", "\nroof", "roof\n\n"):
        with pytest.raises(ConfigError):
            check_name(bad)
    out = run_cli("sensors", "add", "roof\n")
    one_line_error(out, "not valid")
    assert not (data_root / "sensors").exists() or os.listdir(data_root / "sensors") == []

    assert run_cli("sensors", "add", "roof").returncode == 0
    # a data root where an older version registered 'roof\n' beside 'roof'
    stale = data_root / "sensors" / "roof\n"
    stale.mkdir()
    (stale / "sensor.json").write_text('{"name": "roof\\n"}\n')
    out = run_cli(
        "capture",
        "--source",
        "synthetic://?seed=1&rate=250000",
        "--no-realtime",
        "--duration-s",
        "1",
        "--partition-minutes",
        "1",
        env=_env(SDR_ASSETS_SENSOR="roof\n"),
    )
    one_line_error(out, "not valid")
    assert not (data_root / "sensors" / "roof" / "hot.db").exists()  # never roof's DB
    listed = run_cli("sensors", "list")
    assert listed.returncode == 0 and [ln.split()[0] for ln in listed.stdout.splitlines()] == ["default", "roof"]


# ---- 5. outputs that cannot be written --------------------------------------------------------
def test_export_into_a_read_only_folder_is_one_line(data_root, readonly_dir):
    key = _analysis_partition(data_root, 500_000)
    out = run_cli("export", "--partition", key, "--out", str(readonly_dir))
    one_line_error(out, str(readonly_dir))
    assert os.listdir(readonly_dir) == []


def test_export_on_a_full_disk_is_one_line_leaves_no_tmp_and_keeps_the_earlier_export(data_root, small_fs):
    key = _analysis_partition(data_root, 5_000_000)
    dest = small_fs / "export"
    first = run_cli("export", "--partition", key, "--out", str(dest))
    assert first.returncode == 0, first.stderr
    before = _tree(dest)
    assert len(before) == 2
    out = run_cli("export", "--partition", key, "--out", str(dest))  # 5 MB more do not fit in 8 MB
    one_line_error(out, "full", str(dest))
    assert _tree(dest) == before  # no .tmp left, the earlier recording untouched


def _hot_with_telemetry(data_root: Path) -> None:
    data_root.mkdir(parents=True, exist_ok=True)
    now = time.time_ns()
    _hot_with_samples(data_root / "hot.db", 2, 20_000, now - 10 * NS_PER_S, telemetry_t_ns=now - NS_PER_S)


def test_report_since_minutes_not_finite_or_huge(data_root):
    _hot_with_telemetry(data_root)
    for bad in ("nan", "inf", "-inf"):
        one_line_error(run_cli("report", "--since-minutes", bad), "--since-minutes")
    out = run_cli("report", "--since-minutes", "1e300")  # further back than 1970: everything
    assert out.returncode == 0, out.stderr
    assert "telemetry rows: 6 from 1 capture(s)" in out.stdout


def test_report_plot_into_a_read_only_folder_or_under_a_file(data_root, readonly_dir, tmp_path):
    _hot_with_telemetry(data_root)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for target in (readonly_dir / "t.png", a_file / "t.png"):
        out = run_cli("report", "--plot", str(target))
        one_line_error(out, str(target))
    assert os.listdir(readonly_dir) == [] and a_file.read_text() == "x"


def test_status_and_stats_on_a_truncated_hot_db(data_root):
    data_root.mkdir(parents=True, exist_ok=True)
    hot = data_root / "hot.db"
    _hot_with_samples(hot, 40, 200_000, time.time_ns() - 60 * NS_PER_S, telemetry_t_ns=time.time_ns())
    with open(hot, "r+b") as fh:
        fh.truncate(hot.stat().st_size // 2)
    digest = db_files_digest(hot)
    for cmd in ("status", "stats"):
        one_line_error(run_cli(cmd), str(hot), "damaged")
    assert db_files_digest(hot) == digest


def test_capture_and_sensors_add_on_a_read_only_data_root(readonly_dir):
    env = _env(SDR_ASSETS_HOME=str(readonly_dir))
    out = run_cli(
        "capture",
        "--source",
        "synthetic://?seed=1&rate=250000",
        "--duration-s",
        "1",
        "--partition-minutes",
        "1",
        env=env,
    )
    one_line_error(out, str(readonly_dir))
    out = run_cli("sensors", "add", "roof", env=env)
    one_line_error(out, str(readonly_dir))
    assert os.listdir(readonly_dir) == []


# ---- evaluate ---------------------------------------------------------------------------------
def _evaluate(tmp_path, recordings: list, *extra: str):
    (tmp_path / "rec").mkdir(exist_ok=True)
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"recordings": recordings}))
    return run_cli("evaluate", "--recordings", str(tmp_path / "rec"), "--manifest", str(manifest), *extra)


def test_evaluate_manifest_entries_are_checked(tmp_path, data_root):
    out_file = str(tmp_path / "out.jsonl")
    for entry, needle in (
        ({"file": 5}, "'file'"),
        ({"file": ""}, "'file'"),
        ({"file": "a.cu8", "sample_rate_hz": "fast"}, "sample_rate_hz"),
        ({"file": "a.cu8", "rtl_433_bursts": [{"end_s": 1}]}, "start_s"),
    ):
        one_line_error(_evaluate(tmp_path, [entry], "--out", out_file), needle)
    one_line_error(_evaluate(tmp_path, [{"file": "a.cu8"}], "--out", out_file, "--limit", "-3"), "--limit")


def test_evaluate_keeps_an_existing_out_file_when_the_run_fails(tmp_path, data_root):
    (tmp_path / "rec").mkdir()
    write_cu8(tmp_path / "rec" / "a_433.92M_250k.cu8", 200_000)
    (tmp_path / "rec" / "odd_433.92M_250k.cu8").write_bytes(b"\x80" * 1001)  # fails at ingest
    out_file = tmp_path / "results.jsonl"
    previous = "".join(json.dumps({"file": "old", "t_start_s": i}) + "\n" for i in range(500))
    out_file.write_text(previous)
    # a listed file that is missing: refused before any work
    out = _evaluate(
        tmp_path, [{"file": "a_433.92M_250k.cu8"}, {"file": "missing_433.92M_250k.cu8"}], "--out", str(out_file)
    )
    one_line_error(out, "missing_433.92M_250k.cu8")
    assert out_file.read_text() == previous
    # a recording that fails after the first one was evaluated (the progress bar is on stderr)
    out = _evaluate(
        tmp_path, [{"file": "a_433.92M_250k.cu8"}, {"file": "odd_433.92M_250k.cu8"}], "--out", str(out_file)
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "odd number of bytes" in errors[0], out.stderr
    assert out_file.read_text() == previous
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


# ---- 6. values that parse but cannot be stored --------------------------------------------------
def _sigmf(
    folder: Path, name: str, *, datetime_iso: str | None = "2024-05-01T12:00:00Z", annotations=(), n_samples: int = 5000
) -> Path:
    cap = {"core:sample_start": 0, "core:frequency": 433.92e6}
    if datetime_iso is not None:
        cap["core:datetime"] = datetime_iso
    doc = {
        "global": {"core:datatype": "cu8", "core:sample_rate": RATE_HZ, "core:version": "1.0.0"},
        "captures": [cap],
        "annotations": list(annotations),
    }
    (folder / f"{name}.sigmf-meta").write_text(json.dumps(doc))
    write_cu8(folder / f"{name}.sigmf-data", 2 * n_samples)
    return folder / f"{name}.sigmf-meta"


@pytest.mark.parametrize(
    "case", ["annotation sample_start", "annotation sample_count", "datetime 9999", "datetime 0001"]
)
def test_sigmf_values_that_cannot_be_stored_are_refused_before_anything_is_written(case, data_root, tmp_path):
    big = 2**62 - 1
    kwargs = {
        "annotation sample_start": {"annotations": [{"core:sample_start": big, "core:label": "x"}]},
        "annotation sample_count": {"annotations": [{"core:sample_start": 10, "core:sample_count": big}]},
        "datetime 9999": {"datetime_iso": "9999-12-31T00:00:00Z"},
        "datetime 0001": {"datetime_iso": "0001-01-01T00:00:00Z"},
    }[case]
    good = write_cu8(tmp_path / "good_433.92M_250k.cu8", 40_000)
    assert run_cli("capture", "--source", f"file://{good}", "--partition-minutes", "1").returncode == 0
    hot = data_root / "hot.db"
    digest = db_files_digest(hot)
    meta = _sigmf(tmp_path, "bad", **kwargs)
    out = run_cli("capture", "--source", f"file://{meta}", "--partition-minutes", "1")
    one_line_error(out, "bad.sigmf-meta", "2262")
    assert db_files_digest(hot) == digest and integrity(hot) == "ok"  # not even a capture row


def test_synthetic_rate_too_high_is_refused_and_a_poisoned_root_still_captures(data_root):
    out = run_cli(
        "capture",
        "--source",
        "synthetic://?seed=1&rate=1e300",
        "--no-realtime",
        "--duration-s",
        "1",
        "--partition-minutes",
        "1e-300",
    )
    one_line_error(out, "rate")
    assert not (data_root / "hot.db").exists()
    # a hot DB an older version wrote at rate=1e300: the next capture records the dead time
    from sdr_assets.store.hot import HotWriter

    hot = data_root / "hot.db"
    t0 = time.time_ns() - 30 * NS_PER_S
    with HotWriter(hot) as w:
        cid = w.begin_capture(SourceInfo("synthetic://?rate=1e300", "synthetic", 433.92e6, 1e300), t0)
        w.write_batch(cid, [Chunk(t0, 433.92e6, 1e300, None, b"\x80" * 4096)])
    out = run_cli(
        "capture", "--source", "synthetic://?seed=1&rate=250000", "--duration-s", "1", "--partition-minutes", "1"
    )
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    ((n, lost),) = query(hot, "SELECT count(*), sum(n_samples_lost) FROM gaps WHERE cause = 'restart'")
    assert n == 1 and 0 < lost < 2**63
    assert query(hot, "SELECT count(*) FROM chunks WHERE capture_id = ?", (cid,))[0][0] == 1


# ---- the small ones ---------------------------------------------------------------------------
def test_export_of_a_key_not_held_creates_nothing_and_hints_a_command_that_works(data_root, tmp_path):
    _analysis_partition(data_root, 500_000)
    dest = tmp_path / "new_folder"
    line = one_line_error(run_cli("export", "--partition", "2026-01-02-00:00", "--out", str(dest)))
    assert "sdr-assets backfill --sensor default --from 2026-01-02-00:00 --to 2026-01-02-00:00" in line
    assert "--from default|" not in line
    assert not dest.exists()


def test_status_and_stats_do_not_create_a_missing_data_root(tmp_path):
    root = tmp_path / "nowhere"
    env = _env(SDR_ASSETS_HOME=str(root))
    out = run_cli("status", env=env)
    assert out.returncode == 0 and "No capture has run yet" in out.stdout, out.stderr
    one_line_error(run_cli("stats", env=env), "does not exist yet")
    assert not root.exists()


def test_an_empty_cu8_file_is_refused_without_a_capture_row(data_root, tmp_path):
    empty = tmp_path / "empty_433.92M_250k.cu8"
    empty.write_bytes(b"")
    one_line_error(run_cli("capture", "--source", f"file://{empty}", "--partition-minutes", "1"), "no samples")
    hot = data_root / "hot.db"
    assert not hot.exists() or query(hot, "SELECT count(*) FROM captures")[0][0] == 0


def test_a_password_in_a_source_uri_is_never_echoed_or_stored(data_root):
    uri = "rtl_tcp://radio:s3cr3t-pw@10.0.0.5:1234"
    out = run_cli("sensors", "add", "roof", "--source", uri)
    assert out.returncode == 0, out.stderr
    assert "s3cr3t-pw" not in out.stdout + out.stderr
    assert "rtl_tcp://radio:***@10.0.0.5:1234" in out.stdout
    assert "s3cr3t-pw" not in (data_root / "sensors" / "roof" / "sensor.json").read_text()
    listed = run_cli("sensors", "list")
    assert "s3cr3t-pw" not in listed.stdout + listed.stderr
    out = run_cli("capture", "--source", uri, "--duration-s", "1")
    line = one_line_error(out)
    assert "s3cr3t-pw" not in line
