"""The snapshot replica against a real S3 server (SeaweedFS on loopback): upload + restore,
the server down during a snapshot, wrong keys, a corrupt object, both retentions."""

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sdr_assets.errors import ConfigError, ReplicaError
from sdr_assets.records import Chunk, SourceInfo
from sdr_assets.replica.local import prune_local, receipt, sync_snapshots, waiting
from sdr_assets.replica.s3 import ReplicaConfig, S3Replica, file_digests
from sdr_assets.store.hot import HotWriter
from sdr_assets.store.snapshot import snapshot_file_name, take_snapshot
from sdr_assets_tests.conftest import needs
from sdr_assets_tests.helpers import check_results, materialize, meta
from sdr_assets_tests.s3_support import BUCKET, SECRET_KEY, SeaweedServer, weed_missing

BIN = Path(sys.executable).parent
FS_HZ = 100_000.0
INFO = SourceInfo(uri="synthetic://test", kind="synthetic", center_freq_hz=433.92e6, sample_rate_hz=FS_HZ)
CHUNK_BYTES = 200_000  # 1 s of samples at 100 kS/s
PREFIX = "site-a"

s3 = needs(weed_missing())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if weed_missing():
        pytest.skip(weed_missing())  # the tests' own `needs` mark fails this in CI
    srv = SeaweedServer(tmp_path_factory.mktemp("seaweed"))
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def replica_env(server, monkeypatch, tmp_path):
    """This test's own prefix (objects of other tests never count) in the environment."""
    url = f"s3://{BUCKET}/{PREFIX}-{tmp_path.name}"
    env = server.env(SDR_ASSETS_REPLICA_URL=url)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


def _minutes_ago(n: int) -> datetime:
    return (datetime.now(UTC) - timedelta(minutes=n)).replace(second=0, microsecond=0)


def _key(t: datetime) -> str:
    return t.strftime("%Y-%m-%d-%H:%M")


def fill_hot(hot: Path, t0: datetime, minutes: int) -> None:
    """A hot DB holding ``minutes`` whole minutes of random cu8 from ``t0`` (past partitions)."""
    t_ns = int(t0.timestamp() * 1e9)
    end_ns = t_ns + minutes * 60 * 10**9
    with HotWriter(hot, cap_bytes=None) as w:
        cid = w.begin_capture(INFO, t_ns)
        while t_ns < end_ns:
            batch = []
            for _ in range(8):
                batch.append(Chunk(t_ns, INFO.center_freq_hz, FS_HZ, None, os.urandom(CHUNK_BYTES)))
                t_ns = batch[-1].t_end_ns
            w.write_batch(cid, batch)


def _restore(env: dict, key: str, out: Path, **over) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "sdr-assets"), "restore", "--partition", key, "--out", str(out)],
        env={**os.environ, **env, **over},
        capture_output=True,
        text=True,
        timeout=120,
    )


@s3
def test_snapshot_uploads_and_restores_byte_identical(replica_env, data_root, tmp_path):
    from sdr_assets.defs.resources import SdrStore

    t0 = _minutes_ago(30)
    fill_hot(data_root / "hot.db", t0, 1)
    key = _key(t0)
    store = SdrStore(replica_part_mb=5)  # the ~12 MB snapshot goes up in 3 parts
    res = materialize(["hot_snapshot", "snapshot_replica"], key, store=store)
    assert res.success
    m = meta(res, "snapshot_replica")
    local = data_root / "snapshots" / snapshot_file_name(key)
    assert m["url"] == f"{replica_env['SDR_ASSETS_REPLICA_URL']}/default/{local.name}"
    assert m["uploaded"] == 1 and m["waiting"] == 0 and m["error"] == "none"
    assert ("replica_upload", True, "WARN") in check_results(res)
    head = S3Replica(ReplicaConfig.from_env(replica_env)).client.head_object(
        Bucket=BUCKET, Key=m["url"].split(f"{BUCKET}/", 1)[1]
    )
    sha, etag, parts = file_digests(local, 5 * 2**20)
    assert parts > 1 and head["ETag"].strip('"') == etag  # multipart, and the parts are ours
    assert head["Metadata"]["sha256"] == sha == m["sha256"]
    assert receipt(local)["url"] == m["url"]

    out = _restore(replica_env, key, tmp_path / "restored")
    assert out.returncode == 0, out.stderr
    assert "sha256 ok" in out.stdout and "integrity_check ok" in out.stdout
    restored = tmp_path / "restored" / local.name
    assert restored.read_bytes() == local.read_bytes()
    again = _restore(replica_env, key, tmp_path / "restored")  # never replaces a file
    assert again.returncode == 2 and "already exists" in again.stderr


@s3
def test_restored_snapshot_feeds_the_analysis_on_a_new_machine(replica_env, data_root, tmp_path, monkeypatch):
    from sdr_assets.defs.resources import SdrStore

    t0 = _minutes_ago(40)
    fill_hot(data_root / "hot.db", t0, 1)
    key = _key(t0)
    assert materialize(["hot_snapshot", "snapshot_replica"], key).success
    new_root = tmp_path / "new_machine"  # the old disk is gone: nothing but the replica
    out = _restore(replica_env, key, new_root / "snapshots")
    assert out.returncode == 0, out.stderr
    monkeypatch.setenv("SDR_ASSETS_HOME", str(new_root))
    res = materialize(["iq_window"], key, store=SdrStore())
    assert res.success
    m = meta(res, "iq_window")
    assert m["samples"] == pytest.approx(60 * FS_HZ, rel=0.02) and m["gaps"] == 0


@s3
def test_replica_down_keeps_the_local_snapshot_and_the_next_run_catches_up(server, replica_env, data_root):
    t0 = _minutes_ago(50)
    fill_hot(data_root / "hot.db", t0, 2)
    first, second = _key(t0), _key(t0 + timedelta(minutes=1))
    server.stop()
    try:
        started = time.monotonic()
        res = materialize(["hot_snapshot", "snapshot_replica"], first, quiet=True)
        assert time.monotonic() - started < 30  # an unreachable replica fails fast
        assert res.success  # the run and the local snapshot are fine ...
        assert ("snapshot_integrity", True, "ERROR") in check_results(res)
        assert ("replica_upload", False, "WARN") in check_results(res)  # ... the check WARNs
        m = meta(res, "snapshot_replica")
        assert m["uploaded"] == 0 and m["waiting"] == 1 and "cannot be reached" in m["error"]
        assert meta(res, "hot_snapshot")["integrity"] == "ok"
    finally:
        server.start()
    res = materialize(["hot_snapshot", "snapshot_replica"], second, quiet=True)
    m = meta(res, "snapshot_replica")
    assert m["uploaded"] == 2 and m["caught_up"] == 1 and m["waiting"] == 0
    assert ("replica_upload", True, "WARN") in check_results(res)
    replica = S3Replica(ReplicaConfig.from_env(replica_env))
    assert [r.name for r in replica.list_snapshots("default")] == [
        snapshot_file_name(first),
        snapshot_file_name(second),
    ]
    assert waiting(data_root / "snapshots") == []


@s3
def test_wrong_credentials_give_one_clear_line(server, replica_env, data_root, tmp_path):
    fill_hot(data_root / "hot.db", _minutes_ago(60), 1)
    snap = take_snapshot(data_root / "hot.db", tmp_path / "snaps" / "hot-x.db", nice=0).path
    bad = ReplicaConfig.from_env({**replica_env, "AWS_SECRET_ACCESS_KEY": "not-" + SECRET_KEY})
    with pytest.raises(ReplicaError, match="refused the credentials") as info:
        S3Replica(bad).upload(snap, "default")
    assert "\n" not in str(info.value) and "AWS_SECRET_ACCESS_KEY" in str(info.value)
    res = sync_snapshots(S3Replica(bad), snap.parent, "default")  # the asset's path: kept, waiting
    assert "refused the credentials" in res.error and res.waiting == [snap]

    out = _restore(replica_env, "2026-01-01-00:00", tmp_path / "r", AWS_SECRET_ACCESS_KEY="nope")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "refused the credentials" in lines[0]


@s3
def test_corrupt_object_is_refused_and_nothing_written(server, replica_env, data_root, tmp_path):
    t0 = _minutes_ago(70)
    fill_hot(data_root / "hot.db", t0, 1)
    key = _key(t0)
    assert meta(materialize(["hot_snapshot", "snapshot_replica"], key), "snapshot_replica")["uploaded"] == 1
    replica = S3Replica(ReplicaConfig.from_env(replica_env))
    obj_key = replica.object_key("default", snapshot_file_name(key))
    obj = replica.client.get_object(Bucket=BUCKET, Key=obj_key)
    body = bytearray(obj["Body"].read())
    body[len(body) // 2] ^= 0xFF  # one flipped bit-pattern in a chunk's payload
    replica.client.put_object(Bucket=BUCKET, Key=obj_key, Body=bytes(body), Metadata=obj["Metadata"])

    out = _restore(replica_env, key, tmp_path / "r")
    assert out.returncode == 2
    assert "is corrupt: its sha256" in out.stderr and "not restored" in out.stderr
    assert not (tmp_path / "r").exists() or list((tmp_path / "r").iterdir()) == []

    missing = _restore(replica_env, _key(t0 - timedelta(days=1)), tmp_path / "r")
    assert missing.returncode == 2 and "no replica of" in missing.stderr and "holds 1 snapshot" in missing.stderr


@s3
def test_replica_retention_by_count_and_age_is_its_own(server, replica_env, tmp_path):
    folder = tmp_path / "snaps"
    hot = tmp_path / "hot.db"
    fill_hot(hot, _minutes_ago(90), 1)
    config = ReplicaConfig.from_env(replica_env, keep_count=2, keep_age_s=86400.0)
    replica = S3Replica(config)
    for i in range(3):
        take_snapshot(hot, folder / snapshot_file_name(_key(_minutes_ago(90 - i))), nice=0)
    res = sync_snapshots(replica, folder, "default")
    assert len(res.uploaded) == 3 and res.error is None
    names = [r.name for r in replica.list_snapshots("default")]
    assert len(names) == 2 and res.pruned_remote == [
        replica.object_key("default", snapshot_file_name(_key(_minutes_ago(90))))
    ]  # the oldest partition went; the local files all stay
    assert len(list(folder.glob("*.db"))) == 3
    # two days on, both are older than a day: the age limit removes them
    gone = replica.prune("default", now_ns=time.time_ns() + 2 * 86400 * 10**9)
    assert len(gone) == 2 and replica.list_snapshots("default") == []


def test_local_pruning_holds_snapshots_the_replica_lacks(tmp_path):
    from sdr_assets.replica.local import _write_receipt
    from sdr_assets.replica.s3 import UploadResult

    folder = tmp_path / "snaps"
    folder.mkdir()
    files = []
    for i in range(6):  # oldest first, distinct mtimes
        p = folder / f"hot-2026-01-01-000{i}.db"
        p.write_bytes(b"x" * (i + 1))
        os.utime(p, ns=(10**18 + i * 10**9, 10**18 + i * 10**9))
        files.append(p)
    for p in (files[0], files[2]):  # these two are in the replica
        _write_receipt(p, UploadResult("s3://b/k", "k", p.stat().st_size, "s", "e", 1, 0.1), p.stat().st_mtime_ns)
    pr = prune_local(folder, keep=2, max_waiting=1)
    assert pr.removed == [files[2], files[0]]
    assert pr.held_waiting == [files[3]] and pr.dropped_waiting == [files[1]]  # counted, never silent
    assert sorted(folder.glob("*.db")) == [files[3], files[4], files[5]]
    assert list((folder / ".replica").glob("*.json")) == []  # receipts of removed files went too
    files[3].write_bytes(b"changed")  # a re-materialised snapshot is waiting again
    assert files[3] in waiting(folder)


def test_replica_settings_are_checked(monkeypatch):
    assert ReplicaConfig.from_env({}) is None  # off by default
    cfg = ReplicaConfig.from_env(
        {
            "SDR_ASSETS_REPLICA_URL": "s3://sdr-backups/site-a/",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
            "AWS_REGION": "eu-west-1",
        }
    )
    assert (cfg.bucket, cfg.prefix, cfg.endpoint_url, cfg.region) == (
        "sdr-backups",
        "site-a",
        "http://127.0.0.1:9000",
        "eu-west-1",
    )
    for bad in ("http://x/y", "s3://B/x", "s3://ab", "s3:///x"):
        with pytest.raises(ConfigError, match="replica URL"):
            ReplicaConfig.from_env({"SDR_ASSETS_REPLICA_URL": bad})
    with pytest.raises(ConfigError, match="5 MiB"):
        ReplicaConfig(bucket="abc", part_bytes=2**20)


def test_replica_off_passes_and_prunes_as_before(data_root):
    t0 = _minutes_ago(100)
    fill_hot(data_root / "hot.db", t0, 1)
    res = materialize(["hot_snapshot", "snapshot_replica"], _key(t0))
    assert res.success and meta(res, "snapshot_replica")["replica"] == "off"
    assert ("replica_upload", True, "WARN") in check_results(res)
    assert "snapshots_held_for_replica" not in meta(res, "hot_snapshot")


def test_restore_without_a_replica_says_how_to_set_one(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SDR_ASSETS_REPLICA_URL"}
    out = subprocess.run(
        [str(BIN / "sdr-assets"), "restore", "--partition", "2026-01-01-00:00", "--out", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "SDR_ASSETS_REPLICA_URL" in out.stderr
    bad = subprocess.run(
        [str(BIN / "sdr-assets"), "restore", "--partition", "yesterday", "--out", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "2026-11-23-04:00" in bad.stderr
