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


@pytest.fixture(autouse=True)
def _data_root(tmp_path, monkeypatch):
    """Every test writes under its own data root, never ./var."""
    root = tmp_path / "sdr_home"
    monkeypatch.setenv("SDR_ASSETS_HOME", str(root))
    monkeypatch.setenv("SDR_ASSETS_SENSOR", "default")  # `--sensor` sets it in-process: reset
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
