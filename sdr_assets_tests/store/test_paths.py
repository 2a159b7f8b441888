import pytest

from sdr_assets.errors import ConfigError, SdrAssetsError
from sdr_assets.paths import DataPaths, data_root


def test_default_is_var_in_working_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("SDR_ASSETS_HOME")
    monkeypatch.chdir(tmp_path)
    assert data_root() == tmp_path / "var"
    assert (tmp_path / "var").is_dir()


def test_env_sets_root_and_layout(tmp_path, monkeypatch):
    monkeypatch.setenv("SDR_ASSETS_HOME", str(tmp_path / "x" / "y"))
    p = DataPaths.from_env()
    assert p.root == tmp_path / "x" / "y" and p.root.is_dir()
    assert p.hot_db == p.root / "hot.db"
    assert p.analysis_db == p.root / "analysis.db"
    assert p.dagster_home == p.root / "dagster"


def test_relative_env_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SDR_ASSETS_HOME", "rel/root")
    assert data_root() == tmp_path / "rel" / "root"


def test_root_that_is_a_file_is_refused(tmp_path, monkeypatch):
    f = tmp_path / "afile"
    f.write_text("not a folder")
    monkeypatch.setenv("SDR_ASSETS_HOME", str(f))
    with pytest.raises(ConfigError, match="points at a file") as info:
        data_root()
    assert isinstance(info.value, SdrAssetsError)
    assert f.read_text() == "not a folder"  # nothing stored is touched
