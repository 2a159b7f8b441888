"""`sdr-assets evaluate`: the product's detection chain against a manifest of reference bursts.

Each recording is ingested through the file source by the capture service (in-process) into a
scratch data root, then goes through the same plain functions the Dagster assets call:
snapshot (store.snapshot) -> window (store.window.AnalysisDB.load_window) -> spectrogram
frames (store.frames.render_partition) -> detections (ml.detections.detect_partition, with
the energy detector or the current YOLO model of the user's registry). A reference burst is
found when a detection starts within ``tol_s`` of it (dsp.detect.match_bursts).

Manifest format (``shared/data/rtl433/manifest.json``): ``{"recordings": [{"file",
"sample_rate_hz", "center_freq_hz", "rtl_433_bursts": [{"start_s", "end_s", ...}]}]}``.
"""

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdr_assets.errors import ConfigError, ModelError
from sdr_assets.paths import DataPaths

PARTITION_KEY = "evaluate"
REFERENCE_KEY = "rtl_433_bursts"


@dataclass
class FileResult:
    file: str
    n_reference: int
    tp: int
    fp: int
    fn: int
    detections: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class EvalSummary:
    detector: str
    model_version: str
    files: list[FileResult]

    @property
    def tp(self) -> int:
        return sum(f.tp for f in self.files)

    @property
    def fp(self) -> int:
        return sum(f.fp for f in self.files)

    @property
    def fn(self) -> int:
        return sum(f.fn for f in self.files)

    @property
    def recall(self) -> float:
        return self.tp / max(self.tp + self.fn, 1)

    @property
    def precision(self) -> float:
        return self.tp / max(self.tp + self.fp, 1)

    def line(self) -> str:
        return (f"{len(self.files)} recordings, detector {self.detector} ({self.model_version}): "
                f"recall {self.recall:.2f} ({self.tp}/{self.tp + self.fn}), "
                f"precision {self.precision:.2f} ({self.tp}/{self.tp + self.fp})")


def load_manifest(path: Path | str) -> list[dict[str, Any]]:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read the manifest {path} ({exc}); pass a JSON file like "
                          "shared/data/rtl433/manifest.json.") from exc
    recs = data.get("recordings") if isinstance(data, dict) else None
    if not isinstance(recs, list) or not all(isinstance(r, dict) and "file" in r for r in recs):
        raise ConfigError(f"{path} has no 'recordings' list of objects with a 'file'; see "
                          "shared/data/rtl433/manifest.json for the format.")
    return recs


def ingest(recording: Path, paths: DataPaths, *, sample_rate_hz: float | None, center_freq_hz: float | None,
           nfft: int, hop: int, frame_cols: int) -> tuple[int, int]:
    """Recording -> hot DB -> snapshot -> analysis window -> frames, under ``paths``.
    Returns the window's (first sample ns, end ns)."""
    from sdr_assets.capture.service import CaptureService
    from sdr_assets.capture.uri import open_source
    from sdr_assets.store import frames, snapshot
    from sdr_assets.store.window import AnalysisDB

    source = open_source(f"file://{recording.resolve()}", sample_rate_hz=sample_rate_hz,
                         center_freq_hz=center_freq_hz, realtime=False)
    CaptureService(source, paths.hot_db, window_s_for_capacity_check=60.0).run()
    held = snapshot.hot_time_range(paths.hot_db)
    if held is None:
        raise ConfigError(f"{recording} holds no samples; check the file.")
    snap = paths.snapshots / "evaluate.db"
    snap.parent.mkdir(parents=True, exist_ok=True)
    snapshot.take_snapshot(paths.hot_db, snap)
    with AnalysisDB(paths.analysis_db) as db:
        db.load_window(snap, PARTITION_KEY, held[0], held[1] + 1, keep_partitions=1)
        frames.render_partition(db, PARTITION_KEY, paths.spectrograms, nfft=nfft, hop=hop,
                                frame_cols=frame_cols, backend="numpy")
    return held


def current_yolo(paths: DataPaths, conf: float) -> tuple[Callable, str, str]:
    """(detector, version, name) of the current model of the registry under ``paths``."""
    from sdr_assets.ml.infer import load_detector
    from sdr_assets.store.registry import current_model
    from sdr_assets.store.window import AnalysisDB

    if not paths.analysis_db.exists():
        raise ModelError(f"no analysis DB at {paths.analysis_db}: no model to evaluate; materialise "
                         "detector_model first (or use --detector energy).")
    with AnalysisDB(paths.analysis_db) as db:
        row = current_model(db)
    if row is None:
        raise ModelError(f"the registry in {paths.analysis_db} has no current model; materialise "
                         "detector_model first (or use --detector energy).")
    det = load_detector(row, conf=conf)
    return det, row.version, f"yolo {type(det).__name__}"


def evaluate_recordings(recordings: list[dict[str, Any]], folder: Path, *, home: DataPaths | None = None,
                        detector: str = "energy",
                        tol_s: float = 0.02, nfft: int = 640, hop: int = 640, frame_cols: int = 640,
                        conf: float = 0.25, on_file: Callable[[FileResult], None] | None = None,
                        progress: Callable[[Any], Any] = iter, require_energy: bool = False,
                        suppress_across_freq: bool = False) -> EvalSummary:
    """Run the chain over each recording; ``on_file`` gets each file's result as it is done.
    ``home``: the data root whose registry's current model ``detector="yolo"`` runs.
    ``require_energy`` / ``suppress_across_freq``: ``detect_partition``'s filters for model boxes."""
    from sdr_assets.dsp.detect import match_bursts
    from sdr_assets.ml.detections import detect_partition
    from sdr_assets.store.window import AnalysisDB

    if detector not in ("energy", "yolo"):
        raise ConfigError(f"--detector {detector!r}: use 'energy' or 'yolo'.")
    model, version, name = (None, "energy", "energy (IQ)")
    if detector == "yolo":
        if home is None:
            raise ConfigError("--detector yolo needs the data root whose registry holds the model.")
        model, version, name = current_yolo(home, conf)
    results = []
    with tempfile.TemporaryDirectory(prefix="sdr_evaluate_") as tmp:
        for i, rec in enumerate(progress(recordings)):
            path = folder / rec["file"]
            if not path.is_file():
                raise ConfigError(f"{path} (listed in the manifest) does not exist; check --recordings.")
            paths = DataPaths(Path(tmp) / f"{i:04d}")
            paths.root.mkdir(parents=True)
            t0_ns, _ = ingest(path, paths, sample_rate_hz=rec.get("sample_rate_hz"),
                              center_freq_hz=rec.get("center_freq_hz"), nfft=nfft, hop=hop, frame_cols=frame_cols)
            with AnalysisDB(paths.analysis_db) as db:
                _, rows = detect_partition(db, PARTITION_KEY, paths.root, detector=model,
                                           model_version=version, detector_name=name,
                                           require_energy=require_energy and model is not None,
                                           suppress_across_freq=suppress_across_freq and model is not None)
            dets = [{"file": rec["file"], "t_start_s": round((r.t_start_ns - t0_ns) / 1e9, 6),
                     "t_end_s": round((r.t_end_ns - t0_ns) / 1e9, 6), "freq_lower_hz": round(r.freq_lower_hz, 1),
                     "freq_upper_hz": round(r.freq_upper_hz, 1), "label": r.label,
                     "confidence": round(r.confidence, 4)} for r in rows]
            refs = [b["start_s"] for b in rec.get(REFERENCE_KEY, [])]
            tp, fp, fn = match_bursts([d["t_start_s"] for d in dets], refs, tol_s)
            res = FileResult(rec["file"], len(refs), tp, fp, fn, dets)
            results.append(res)
            if on_file is not None:
                on_file(res)
    return EvalSummary(detector, version, results)
