"""The calendar never decides whether the product (or its suite) works.

- the first partition is fixed once per data root: the same key today and a month later;
- the date-sensitive tests (partitions, schedules, sensors, registry, backfill: marked
  ``calendar``) pass with the clock moved 60 days ahead (libfaketime).
"""

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sdr_assets_tests.capture_support import run_cli
from sdr_assets_tests.conftest import require_or_skip

REPO = Path(__file__).resolve().parents[2]
FIRST_KEY = "from sdr_assets.defs.partitions import TIME_PARTITIONS as P; print(P.get_first_partition_key())"

pytestmark = pytest.mark.calendar


def _faketime() -> str:
    exe = shutil.which("faketime")
    if exe is None:
        require_or_skip("faketime is not installed (Debian package faketime; `make test-deps`)")
    return exe


def _env(root: Path, **extra) -> dict:
    env = dict(os.environ, SDR_ASSETS_HOME=str(root), SDR_ASSETS_PARTITION_MINUTES="60")
    env.pop("SDR_ASSETS_PARTITION_START", None)  # the data root decides, unless a test sets it
    return {**env, **extra}


def _clock_ahead(env: dict, days_ahead: int) -> dict:
    """``env`` with libfaketime preloaded and the clock ``days_ahead`` of this process's clock
    (which may itself be faked, as in the inner run below: the offsets add up)."""
    clean = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "FAKETIME")}
    probe = subprocess.run(
        [_faketime(), "+0days", "sh", "-c", "echo $LD_PRELOAD"], env=clean, capture_output=True, text=True, timeout=30
    )
    outer_s = float(os.environ.get("FAKETIME", "+0").lstrip("+") or 0)
    return {**env, "LD_PRELOAD": probe.stdout.strip(), "FAKETIME": f"+{int(outer_s + days_ahead * 86400)}"}


def _first_key(root: Path, days_ahead: int = 0) -> str:
    """The first partition key a fresh process loads, with its clock ``days_ahead`` of ours."""
    env = _env(root)
    if days_ahead:
        env = _clock_ahead(env, days_ahead)
    out = subprocess.run(
        [sys.executable, "-c", FIRST_KEY], env=env, capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


def test_first_partition_key_is_the_same_today_and_30_days_later(tmp_path):
    root = tmp_path / "root"
    today = _first_key(root)
    assert (root / "settings.json").exists()
    saved = json.loads((root / "settings.json").read_text())["partition_start"]
    assert today == f"{saved}-00:00"
    # fixed at first load: 7 days before it (a fresh root holds no samples)
    expected = (datetime.now(UTC) - timedelta(days=7)).date()
    assert abs((datetime.strptime(saved, "%Y-%m-%d").date() - expected).days) <= 1
    assert _first_key(root, 30) == today
    assert _first_key(root) == today
    # another, fresh data root loaded 30 days ahead gets its own (later) start
    other = _first_key(tmp_path / "other", 30)
    assert other > today


def test_an_existing_root_keeps_its_older_samples_addressable(tmp_path):
    """A data root from before this rule (no settings.json) whose hot DB holds samples from 20
    days ago: the start is fixed at that day, not 7 days back."""
    root = tmp_path / "root"
    start = (datetime.now(UTC) - timedelta(days=20)).replace(microsecond=0)
    cap = run_cli(
        "capture",
        "--source",
        f"synthetic://?seed=1&rate=250000&start={start:%Y-%m-%dT%H:%M:%SZ}&duration_s=2",
        "--no-realtime",
        env=_env(root),
        timeout_s=120,
    )
    assert cap.returncode == 0, cap.stderr
    assert not (root / "settings.json").exists()
    assert _first_key(root) == f"{start:%Y-%m-%d}-00:00"
    assert _first_key(root, 30) == f"{start:%Y-%m-%d}-00:00"


def test_the_variable_wins_and_home_reports_the_start(tmp_path):
    root = tmp_path / "root"
    out = run_cli("home", env=_env(root))
    assert out.returncode == 0, out.stderr
    saved = json.loads((root / "settings.json").read_text())["partition_start"]
    assert out.stdout.strip() == str(root.resolve())
    assert f"partitions start {saved}-00:00 UTC" in out.stderr and "settings.json" in out.stderr
    day = (datetime.now(UTC) - timedelta(days=3)).strftime("%Y-%m-%d")
    out = run_cli("home", env=_env(root, SDR_ASSETS_PARTITION_START=day))
    assert f"partitions start {day}-00:00 UTC (from SDR_ASSETS_PARTITION_START)" in out.stderr


def test_a_damaged_settings_file_is_one_clear_error(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "settings.json").write_text('{"partition_start": "last tuesday"}')
    out = run_cli("home", env=_env(root))
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("error: ") and "settings.json" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


@pytest.mark.skipif(os.environ.get("SDR_ASSETS_FAKETIME_INNER") == "1", reason="already the inner run")
def test_date_sensitive_tests_pass_with_the_clock_60_days_ahead(tmp_path):
    """Runs every ``calendar``-marked test again under ``faketime '+60days'`` (subprocesses
    inherit the shifted clock)."""
    faketime = _faketime()
    # libfaketime makes timed waits hang: the capture's checkpointer thread waits on a timeout, so
    # the faked run checkpoints in line (store.hot: SDR_ASSETS_CHECKPOINT)
    env = dict(os.environ, SDR_ASSETS_FAKETIME_INNER="1", SDR_ASSETS_CHECKPOINT="inline")
    env.pop("SDR_ASSETS_PARTITION_START", None)  # conftest derives it again from the faked now
    out = subprocess.run(
        [
            faketime,
            "+60days",
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-m",
            "calendar",
            "-p",
            "no:cacheprovider",
            "--basetemp",
            str(tmp_path / "inner"),
            str(REPO / "sdr_assets_tests"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=REPO,
    )
    tail = out.stdout[-4000:] + out.stderr[-2000:]
    assert out.returncode == 0, tail
    assert " passed" in tail and "failed" not in tail, tail
    print(tail.strip().splitlines()[-1])
