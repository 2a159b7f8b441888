"""The production path (docs/production.md): the Dagster instance on a real PostgreSQL server
(deploy/dagster.postgres.yaml) and, with SDR_ASSETS_EXECUTOR=celery, steps run by a real
`dagster-celery` worker over a real Redis broker (deploy/celery.yaml).

The servers are Debian's (`make test-deps` installs postgresql and redis-server where they are
missing), started here on free localhost ports in temporary folders and stopped afterwards.
"""

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sdr_assets_tests.conftest import free_port, needs, require_or_skip, try_import

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SELECT = "hot_snapshot,iq_window,spectrograms"
RATE_HZ = 250_000
IS_ROOT = os.geteuid() == 0

psycopg2, NO_PSYCOPG2 = try_import("psycopg2", "dagster-postgres (dev extra) brings it: pip install -e '.[dev]'")
_, NO_DAGSTER_POSTGRES = try_import("dagster_postgres", "pip install -e '.[dev]' (dagster-postgres)")
pytestmark = [pytest.mark.slow, needs(NO_PSYCOPG2), needs(NO_DAGSTER_POSTGRES)]  # 20-60 s each on two cores


def _missing(what: str, install: str):
    """Skip (fail in CI), saying what to install (`make test-deps` installs it as root)."""
    require_or_skip(f"{what} is missing: apt-get install {install} (`make test-deps` does it as root)")


def _pg_bin() -> Path:
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0
    )
    if not found:
        _missing("PostgreSQL (initdb)", "postgresql")
    return found[-1].parent


@pytest.fixture(scope="module")
def postgres():
    """A throw-away PostgreSQL cluster on 127.0.0.1 (as the postgres user when run as root)."""
    pg_bin = _pg_bin()
    as_user = {}
    if IS_ROOT:  # initdb refuses to run as root
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("running as root but there is no `postgres` user; reinstall Debian's postgresql")
        as_user = {"user": "postgres", "group": "postgres"}
    folder = Path(tempfile.mkdtemp(prefix="sdr-pg-"))  # not under pytest's 0700 tmp: postgres reads it
    if IS_ROOT:
        shutil.chown(folder, "postgres", "postgres")
    port = free_port()
    data, log = folder / "data", folder / "server.log"

    def pg(*argv):
        out = subprocess.run([str(pg_bin / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=120, **as_user)
        assert out.returncode == 0, f"{argv[0]}: {out.stdout}{out.stderr}"

    pg("initdb", "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
    pg(
        "pg_ctl",
        "-D",
        str(data),
        "-l",
        str(log),
        "-w",
        "-t",
        "60",
        "-o",
        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off",
        "start",
    )
    try:
        yield {"host": "127.0.0.1", "port": port, "user": "postgres"}
    finally:
        pg("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def _connect(pg: dict, dbname: str):
    return psycopg2.connect(host=pg["host"], port=pg["port"], user=pg["user"], dbname=dbname)


@pytest.fixture
def pg_instance(postgres, tmp_path, data_root, request):
    """A fresh database, a DAGSTER_HOME with deploy/dagster.postgres.yaml, and the env for both."""
    db = "dagster_" + request.node.name.lower().replace("test_", "")[:40]
    conn = _connect(postgres, "postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{db}"')
        cur.execute(f'CREATE DATABASE "{db}"')
    conn.close()
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(REPO / "deploy" / "dagster.postgres.yaml", home / "dagster.yaml")
    env = dict(
        os.environ,
        DAGSTER_HOME=str(home),
        SDR_ASSETS_HOME=str(data_root),
        SDR_ASSETS_PARTITION_MINUTES="1",
        DAGSTER_PG_HOST=postgres["host"],
        DAGSTER_PG_PORT=str(postgres["port"]),
        DAGSTER_PG_USER=postgres["user"],
        DAGSTER_PG_PASSWORD="unused-with-trust-auth",
        DAGSTER_PG_DB=db,
        PYTHONUNBUFFERED="1",
    )
    env.pop("SDR_ASSETS_EXECUTOR", None)
    return {"env": env, "db": db, "home": home}


def _capture_one_partition(env) -> str:
    start = (datetime.now(UTC) - timedelta(minutes=50)).replace(second=0, microsecond=0)
    uri = f"synthetic://?seed=21&rate={RATE_HZ}&start={start:%Y-%m-%dT%H:%M:%SZ}&duration_s=70"
    out = subprocess.run(
        [str(BIN / "sdr-assets"), "capture", "--source", uri, "--no-realtime", "--partition-minutes", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return "default|" + start.strftime("%Y-%m-%d-%H:%M")  # (sensor x time) partition key


def _materialize(env, key: str) -> subprocess.CompletedProcess:
    """Register the radio sensors as partitions (stored in Postgres), then materialise."""
    sync = subprocess.run(
        [str(BIN / "sdr-assets"), "sensors", "sync"], env=env, capture_output=True, text=True, timeout=120
    )
    assert sync.returncode == 0 and "default" in sync.stdout, sync.stdout + sync.stderr
    return subprocess.run(
        [
            str(BIN / "dagster"),
            "asset",
            "materialize",
            "-m",
            "sdr_assets.definitions",
            "--select",
            SELECT,
            "--partition",
            key,
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )


def _runs_in_postgres(pg: dict, db: str) -> list[tuple]:
    conn = _connect(pg, db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT run_id, status, run_body FROM runs")
            return cur.fetchall()
    finally:
        conn.close()


def _events(pg: dict, db: str, run_id: str, event_type: str) -> list[str]:
    conn = _connect(pg, db)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT event FROM event_logs WHERE run_id = %s AND dagster_event_type = %s ORDER BY id",
                (run_id, event_type),
            )
            return [row[0] for row in cur.fetchall()]
    finally:
        conn.close()


def _materialized_assets(pg: dict, db: str, run_id: str) -> set[str]:
    events = _events(pg, db, run_id, "ASSET_MATERIALIZATION")
    names = set()
    for raw in events:
        data = json.loads(raw)["dagster_event"]["event_specific_data"]["materialization"]
        names.add("/".join(data["asset_key"]["path"]))
    return names


def test_materialise_with_the_instance_on_postgres(postgres, pg_instance, data_root):
    env = pg_instance["env"]
    key = _capture_one_partition(env)
    out = _materialize(env, key)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    runs = _runs_in_postgres(postgres, pg_instance["db"])
    assert len(runs) == 1, runs
    run_id, status, body = runs[0]
    assert status == "SUCCESS"
    assert json.loads(body)["tags"]["dagster/partition"] == key
    assert _materialized_assets(postgres, pg_instance["db"], run_id) == set(SELECT.split(","))
    # nothing went to the embedded SQLite storage
    assert not list(pg_instance["home"].rglob("*.db")), list(pg_instance["home"].rglob("*.db"))
    # and the product's own data is there
    assert any((data_root / "spectrograms").rglob("*.png"))


@pytest.fixture
def redis_url():
    """A throw-away Redis server on 127.0.0.1: the Celery broker and result backend."""
    import redis

    exe = shutil.which("redis-server")
    if exe is None:
        _missing("Redis (redis-server)", "redis-server")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, "redis-server exited at start"
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not answer in 30 s"
                time.sleep(0.2)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _stop_group(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout_s: float = 30) -> None:
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=timeout_s)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


def test_celery_worker_runs_the_steps(postgres, pg_instance, redis_url, tmp_path, data_root):
    env = dict(
        pg_instance["env"],
        SDR_ASSETS_CELERY_BROKER=redis_url,
        SDR_ASSETS_CELERY_BACKEND=redis_url,
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )  # the worker runs `celery`
    key = _capture_one_partition(env)
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            [
                str(BIN / "dagster-celery"),
                "worker",
                "start",
                "-A",
                "dagster_celery.app",
                "-y",
                str(REPO / "deploy" / "celery.yaml"),
                "-n",
                "sdr-test",
                "--",
                "--concurrency=1",
            ],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while b" ready." not in log.read_bytes():
            assert worker.poll() is None, f"the worker exited: {log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"the worker is not ready: {log.read_text()[-3000:]}"
            time.sleep(0.5)
        out = _materialize(dict(env, SDR_ASSETS_EXECUTOR="celery"), key)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:] + log.read_text()[-3000:]
    finally:
        _stop_group(worker)
    runs = _runs_in_postgres(postgres, pg_instance["db"])
    assert [r[1] for r in runs] == ["SUCCESS"], runs
    run_id = runs[0][0]
    delegated = [e for e in _events(postgres, pg_instance["db"], run_id, "ENGINE_EVENT") if "in celery worker" in e]
    assert len(delegated) == 3, delegated  # each step went to the worker
    assert "sdr-test@" in delegated[0]
    assert _materialized_assets(postgres, pg_instance["db"], run_id) == set(SELECT.split(","))
    assert any((data_root / "spectrograms").rglob("*.png"))
