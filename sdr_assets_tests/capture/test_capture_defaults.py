"""Defaults that fit together: the plainest `sdr-assets capture --source ...` works.

The hot DB cap, when the user gives none, is derived from the partition length and the rate
(two windows plus 10 %, at least 2 GiB); a cap the user chose is judged against the window
(warning between one and two windows, refusal below one); a finite source that fits is never
refused.
"""

import hashlib
import json
import os
from pathlib import Path

import pytest

from sdr_assets.errors import ConfigError
from sdr_assets.store.hot import DEFAULT_CAP_BYTES, check_capacity, default_cap_bytes
from sdr_assets_tests.capture_support import query, run_cli

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "rtl433"
# Every rate an RTL-SDR runs stably at the edges of its two bands, and the partition lengths
# a user can set.
RTL_RATES_HZ = (225_001, 250_000, 300_000, 900_001, 1_024_000, 2_048_000, 2_400_000, 3_200_000)
WINDOWS_S = (60, 300, 1800, 3600)


@pytest.mark.parametrize("rate_hz", RTL_RATES_HZ)
@pytest.mark.parametrize("window_s", WINDOWS_S)
def test_the_default_cap_holds_two_windows_at_every_rtl_sdr_rate(rate_hz, window_s):
    cap, warning = default_cap_bytes(rate_hz, window_s, room_bytes=None)
    assert warning is None and cap >= DEFAULT_CAP_BYTES
    assert cap >= 2 * window_s * rate_hz * 2
    assert check_capacity(cap, rate_hz, window_s) is None  # the default passes its own judge


def test_a_disk_without_room_gets_a_warning_with_the_numbers_not_a_refusal():
    cap, warning = default_cap_bytes(3.2e6, 3600, room_bytes=10e9)
    assert cap < 10e9 and warning.startswith("warning: ")
    for part in ("3.2 MS/s", "60-min", "46.1 GB", "SDR_ASSETS_PARTITION_MINUTES"):
        assert part in warning, (part, warning)


def test_a_chosen_cap_is_judged_against_the_window():
    assert check_capacity(100_000_000, 250_000, 3600, expected_bytes=50_000_000) is None  # fits
    assert check_capacity(4_000_000_000, 3.2e6, 300) is None  # two windows
    warning = check_capacity(3_000_000_000, 3.2e6, 300)  # between one and two windows
    assert warning.startswith("warning: ") and "3.84 GB" in warning
    with pytest.raises(ConfigError, match="every window would lose its oldest samples"):
        check_capacity(100_000_000, 3.2e6, 300)  # under one window: analysable data lost


def _plain_env(root: Path) -> dict:
    env = dict(os.environ, SDR_ASSETS_HOME=str(root))
    env.pop("SDR_ASSETS_PARTITION_MINUTES", None)  # the user's default: 60-minute partitions
    return env


def test_a_live_source_at_3_2_msps_starts_with_no_other_option(tmp_path):
    out = run_cli(
        "capture",
        "--source",
        "synthetic://?seed=1&rate=3200000",
        "--duration-s",
        "1",
        env=_plain_env(tmp_path / "root"),
        timeout_s=120,
    )
    assert out.returncode == 0, out.stderr
    assert "warning" not in out.stderr.lower(), out.stderr
    assert query(tmp_path / "root" / "hot.db", "SELECT count(*) FROM captures")[0][0] == 1


def test_every_shared_recording_is_stored_byte_exact_with_default_options(tmp_path):
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent (a user's clone has no ../shared)")
    manifest = json.loads((SHARED / "manifest.json").read_text())["recordings"]
    assert len(manifest) >= 20
    for i, rec in enumerate(manifest):
        root = tmp_path / f"root{i}"
        out = run_cli("capture", "--source", f"file://{SHARED / rec['file']}", env=_plain_env(root), timeout_s=120)
        assert out.returncode == 0, (rec["file"], out.stderr)
        rows = query(root / "hot.db", "SELECT iq FROM chunks ORDER BY seq")
        stored = b"".join(r[0] for r in rows)
        assert hashlib.sha256(stored).hexdigest() == rec["sha256"], rec["file"]
        assert query(root / "hot.db", "SELECT count(*) FROM gaps")[0][0] == 0, rec["file"]
