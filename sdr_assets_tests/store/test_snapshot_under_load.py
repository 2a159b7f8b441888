"""hot_snapshot while the capture writes at 3.2 MS/s: nothing lost, a consistent prefix."""

import hashlib
import re
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sdr_assets_tests.helpers import materialize

BIN = Path(sys.executable).parent


def _chunk_hashes(path: Path, upto_seq: int | None = None) -> dict[int, str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    q = "SELECT seq, iq FROM chunks" + ("" if upto_seq is None else f" WHERE seq <= {upto_seq}")
    out = {seq: hashlib.sha1(iq).hexdigest() for seq, iq in conn.execute(q)}
    conn.close()
    return out


def test_snapshot_during_3_2_msps_capture_is_a_consistent_prefix(data_root, monkeypatch):

    monkeypatch.setenv("SDR_ASSETS_PARTITION_MINUTES", "1")
    hot = data_root / "hot.db"
    cap = subprocess.Popen(
        [
            str(BIN / "sdr-assets"),
            "capture",
            "--source",
            "synthetic://?seed=11&rate=3200000",
            "--partition-minutes",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (hot.exists() and hot.stat().st_size > 30e6):
            time.sleep(0.2)
        assert cap.poll() is None, cap.stdout.read()
        key = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%d-%H:%M")
        snaps = []
        for i in range(2):  # the whole hot DB is copied, whatever the partition
            res = materialize(["hot_snapshot"], key)
            assert res.success
            meta = res.asset_materializations_for_node("hot_snapshot")[0].metadata
            assert meta["integrity"].value == "ok"
            assert [e.passed for e in res.get_asset_check_evaluations()] == [True]
            snaps.append((Path(meta["path"].value), meta["last_seq"].value))
            copy = snaps[-1][0].with_suffix(f".{i}.keep")  # the next materialisation overwrites
            copy.write_bytes(snaps[-1][0].read_bytes())
            snaps[-1] = (copy, snaps[-1][1])
            time.sleep(1.0)
        assert cap.poll() is None, "the capture ended before the snapshots were taken"
        time.sleep(1.0)  # it keeps writing after the last snapshot
        cap.send_signal(signal.SIGINT)  # flushes the ring and commits, then exits 0
        out, _ = cap.communicate(timeout=60)
    finally:
        if cap.poll() is None:
            cap.kill()
    assert cap.returncode == 0, out
    m = re.search(r"received (\d+) samples, stored (\d+) .*lost (\d+)", out)
    assert m, out
    received, stored, lost = map(int, m.groups())
    assert lost == 0 and received == stored and received >= 3_200_000 * 3
    conn = sqlite3.connect(hot)
    assert conn.execute("SELECT count(*) FROM gaps").fetchone()[0] == 0
    assert conn.execute("SELECT sum(n_samples) FROM chunks").fetchone()[0] == stored
    conn.close()
    final = _chunk_hashes(hot)
    for path, last_seq in snaps:
        snap = _chunk_hashes(path)
        assert 0 < last_seq < max(final)  # taken mid-capture
        assert sorted(snap) == list(range(min(final), last_seq + 1))  # a prefix, no holes
        assert all(final[s] == h for s, h in snap.items())  # byte-identical to what committed
    assert snaps[0][1] < snaps[1][1]
