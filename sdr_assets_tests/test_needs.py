"""conftest.needs / require_or_skip: a test that cannot run here skips with its reason, and FAILS
under CI=true (so CI never goes green with the production-path or browser tests unrun)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY = """
from sdr_assets_tests.conftest import needs, require_or_skip

@needs("redis-server is missing: apt-get install redis-server")
def test_marked():
    pass

def test_inline():
    require_or_skip("chromium is missing: apt-get install chromium")

@needs(None)
def test_nothing_missing():
    pass
"""


def _run(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess:
    (tmp_path / "conftest.py").write_text(
        "from sdr_assets_tests.conftest import pytest_configure, pytest_runtest_setup  # noqa: F401\n"
    )
    (tmp_path / "test_tiny.py").write_text(TINY)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "test_tiny.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _counts(out: str) -> dict[str, int]:
    last = out.strip().splitlines()[-1]
    return {word.rstrip("s"): int(n) for n, word in re.findall(r"(\d+) (\w+)", last)}


@pytest.mark.parametrize("ci", [None, "false", ""])
def test_outside_ci_it_skips_with_the_reason(tmp_path, ci):
    out = _run(tmp_path, ci)
    assert out.returncode == 0, out.stdout + out.stderr
    assert _counts(out.stdout) == {"passed": 1, "skipped": 2}, out.stdout
    assert "redis-server is missing: apt-get install redis-server" in out.stdout
    assert "chromium is missing: apt-get install chromium" in out.stdout


@pytest.mark.parametrize("ci", ["true", "TRUE", "1"])
def test_in_ci_it_fails_with_the_reason(tmp_path, ci):
    out = _run(tmp_path, ci)
    assert out.returncode == 1, out.stdout + out.stderr
    # the marked test fails in setup (before any fixture starts), the inline one in its body
    assert _counts(out.stdout) == {"failed": 1, "passed": 1, "error": 1}, out.stdout
    assert "CI=true and this test cannot run: redis-server is missing: apt-get install redis-server" in out.stdout
    assert "CI=true and this test cannot run: chromium is missing: apt-get install chromium" in out.stdout
    assert "skipped" not in out.stdout.strip().splitlines()[-1]
