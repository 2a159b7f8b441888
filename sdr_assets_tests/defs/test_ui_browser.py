"""The Dagster UI as a person uses it, in a real browser (Debian's chromium, driven by Playwright).

`dagster dev` runs on captured synthetic data (two past 1-minute partitions), the hot-DB sensor
stopped and SDR_ASSETS_EXECUTOR=in_process (light on two cores). The test opens
the `analysis` asset graph, checks the assets and their lineage edges, launches one
partition's materialisation and a two-partition backfill from the Materialize dialog, and
waits (GraphQL) until both succeed. Screenshots: test-artifacts/asset_graph*.png (git-ignored)
and the same files under the test's tmp_path.
"""

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sdr_assets_tests.conftest import needs, try_import

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"
LOCATION = "sdr_assets.definitions"
SELECTED = ("hot_snapshot", "iq_window", "spectrograms")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
UI_TIMEOUT_MS = 90_000  # two shared cores: the graph's first render can be slow
RUN_TIMEOUT_S = 240


def pkey(time_key: str) -> str:
    """The default sensor's (sensor x time) partition key."""
    return f"default|{time_key}"


sync_api, NO_PLAYWRIGHT = try_import("playwright.sync_api", "playwright is in the dev extra: pip install -e '.[dev]'")
NO_CHROMIUM = (
    None
    if Path(CHROMIUM).exists()
    else (
        f"{CHROMIUM} is missing: `make test-deps` installs Debian's chromium (as root), or run `apt-get install chromium`"
    )
)
pytestmark = [pytest.mark.slow, needs(NO_PLAYWRIGHT), needs(NO_CHROMIUM)]


def _key(t: datetime) -> str:
    return t.strftime("%Y-%m-%d-%H:%M")


def _gql(base: str, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(base + "/graphql", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        out = json.loads(r.read())
    assert not out.get("errors"), out["errors"]
    return out["data"]


def _wait_up(base: str, proc: subprocess.Popen, log: Path, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"dagster dev exited: {log.read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(base + "/server_info", timeout=2):
                return
        except OSError:
            time.sleep(1.0)
    raise AssertionError(f"dagster dev did not answer in {timeout_s:.0f} s: {log.read_text()[-3000:]}")


@pytest.fixture
def partitions(data_root):
    """Synthetic samples captured (unpaced) into two closed 1-minute partitions."""
    start = (datetime.now(UTC) - timedelta(minutes=20)).replace(second=0, microsecond=0)
    uri = f"synthetic://?seed=11&rate=250000&start={start:%Y-%m-%dT%H:%M:%SZ}&duration_s=150"
    out = subprocess.run(
        [str(BIN / "sdr-assets"), "capture", "--source", uri, "--no-realtime", "--partition-minutes", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return _key(start), _key(start + timedelta(minutes=1))


@pytest.fixture
def dagster_ui(partitions, data_root, tmp_path, port):
    """`dagster dev` on a free port, in its own process group; stopped with SIGINT to the group."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    # One process per run (docs/production.md: SDR_ASSETS_EXECUTOR) keeps three concurrent runs
    # light on two shared cores; the default executor is exercised by test_defs_analysis.
    env = dict(
        os.environ,
        DAGSTER_HOME=str(home),
        SDR_ASSETS_HOME=str(data_root),
        SDR_ASSETS_PARTITION_MINUTES="1",
        SDR_ASSETS_EXECUTOR="in_process",
        PYTHONUNBUFFERED="1",
    )
    # The hot-DB sensor would request a run of its own at start-up: stopped first (as a user
    # does from Automation), so the runs here are the ones this test launches.
    out = subprocess.run(
        [str(BIN / "dagster"), "sensor", "stop", "hot_db_sensor", "-w", str(REPO / "workspace.yaml")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0 and "Stopped sensor hot_db_sensor" in out.stdout, out.stdout + out.stderr
    # ... so the default radio sensor is registered as a partition by the CLI instead.
    out = subprocess.run(
        [str(BIN / "sdr-assets"), "sensors", "sync"], cwd=REPO, env=env, capture_output=True, text=True, timeout=180
    )
    assert out.returncode == 0 and "default" in out.stdout, out.stdout + out.stderr
    log = tmp_path / "dagster_dev.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "dagster"), "dev", "-w", str(REPO / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_up(base, proc, log)
        yield base
    finally:
        try:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            pass
        try:  # whatever is left in the group (webserver, daemon, code servers, runs)
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


# Node boxes (foreignObject) and edges (paths with an arrow) in the graph's SVG coordinates.
_GRAPH_JS = """() => {
  const nodes = [];
  for (const fo of document.querySelectorAll('foreignObject')) {
    const named = fo.querySelector('[data-tooltip]');
    if (!named) continue;
    const a = (k) => parseFloat(fo.getAttribute(k));
    nodes.push({name: named.getAttribute('data-tooltip'), x: a('x'), y: a('y'),
                w: a('width'), h: a('height')});
  }
  const edges = [];
  for (const p of document.querySelectorAll('svg path[marker-end]')) {
    const n = p.getTotalLength(), s = p.getPointAtLength(0), e = p.getPointAtLength(n);
    edges.push([s.x, s.y, e.x, e.y]);
  }
  return {nodes, edges};
}"""


def _named_edges(graph: dict) -> set[tuple[str, str]]:
    """An edge leaves a node's right side and ends (arrow head) just left of another node."""

    def at(x, y, side):
        for n in graph["nodes"]:
            inside_y = n["y"] <= y <= n["y"] + n["h"]
            if side == "out" and inside_y and abs(n["x"] + n["w"] - x) <= 3:
                return n["name"]
            if side == "in" and inside_y and 0 <= n["x"] - x <= 15:
                return n["name"]
        return None

    return {(at(sx, sy, "out"), at(ex, ey, "in")) for sx, sy, ex, ey in graph["edges"]}


def _open_graph(page, base: str, selection: tuple[str, ...] = ()) -> None:
    url = f"{base}/locations/{LOCATION}/asset-groups/analysis"
    page.goto(url)
    page.locator('[data-tooltip="hot_snapshot"]').first.wait_for(timeout=UI_TIMEOUT_MS)
    for i, name in enumerate(selection):  # click the first, shift-click the rest
        page.locator(f'[data-tooltip="{name}"]').first.click(modifiers=["Shift"] if i else [])
        page.wait_for_url(re.compile(re.escape(name)))  # the selection is in the URL


def _launch(page, partitions_text: str, n_partitions: int, button: str) -> str:
    """Materialize selected -> type the partitions -> launch; returns the toast's link."""
    page.get_by_role("button", name=re.compile(rf"Materialize selected \({len(SELECTED)}\)")).click()
    dialog = page.get_by_role("dialog")
    sync_api.expect(dialog.get_by_text(f"Launch runs to materialize {len(SELECTED)} assets")).to_be_visible()
    # one partition selector per dimension: sensor (a drop-down, 'All' = every registered
    # sensor, here the default one), then time (a text box taking keys and [a...b] ranges)
    # The sensor list loads after the dialog opens: 'All' clicked before it has loaded selects
    # nothing, so click until the default sensor shows as selected.
    for _ in range(10):
        dialog.get_by_role("button", name="All", exact=True).first.click()
        try:
            sync_api.expect(dialog.get_by_text("default", exact=True).first).to_be_visible(timeout=3000)
            break
        except AssertionError:
            continue
    box = dialog.get_by_role("textbox").first
    box.fill(partitions_text)
    box.press("Enter")
    word = "partition" if n_partitions == 1 else "partitions"
    sync_api.expect(dialog.get_by_text(f"{n_partitions} {word}", exact=True)).to_be_visible()
    dialog.get_by_role("button", name=button, exact=True).click()
    prefix = "/runs/b/" if button == "Launch backfill" else "/runs/"
    link = page.locator(f'a[href^="{prefix}"]').filter(has_text=re.compile(r"^View$")).last
    link.wait_for(timeout=UI_TIMEOUT_MS)
    return link.get_attribute("href")


_RUN_Q = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status tags { key value } } } }"
_BACKFILL_Q = """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
  ... on PartitionBackfill { status numPartitions } } }"""
_RUNS_Q = """query($id: String!) { runsOrError(filter: {tags: [{key: "dagster/backfill", value: $id}]}) {
  ... on Runs { results { status tags { key value } } } } }"""

_ALL_RUNS_Q = "{ runsOrError { ... on Runs { results { runId jobName tags { key value } } } } }"


def _wait_run(base: str, run_id: str) -> dict:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        run = _gql(base, _RUN_Q, {"id": run_id})["runOrError"]
        if run.get("status") in ("SUCCESS", "FAILURE", "CANCELED"):
            return run
        time.sleep(2)
    raise AssertionError(f"run {run_id} did not finish in {RUN_TIMEOUT_S} s")


def _wait_backfill(base: str, backfill_id: str) -> dict:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        bf = _gql(base, _BACKFILL_Q, {"id": backfill_id})["partitionBackfillOrError"]
        if bf.get("status") not in ("REQUESTED", None):
            return bf
        time.sleep(2)
    raise AssertionError(f"backfill {backfill_id} did not finish in {RUN_TIMEOUT_S} s")


def _screenshot(page, tmp_path: Path, name: str) -> Path:
    # the nodes' live data (latest event, partitions) has loaded
    sync_api.expect(page.get_by_text(re.compile(r"^Loading"))).to_have_count(0)
    shot = tmp_path / name
    page.screenshot(path=str(shot))
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(shot, ARTIFACTS / name)
    return shot


def test_asset_graph_materialise_and_backfill_from_the_ui(dagster_ui, partitions, data_root, tmp_path):
    base = dagster_ui
    k0, k1 = partitions
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            ctx = browser.new_context(viewport={"width": 1600, "height": 1000})
            ctx.set_default_timeout(UI_TIMEOUT_MS)
            # The "Join the Dagster community" dialog on a first visit, answered beforehand.
            ctx.add_init_script("window.localStorage.setItem('communityNux', '\"1\"')")
            page = ctx.new_page()

            # The asset graph: the assets and their lineage.
            _open_graph(page, base)
            for name in SELECTED + ("training_labels",):
                sync_api.expect(page.locator(f'[data-tooltip="{name}"]').first).to_be_visible()
            edges = _named_edges(page.evaluate(_GRAPH_JS))
            assert {
                ("hot_snapshot", "iq_window"),
                ("iq_window", "spectrograms"),
                ("spectrograms", "training_labels"),
            } <= edges, edges
            shot = _screenshot(page, tmp_path, "asset_graph.png")
            assert shot.stat().st_size > 10_000

            # One partition, then a backfill over both, launched from the Materialize dialog.
            _open_graph(page, base, SELECTED)
            run_href = _launch(page, k0, 1, "Launch 1 run")
            backfill_href = _launch(page, f"[{k0}...{k1}]", 2, "Launch backfill")
            run_id = run_href.rsplit("/", 1)[-1]
            backfill_id = backfill_href.rsplit("/", 1)[-1]

            run = _wait_run(base, run_id)
            tags = {t["key"]: t["value"] for t in run["tags"]}
            assert run["status"] == "SUCCESS", (run_id, run)
            assert tags.get("dagster/partition") == pkey(k0)
            assert tags.get("dagster/partition/sensor") == "default"
            bf = _wait_backfill(base, backfill_id)
            assert bf["status"] == "COMPLETED_SUCCESS" and bf["numPartitions"] == 2, bf
            runs = _gql(base, _RUNS_Q, {"id": backfill_id})["runsOrError"]["results"]
            done = {next(t["value"] for t in r["tags"] if t["key"] == "dagster/partition"): r["status"] for r in runs}
            assert done == {pkey(k0): "SUCCESS", pkey(k1): "SUCCESS"}, done
            everything = _gql(base, _ALL_RUNS_Q)["runsOrError"]["results"]
            assert len(everything) == 3, everything  # the sensor stayed stopped

            # The UI shows it too: the run page says Success; the graph after the runs.
            page.goto(f"{base}/runs/{run_id}")
            sync_api.expect(page.get_by_text("Success", exact=True).first).to_be_visible()
            _open_graph(page, base)
            _screenshot(page, tmp_path, "asset_graph_materialized.png")
        except Exception:
            _screenshot(page, tmp_path, "asset_graph_failure.png")  # what the browser showed
            raise
        finally:
            browser.close()

    # The product's own data: both windows loaded, their spectrograms rendered.
    conn = sqlite3.connect(data_root / "analysis.db")
    try:
        held = dict(conn.execute("SELECT partition_key, n_samples FROM partitions").fetchall())
        frames = dict(conn.execute("SELECT partition_key, count(*) FROM frames GROUP BY 1").fetchall())
    finally:
        conn.close()
    assert held.get(pkey(k0), 0) >= 250_000 * 59 and held.get(pkey(k1), 0) >= 250_000 * 59, held
    assert frames.get(pkey(k0), 0) > 0 and frames.get(pkey(k1), 0) > 0, frames
