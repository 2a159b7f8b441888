"""The held-back contest on a real captured window: references from independent labels only,
detectors scored by time-frequency matching as `sdr-assets evaluate` does, the energy detector
defending, and a window with only energy auto-labels left out."""

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sdr_assets.ml.contest import ENERGY_NAME, f1_score, held_back, label_boxes, score_detector
from sdr_assets.ml.infer import Detection
from sdr_assets.ml.labels import BoxGeometry, yolo_to_pixels
from sdr_assets.store import registry
from sdr_assets.store.labels import LabelRow
from sdr_assets.store.window import AnalysisDB
from sdr_assets_tests.helpers import materialize, pkey

BIN = Path(sys.executable).parent
RATE_HZ = 250_000
CHAIN = ["hot_snapshot", "iq_window", "spectrograms", "training_labels"]


def _capture(uri: str) -> None:
    env = dict(os.environ, SDR_ASSETS_PARTITION_MINUTES="1")
    out = subprocess.run(
        [str(BIN / "sdr-assets"), "capture", "--source", uri, "--no-realtime", "--partition-minutes", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr


@pytest.fixture
def window(data_root):
    """One captured minute with five kinds of annotated emission, rendered and labelled."""
    start = (datetime.now(UTC) - timedelta(minutes=200)).replace(second=0, microsecond=0)
    _capture(
        f"synthetic://?seed=4&rate={RATE_HZ}&emissions_per_s=2&snr_db_min=15&snr_db_max=30"
        f"&start={(start + timedelta(seconds=2)):%Y-%m-%dT%H:%M:%SZ}&duration_s=16"
    )
    key = pkey(start.strftime("%Y-%m-%d-%H:%M"))
    res = materialize(CHAIN, key)
    assert res.success
    return key


class Oracle:
    """A 'model' that sees each frame's own independent labels: what a perfect detector boxes."""

    def __init__(self, db: AnalysisDB, key: str):
        self.by_path = {}
        labels = db.labels(key, include_auto=False)
        for f in db.frames(key):
            g = BoxGeometry.of(f)
            self.by_path[f.path] = [
                Detection(
                    lab.class_name,
                    0.9,
                    *yolo_to_pixels(lab.x_center, lab.y_center, lab.width, lab.height, g.width_px, g.height_px),
                )
                for lab in labels
                if lab.frame_id == f.frame_id
            ]
        self.root = None

    def __call__(self, images):
        return [self.by_path[str(Path(p).relative_to(self.root))] for p in images]


def test_an_oracle_beats_the_energy_detector_and_a_blind_model_loses(window, data_root):
    with AnalysisDB(data_root / "analysis.db") as db:
        frames = db.frames(window)
        assert len(frames) >= 8 and db.label_sources(window).keys() == {"annotation"}
        val = [f.frame_id for f in frames[-4:]]  # the latest frames, as build_dataset holds back
        held = held_back(db, [window], val)
        assert held.n_frames == 4 and held.n_left_out == 0 and held.n_references >= 3
        (w,) = held.windows
        assert w.t_start_ns == frames[-4].t_start_ns and w.min_duration_s > 0 and w.min_bandwidth_hz > 0
        # references: the annotations that lie in the span, back in time and Hz (widened to the
        # labels' minimum box: compare centres), one per emission even where a frame edge cut it
        anns = [a for a in db.annotations(window) if w.inside(a.box.t_start_ns, a.box.t_end_ns)]
        assert len(w.references) == len(anns)
        for a, r in zip(sorted(anns, key=lambda a: a.box.t_start_ns), sorted(w.references, key=lambda r: r.t_start_s)):
            mid_s = ((a.box.t_start_ns + a.box.t_end_ns) / 2 - w.t_start_ns) / 1e9
            assert abs((r.t_start_s + r.t_end_s) / 2 - mid_s) < max(w.min_duration_s, 0.01)

        oracle = Oracle(db, window)
        oracle.root = data_root
        best = score_detector(db, data_root, held, "challenger", oracle, "oracle")
        blind = score_detector(db, data_root, held, "current model", lambda images: [[] for _ in images], "blind")
        energy = score_detector(db, data_root, held, ENERGY_NAME)
        # frames thinned by max_train_frames: only what lies in a held-back frame counts
        picked = frames[-7::2]
        sparse = held_back(db, [window], [f.frame_id for f in picked])
        (ws,) = sparse.windows
        assert len(ws.spans_ns) == 4 and ws.spans_ns[0][0] == picked[0].t_start_ns
        assert not ws.inside(frames[-6].t_start_ns + 1, frames[-6].t_start_ns + 3)  # a frame left out
        assert ws.inside(picked[1].t_start_ns + 1, picked[1].t_start_ns + 3)
        in_picked = [
            a
            for a in db.annotations(window)
            if any(f.t_start_ns <= (a.box.t_start_ns + a.box.t_end_ns) // 2 < f.t_end_ns for f in picked)
        ]
        assert sparse.n_references == len(in_picked) >= 2
    assert best.n_reference == blind.n_reference == energy.n_reference == held.n_references
    print(f"\noracle {best.metrics()}\nenergy {energy.metrics()}")
    assert (
        best.recall >= 0.9 and best.precision >= 0.9 and best.f1 == pytest.approx(f1_score(best.precision, best.recall))
    )
    assert blind.n_detections == 0 and blind.f1 == 0.0 and blind.recall == 0.0
    assert 0.0 < energy.f1 < 1.0 and energy.n_detections > 0
    assert best.f1 > energy.f1  # the energy detector on a five-class band is beatable

    v = registry.champion_challenger(best.metrics(), blind.metrics(), energy.metrics())
    assert v.promoted and v.winner == "challenger"
    v = registry.champion_challenger(blind.metrics(), None, energy.metrics())  # first model, worse than energy
    assert not v.promoted and v.winner == "energy detector" and "no current model" in v.reason


def test_windows_with_only_energy_labels_are_not_scored(window, data_root):
    with AnalysisDB(data_root / "analysis.db") as db:
        frames = db.frames(window)
        rows = db.labels(window)
        # the same window as if no annotation had come: energy auto-labels only
        db.replace_labels(
            window, [LabelRow(r.frame_id, "burst", r.x_center, r.y_center, r.width, r.height, "energy") for r in rows]
        )
        held = held_back(db, [window], [f.frame_id for f in frames[-4:]])
        assert held.windows == () and held.n_left_out == 4 and held.n_references == 0
        assert label_boxes(db, window, frames) == []  # energy labels are never references
        energy = score_detector(db, data_root, held, ENERGY_NAME)
        assert energy.n_reference == 0 and energy.f1 != energy.f1  # NaN: nothing to compare with
        assert db.labelled_partitions(5) == [window] and db.labelled_partitions(5, independent_only=True) == []
    v = registry.champion_challenger({"f1": float("nan")}, None, energy.metrics())
    assert not v.promoted and "no independent label" in v.reason


def test_the_energy_detector_is_scored_on_its_bursts_under_the_held_back_frames(window, data_root):
    """The contest does not run the energy detector again: its once-a-window bursts whose centre
    lies in a held-back frame are the ones scored, exactly those."""
    from sdr_assets.ml.energy import window_bursts_from

    with AnalysisDB(data_root / "analysis.db") as db:
        whole, _ = window_bursts_from(db, window)
        f = db.frames(window)[4]
        span = (f.t_start_ns, f.t_end_ns)
        near, origin = window_bursts_from(db, window, spans_ns=[span])
        assert origin == "stored"  # the first call stored them; this one only read
    assert near and len(near) < len(whole)
    assert near == [b for b in whole if span[0] <= (b.t_start_ns + b.t_end_ns) // 2 < span[1]]
