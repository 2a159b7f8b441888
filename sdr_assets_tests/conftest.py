import importlib
import os
import socket
from datetime import UTC, datetime, timedelta

import pytest

# Partitions are fixed when sdr_assets.definitions is first imported: the whole test session
# uses 1-minute partitions so that short captures fill closed partitions quickly, starting 7
# days before NOW (never a calendar date: the suite passes on any day, and under
# `faketime '+60days'`, see test_calendar.py). Tests of the per-data-root start unset it.
os.environ["SDR_ASSETS_PARTITION_MINUTES"] = "1"
os.environ["SDR_ASSETS_PARTITION_START"] = (datetime.now(UTC) - timedelta(days=7)).strftime("%Y-%m-%d")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``soak`` (the long forms) run only with SDR_ASSETS_SOAK=1 (`make soak`)."""
    if os.environ.get("SDR_ASSETS_SOAK") == "1":
        return
    skip = pytest.mark.skip(reason="long form: runs under `make soak` (SDR_ASSETS_SOAK=1)")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)


# A fresh data root starts with the shipped model (ml.shipped_model); the suite's tests of "no
# model yet -> the energy detector" keep meaning that, module- and session-scoped fixtures
# included (they run before the autouse fixture below); test_ml_shipped.py unsets it.
os.environ.setdefault("SDR_ASSETS_NO_SHIPPED_MODEL", "1")


@pytest.fixture(autouse=True)
def _data_root(tmp_path, monkeypatch):
    """Every test writes under its own data root, never ./var."""
    root = tmp_path / "sdr_home"
    monkeypatch.setenv("SDR_ASSETS_HOME", str(root))
    monkeypatch.setenv("SDR_ASSETS_SENSOR", "default")  # `--sensor` sets it in-process: reset
    # a fresh data root starts with the shipped model (ml.shipped_model): the suite's tests of
    # "no model yet -> the energy detector" keep meaning that; test_ml_shipped.py unsets it
    monkeypatch.setenv("SDR_ASSETS_NO_SHIPPED_MODEL", "1")
    return root


@pytest.fixture
def data_root(_data_root):
    _data_root.mkdir(parents=True, exist_ok=True)
    return _data_root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def port():
    return free_port()


# ---- tests that need something this machine may lack ------------------------------------------
# A production-path or browser test that cannot run (a missing server, browser, binary or extra)
# FAILS in CI (CI=true), so CI never goes green with it unrun; elsewhere it skips with the reason.
def in_ci() -> bool:
    """CI sets CI=true (GitHub Actions, GitLab CI and most others)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def require_or_skip(reason: str):
    """This test cannot run here: fail with ``reason`` in CI, else skip with it."""
    if in_ci():
        pytest.fail(f"CI=true and this test cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


def try_import(module: str, hint: str):
    """(module, None), or (None, why it cannot be imported and what to do) for ``needs``."""
    try:
        return importlib.import_module(module), None
    except ImportError as exc:
        return None, f"cannot import {module} ({exc}): {hint}"


def needs(missing: str | None) -> pytest.MarkDecorator:
    """Mark a test (or a module, in ``pytestmark``): ``missing`` says what this machine lacks
    and how to get it, None when nothing is missing. Applied by :func:`pytest_runtest_setup`."""
    return pytest.mark.needs(missing)


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "needs(missing): what this machine lacks, None when nothing; skips, FAILS under CI=true (conftest.needs)",
    )


def pytest_runtest_setup(item):
    """Before any fixture starts: a ``needs`` mark naming something missing skips (fails in CI)."""
    for mark in item.iter_markers("needs"):
        if mark.args and mark.args[0]:
            require_or_skip(mark.args[0])
