import os
import socket

import pytest

# Partitions are fixed when sdr_assets.definitions is first imported: the whole test session
# uses 1-minute partitions so that short captures fill closed partitions quickly.
os.environ["SDR_ASSETS_PARTITION_MINUTES"] = "1"


@pytest.fixture(autouse=True)
def _data_root(tmp_path, monkeypatch):
    """Every test writes under its own data root, never ./var."""
    root = tmp_path / "sdr_home"
    monkeypatch.setenv("SDR_ASSETS_HOME", str(root))
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
