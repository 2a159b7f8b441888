"""Disk full, on a real small filesystem (a 40 MB tmpfs the test mounts; root only, skipped
otherwise): the capture stops with one clear error that names the full folder and what to do,
the hot DB stays intact and resumes (with a recorded gap) once there is room; hot_snapshot and
iq_window fail with a clear 'disk full' message and never touch the hot DB."""

import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta

import pytest

from sdr_assets_tests.capture_support import query, run_cli, uncovered_holes
from sdr_assets_tests.helpers import db_files_digest, failure_text, integrity, materialize
from sdr_assets_tests.reliability_soak import SUMMARY_RE


def _mount(folder, size: str) -> None:
    out = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if out.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({out.stderr.strip() or out.returncode}): "
            "the disk-full tests need root and mount(8)"
        )


@pytest.fixture
def small_fs(tmp_path):
    """A 40 MB tmpfs at tmp_path/small (unmounted afterwards)."""
    if os.geteuid() != 0:
        pytest.skip("the disk-full tests mount a small tmpfs: they need root (os.geteuid() == 0)")
    if shutil.which("mount") is None:
        pytest.skip("no mount(8) on this machine: the disk-full tests need it")
    folder = tmp_path / "small"
    folder.mkdir()
    _mount(folder, "40m")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _resize(folder, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(folder)], check=True)


def _fill(folder, leave_bytes: int):
    """A filler file that leaves about ``leave_bytes`` free on the filesystem."""
    free = shutil.disk_usage(folder).free
    path = folder / "filler"
    with open(path, "wb") as fh:
        fh.write(b"\0" * max(0, free - leave_bytes))
    return path


def test_capture_on_a_full_disk_stops_clearly_keeps_the_db_and_resumes_with_room(small_fs, monkeypatch):
    home = small_fs / "home"
    monkeypatch.setenv("SDR_ASSETS_HOME", str(home))
    args = ("capture", "--source", "synthetic://?seed=1&rate=3200000", "--partition-minutes", "0.05")
    out = run_cli(*args, "--duration-s", "60", timeout_s=120)  # 6.4 MB/s fills 40 MB in seconds
    assert out.returncode == 2, out.stderr
    error = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert len(error) == 1 and "disk full" in error[0] and str(home) in error[0], out.stderr
    assert "free space there" in error[0] and "--cap-bytes" in error[0]
    received, stored, lost = map(int, SUMMARY_RE.search(out.stderr).groups())
    # what was received and could not be stored is counted (it cannot be recorded: no room)
    assert stored > 0 and lost == received - stored, out.stderr
    assert lost == 0 or f"write_error: {lost}" in out.stderr
    hot = home / "hot.db"
    assert integrity(hot) == "ok" and uncovered_holes(hot) == []
    assert query(hot, "SELECT sum(n_samples) FROM chunks")[0][0] == stored
    end = query(hot, "SELECT end_reason FROM captures")[0][0]
    assert end is None or "disk full" in end  # recorded when the last page still fitted

    _resize(small_fs, "120m")  # room again; a cap under the free space keeps it so
    out = run_cli(*args, "--duration-s", "4", "--cap-bytes", str(48 * 10**6), timeout_s=120)
    assert out.returncode == 0, out.stderr
    assert integrity(hot) == "ok" and uncovered_holes(hot) == []
    assert hot.stat().st_size <= 48 * 10**6 + 4 * 2**20
    restart = query(hot, "SELECT capture_id, detail FROM gaps WHERE cause = 'restart'")
    assert len(restart) == 1 and restart[0][0] == 2 and "service was down" in restart[0][1]


def test_analysis_on_a_full_disk_fails_clearly_and_never_touches_the_hot_db(small_fs, monkeypatch):
    home = small_fs / "home"
    monkeypatch.setenv("SDR_ASSETS_HOME", str(home))
    start = (datetime.now(UTC) - timedelta(minutes=90)).replace(second=0, microsecond=0)
    uri = f"synthetic://?seed=2&rate=250000&start={start:%Y-%m-%dT%H:%M:%SZ}&duration_s=30"
    out = run_cli("capture", "--source", uri, "--no-realtime", "--partition-minutes", "1", timeout_s=120)
    assert out.returncode == 0, out.stderr
    key = start.strftime("%Y-%m-%d-%H:%M")
    hot = home / "hot.db"
    before = db_files_digest(hot)

    filler = _fill(small_fs, 4 * 10**6)  # the ~16 MB copy cannot fit
    res = materialize(["hot_snapshot"], key, quiet=True)
    text = failure_text(res)
    assert not res.success and "disk full" in text and str(home / "snapshots") in text, text
    assert "hot DB was not touched" in text and list((home / "snapshots").iterdir()) == []
    assert db_files_digest(hot) == before

    filler.unlink()
    res = materialize(["hot_snapshot"], key, quiet=True)
    assert res.success
    _fill(small_fs, 6 * 10**6)  # analysis.db can be created, the 15 MB window cannot fit
    res = materialize(["iq_window"], key, quiet=True)
    text = failure_text(res)
    assert not res.success and "disk full" in text and str(home) in text, text
    assert "keep_partitions" in text and "OperationalError: database or disk is full" in text
    assert db_files_digest(hot) == before
    if (home / "analysis.db").exists():
        assert integrity(home / "analysis.db") == "ok"

    _resize(small_fs, "80m")  # room again: the same materialisation now works
    res = materialize(["iq_window"], key, quiet=True)
    assert res.success and db_files_digest(hot) == before
