"""`sdr-assets evaluate`: the product's detection chain scored against a reference.

Each recording is ingested through the file source by the capture service (in-process) into a
scratch data root, then goes through the same plain functions the Dagster assets call:
snapshot (store.snapshot) -> window (store.window.AnalysisDB.load_window) -> spectrogram
frames (store.frames.render_partition) -> detections (ml.detections.detect_partition, with
the energy detector and/or the current YOLO model of the user's registry, on the same window).

References (``--reference``):

- ``manifest``: a JSON manifest's burst spans (``shared/data/rtl433/manifest.json``:
  ``{"recordings": [{"file", "sample_rate_hz", "center_freq_hz", "rtl_433_bursts":
  [{"start_s", "end_s", "modulation"}]}]}``); time only.
- ``rtl433``: rtl_433 itself, run on each recording of the folder (``decode.rtl433``): every
  ``-A`` package is a reference span, labelled by its modulation (``ook``/``fsk``), with
  rtl_433's frequency estimate as a point where it lies inside the band (OOK: F1; FSK: the
  middle of F1 and F2). Scored by start time; a second figure also asks the estimate to fall in
  the detection's band +- ``freq_tol_hz`` (rtl_433 22.11's estimate is biased towards the
  centre: GT-WT-02 sends at -60 kHz, rtl_433 says -28 kHz).
- ``sigmf``: the annotations of the folder's SigMF recordings, as the file source reads them
  (times follow the captures); time-frequency boxes, scored by IoU (``ml.scoring``) and, beside
  it, by the held-back contest's rule (time IoU with the annotation's centre frequency inside the
  detection's band: ``match_time_band``; band edges are a convention), each with
  recall/precision, AP50 over all detections, and mAP50 over the reference classes when the
  detector names them. An annotation without frequency edges (or spanning the whole band) is
  matched in time only.

Scores are summed over the recordings; ``on_file`` sees each recording's result as it is done.
"""

import math
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdr_assets.errors import ConfigError, ModelError
from sdr_assets.ml.infer import DEFAULT_CONF
from sdr_assets.ml.scoring import Box, Tally, match_iou, match_starts, match_time_band
from sdr_assets.paths import DataPaths
from sdr_assets.records import NS_PER_S

PARTITION_KEY = "evaluate"
REFERENCE_KEY = "rtl_433_bursts"
REFERENCES = ("manifest", "rtl433", "sigmf")
DETECTORS = ("energy", "yolo")
DEFAULT_DETECTORS = ("energy", "yolo")  # yolo where the registry has a current model, else said to be unavailable
DEFAULT_TOL_S = 0.02
DEFAULT_IOU = 0.5
DEFAULT_FREQ_TOL_HZ = 40e3


# ---- what is scored ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Recording:
    """One file to evaluate: ``name`` as shown and written, ``path`` what the file source opens
    (a cu8 file or a .sigmf-meta); ``references`` when the reference is known up front (a
    manifest), else None (read from the file: rtl_433, SigMF annotations)."""

    name: str
    path: Path
    sample_rate_hz: float | None = None
    center_freq_hz: float | None = None
    references: tuple[Box, ...] | None = None


@dataclass
class FileRead:
    """A recording as the file source delivers it: contiguous runs of chunks (same tuning, no
    hole) with each run's start in seconds from the first sample, and its annotations."""

    runs: list[tuple[float, float, float, list[bytes]]]  # (start_s, rate, centre, cu8 chunks)
    annotations: list[Box]
    sample_rate_hz: float
    center_freq_hz: float


def read_recording(rec: Recording) -> FileRead:
    """Read ``rec`` once through the file source (the chain's own reader)."""
    from sdr_assets.capture.uri import open_source
    from sdr_assets.decode.stream import contiguous_runs
    from sdr_assets.records import Annotation

    source = open_source(
        f"file://{rec.path.resolve()}",
        sample_rate_hz=rec.sample_rate_hz,
        center_freq_hz=rec.center_freq_hz,
        realtime=False,
    )
    info = source.open()
    try:
        events = list(source.events())
    finally:
        source.close()
    runs = [(first, list(chunks)) for first, chunks in contiguous_runs(events)]
    if not runs:
        raise ConfigError(f"{rec.path} holds no samples; check the file.")
    t0_ns, fs = runs[0][0].t_start_ns, runs[0][0].sample_rate_hz
    full = (runs[0][0].center_freq_hz - fs / 2, runs[0][0].center_freq_hz + fs / 2)
    boxes = []
    for a in (ev for ev in events if isinstance(ev, Annotation)):
        band = (a.freq_lower_hz, a.freq_upper_hz)
        lo, hi = (None, None) if band == full else band  # no edges: the source filled the band
        boxes.append(Box((a.t_start_ns - t0_ns) / NS_PER_S, (a.t_end_ns - t0_ns) / NS_PER_S, lo, hi, a.label))
    return FileRead(
        [((f.t_start_ns - t0_ns) / NS_PER_S, f.sample_rate_hz, f.center_freq_hz, chunks) for f, chunks in runs],
        boxes,
        fs,
        info.center_freq_hz,
    )


# ---- references -------------------------------------------------------------------------------
class Reference:
    """Where the reference boxes come from and how detections are matched to them."""

    name = ""
    matching = "start"  # "start": start within tol_s; "iou": IoU in time x frequency

    def recordings(self, folder: Path) -> list[Recording]:
        raise NotImplementedError

    def boxes(self, rec: Recording, read: Callable[[], FileRead]) -> list[Box]:
        if rec.references is None:
            raise ConfigError(f"{rec.name}: no reference boxes")
        return list(rec.references)

    def describe(self) -> str:
        return self.name


def _listing(folder: Path, patterns: Sequence[str]) -> list[Path]:
    if not folder.is_dir():
        raise ConfigError(f"--recordings {folder} is not a folder; pass the folder holding the recordings.")
    return sorted({p for pat in patterns for p in folder.glob(pat) if p.is_file()})


class ManifestReference(Reference):
    name = "manifest"

    def __init__(self, manifest: Path | str) -> None:
        self.manifest = Path(manifest)

    def recordings(self, folder: Path) -> list[Recording]:
        return manifest_recordings(load_manifest(self.manifest), folder)

    def describe(self) -> str:
        return f"the burst spans of {self.manifest}"


def manifest_recordings(entries: Iterable[dict[str, Any]], folder: Path) -> list[Recording]:
    out = []
    for e in entries:
        refs = tuple(
            Box(float(b["start_s"]), float(b["end_s"]), label=str(b.get("modulation", "burst")).lower())
            for b in e.get(REFERENCE_KEY, [])
        )
        out.append(Recording(e["file"], folder / e["file"], e.get("sample_rate_hz"), e.get("center_freq_hz"), refs))
    return out


class Rtl433Reference(Reference):
    """rtl_433's ``-A`` packages of each recording, rtl_433 run here on the file's samples."""

    name = "rtl433"

    def __init__(self, executable: str | None = None) -> None:
        from sdr_assets.decode import find_rtl433, rtl433_version

        self.executable = find_rtl433(executable)  # DecodeError (names the package) up front
        self.version = rtl433_version(self.executable)
        self.n_packages = self.n_with_freq = 0

    def recordings(self, folder: Path) -> list[Recording]:
        paths = _listing(folder, ("*.cu8", "*.CU8", "*.sigmf-meta"))
        if not paths:
            raise ConfigError(
                f"--reference rtl433: no recordings (*.cu8, *.sigmf-meta) in {folder}; point "
                "--recordings at rtl_433-style NAME_433.92M_250k.cu8 files or SigMF recordings."
            )
        return [Recording(p.name, p) for p in paths]

    def boxes(self, rec: Recording, read: Callable[[], FileRead]) -> list[Box]:
        from sdr_assets.decode import decode_cu8

        out = []
        for start_s, fs, fc, chunks in read().runs:  # one rtl_433 run per contiguous run
            res = decode_cu8(chunks, fs, fc, executable=self.executable)
            for p in res.packages:
                f = package_freq_hz(p.modulation, p.freq1_offset_hz, p.freq2_offset_hz, fs)
                out.append(
                    Box(
                        start_s + p.start_s,
                        start_s + p.start_s + p.length_s,
                        None if f is None else fc + f,
                        None if f is None else fc + f,
                        p.modulation.lower(),
                    )
                )
        self.n_packages += len(out)
        self.n_with_freq += sum(b.has_freq for b in out)
        return out

    def describe(self) -> str:
        return (
            f"rtl_433 {self.version} -A packages ({self.n_packages}; {self.n_with_freq} with a frequency "
            "estimate inside the band)"
        )


def package_freq_hz(
    modulation: str, f1_offset_hz: float | None, f2_offset_hz: float | None, sample_rate_hz: float
) -> float | None:
    """rtl_433's frequency estimate of a package as an offset from the centre (OOK: F1; FSK: the
    middle of F1 and F2), or None where it is missing or outside +-rate/2 (not a frequency)."""
    if f1_offset_hz is None:
        return None
    f = f1_offset_hz
    if modulation.upper() == "FSK":
        if f2_offset_hz is None:
            return None
        f = (f1_offset_hz + f2_offset_hz) / 2
        if max(abs(f1_offset_hz), abs(f2_offset_hz)) >= sample_rate_hz / 2:
            return None
    return f if abs(f) < sample_rate_hz / 2 else None


class SigmfReference(Reference):
    """The annotations of each SigMF recording, as the file source reads them; annotations that
    are detections (``sdr-assets export`` writes them beside the ground truth, origin
    "detection") are left out: a detector is not scored against detections."""

    name = "sigmf"
    matching = "iou"

    def __init__(self) -> None:
        self.n_annotations = self.n_time_only = self.n_detections_left_out = 0

    def recordings(self, folder: Path) -> list[Recording]:
        paths = _listing(folder, ("*.sigmf-meta",))
        if not paths:
            raise ConfigError(
                f"--reference sigmf: no SigMF recordings (*.sigmf-meta) in {folder}; point "
                "--recordings at a folder of annotated SigMF recordings (sdr-assets export "
                "writes them), or use --reference rtl433."
            )
        return [Recording(p.name[: -len(".sigmf-meta")], p) for p in paths]

    def boxes(self, rec: Recording, read: Callable[[], FileRead]) -> list[Box]:
        boxes = read().annotations
        exported = exported_detections(rec.path)
        if len(exported) != len(boxes):
            raise ConfigError(
                f"{rec.path}: {len(exported)} annotations in the metadata but {len(boxes)} read; "
                "check the recording's annotations."
            )
        out = [b for b, det in zip(boxes, exported) if not det]
        self.n_detections_left_out += len(boxes) - len(out)
        self.n_annotations += len(out)
        self.n_time_only += sum(not b.has_band for b in out)
        return out

    def describe(self) -> str:
        left = f"; {self.n_detections_left_out} exported detections left out" if self.n_detections_left_out else ""
        return (
            f"SigMF annotations ({self.n_annotations}; {self.n_time_only} without frequency edges, "
            f"matched in time only{left})"
        )


def exported_detections(meta_path: Path) -> list[bool]:
    """Per annotation of a .sigmf-meta, in the file source's order (by sample start, stable):
    whether ``sdr-assets export`` wrote it as a detection."""
    import json

    from sdr_assets.sigmf.export import NAMESPACE

    anns = json.loads(meta_path.read_text()).get("annotations", [])
    anns = sorted(anns, key=lambda a: a.get("core:sample_start", 0))
    return [a.get(f"{NAMESPACE}:origin") == "detection" for a in anns]


def make_reference(name: str, manifest: Path | str | None = None, executable: str | None = None) -> Reference:
    """The reference ``name`` names; a bad name or a missing/extra manifest -> ConfigError."""
    if name is None:
        name = "manifest" if manifest is not None else ""
        if not name:
            raise ConfigError(
                "no reference: pass --manifest FILE, or --reference rtl433 (rtl_433 run on "
                "each recording) or --reference sigmf (the recordings' SigMF annotations)."
            )
    if name not in REFERENCES:
        raise ConfigError(f"--reference {name!r} is not known; use one of {', '.join(REFERENCES)}.")
    if name == "manifest":
        if manifest is None:
            raise ConfigError("--reference manifest needs --manifest FILE (format: shared/data/rtl433/manifest.json).")
        return ManifestReference(manifest)
    if manifest is not None:
        raise ConfigError(f"--manifest is read by --reference manifest only; drop it with --reference {name}.")
    return Rtl433Reference(executable) if name == "rtl433" else SigmfReference()


# ---- results ----------------------------------------------------------------------------------
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
    """One detector over every recording."""

    detector: str
    model_version: str
    files: list[FileResult]
    tally: Tally = field(default_factory=Tally)  # the reference's matching
    tally_freq: Tally | None = None  # start AND rtl_433's frequency (rtl433 reference only)
    tally_band: Tally | None = None  # time IoU AND the reference's centre in the band (sigmf only)

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
        return (
            f"{len(self.files)} recordings, detector {self.detector} ({self.model_version}): "
            f"recall {self.recall:.2f} ({self.tp}/{self.tp + self.fn}), "
            f"precision {self.precision:.2f} ({self.tp}/{self.tp + self.fp})"
        )


def _rp(t: Tally) -> str:
    return f"recall {t.recall:.2f} ({t.tp}/{t.n_reference}), precision {t.precision:.2f} ({t.tp}/{t.n_detections})"


@dataclass
class Evaluation:
    reference: Reference
    summaries: list[EvalSummary]
    tol_s: float
    iou_threshold: float
    freq_tol_hz: float
    unavailable: dict[str, str] = field(default_factory=dict)  # detector -> why it did not run

    def class_matching(self) -> str:
        """How the per-class table's figures were matched (the time-frequency matching where the
        reference has frequencies)."""
        if self.reference.matching == "iou":
            return f"time x frequency, IoU >= {self.iou_threshold:.2f}"
        if isinstance(self.reference, Rtl433Reference):
            return (
                f"time and frequency: start within {self.tol_s:g} s, rtl_433's estimate in the band "
                f"+- {self.freq_tol_hz / 1e3:g} kHz"
            )
        return f"time only: start within {self.tol_s:g} s (the reference has no frequencies)"

    def class_tally(self, s: EvalSummary) -> Tally:
        """The tally behind the per-class table: time x frequency where the reference allows it."""
        return s.tally_freq if s.tally_freq is not None else s.tally

    def matching(self) -> str:
        if self.reference.matching == "iou":
            return (
                f"matching: IoU >= {self.iou_threshold:.2f} in time x frequency (time alone for a box "
                "without frequency), detections by descending score, one to one; boxes under 16 px of "
                "the frame geometry widened about their centre, as the YOLO labels are"
            )
        return f"matching: start within {self.tol_s:g} s of a reference start, one to one, closest first"

    def lines(self) -> list[str]:
        out = [f"reference: {self.reference.describe()}", self.matching()]
        ap_name = "AP50" if abs(self.iou_threshold - 0.5) < 1e-9 else f"AP@{self.iou_threshold:.2f}"
        for s in self.summaries:
            out.append(s.line())
            t = s.tally
            if s.tally_freq is not None:
                out.append(
                    f"  time+frequency: {_rp(s.tally_freq)} (rtl_433's estimate within the "
                    f"detection's band +- {self.freq_tol_hz / 1e3:g} kHz; packages without one: time only)"
                )
            if self.reference.matching == "iou":
                labels = set(t.n_det_by_label) & set(t.n_ref_by_label)
                per = ", ".join(f"{k} {v:.2f}" for k, v in t.ap_by_class().items())
                m = (
                    f"m{ap_name} {t.map():.2f} ({per})"
                    if labels
                    else f"m{ap_name} n/a (detector labels {', '.join(sorted(t.n_det_by_label)) or 'none'} "
                    "name no reference class)"
                )
                out.append(f"  {ap_name} (any class) {t.ap():.2f}; {m}")
            out += class_table(self.class_tally(s), self.class_matching())
            if s.tally_band is not None:
                rule = f"time IoU >= {self.iou_threshold:.2f} with the reference's centre frequency in the band"
                out.append(f"  {rule} (the held-back contest's rule): {_rp(s.tally_band)}")
                out += class_table(s.tally_band, rule)
        for name, why in self.unavailable.items():
            out.append(f"detector {name}: unavailable: {why}")
        return out


def class_table(t: Tally, matching: str) -> list[str]:
    """The per-class table: each reference class with the share any detection found (recall),
    and, where the detector names reference classes, the share a detection OF THAT CLASS found
    (same-class recall, IoU matching only); each detection class with the share that matched a
    reference (precision). ``-`` where a class is on one side only."""
    same = bool(set(t.n_det_by_label) & set(t.n_ref_by_label)) and bool(t.ranked_by_class)
    head = ["class", "references", "found", "recall"] + (["same-class"] if same else []) + [
        "detections", "matched", "precision",
    ]  # fmt: skip
    rows = []
    for k in sorted(set(t.n_ref_by_label) | set(t.n_det_by_label)):
        n_ref, n_det = t.n_ref_by_label.get(k, 0), t.n_det_by_label.get(k, 0)
        ref = (
            [str(n_ref), str(t.found_by_ref_label[k]), f"{t.found_by_ref_label[k] / n_ref:.2f}"] if n_ref else ["-"] * 3
        )
        if same:
            ref.append(f"{t.found_same_by_ref_label[k] / n_ref:.2f}" if n_ref else "-")
        det = [str(n_det), str(t.tp_by_det_label[k]), f"{t.tp_by_det_label[k] / n_det:.2f}"] if n_det else ["-"] * 3
        rows.append([k, *ref, *det])
    if not rows:
        return [f"  per class ({matching}): no references and no detections"]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    fmt = "    " + "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return [f"  per class ({matching}):", fmt.format(*head)] + [fmt.format(*r) for r in rows]


# ---- the chain --------------------------------------------------------------------------------
def load_manifest(path: Path | str) -> list[dict[str, Any]]:
    import json

    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"cannot read the manifest {path} ({exc}); pass a JSON file like shared/data/rtl433/manifest.json."
        ) from exc
    recs = data.get("recordings") if isinstance(data, dict) else None
    if not isinstance(recs, list) or not all(isinstance(r, dict) and "file" in r for r in recs):
        raise ConfigError(
            f"{path} has no 'recordings' list of objects with a 'file'; see "
            "shared/data/rtl433/manifest.json for the format."
        )
    for i, rec in enumerate(recs):
        _check_entry(rec, f"{path} recordings[{i}]")
    return recs


def _check_entry(rec: dict[str, Any], where: str) -> None:
    """One manifest entry: a file name, optional finite positive numbers, reference bursts."""

    def bad(what: str) -> ConfigError:
        return ConfigError(f"{where}: {what}; see shared/data/rtl433/manifest.json for the format.")

    if not isinstance(rec["file"], str) or not rec["file"].strip() or "\0" in rec["file"]:
        raise bad(f"'file' must be a file name (text), got {rec['file']!r}")
    for key in ("sample_rate_hz", "center_freq_hz"):
        v = rec.get(key)
        if v is not None and not (
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0
        ):
            raise bad(f"{key!r} must be a positive number of Hz, got {v!r}")
    bursts = rec.get(REFERENCE_KEY, [])
    if not isinstance(bursts, list):
        raise bad(f"{REFERENCE_KEY!r} must be a list of objects with a 'start_s'")
    for b in bursts:
        start = b.get("start_s") if isinstance(b, dict) else None
        if not (isinstance(start, int | float) and not isinstance(start, bool) and math.isfinite(start)):
            raise bad(f"{REFERENCE_KEY!r} entries need a number 'start_s' (seconds), got {b!r}")


def ingest(
    recording: Path,
    paths: DataPaths,
    *,
    sample_rate_hz: float | None,
    center_freq_hz: float | None,
    nfft: int,
    hop: int,
    frame_cols: int,
) -> tuple[int, int]:
    """Recording -> hot DB -> snapshot -> analysis window -> frames, under ``paths``.
    Returns the window's (first sample ns, end ns)."""
    from sdr_assets.capture.service import CaptureService
    from sdr_assets.capture.uri import open_source
    from sdr_assets.store import frames, snapshot
    from sdr_assets.store.window import AnalysisDB

    source = open_source(
        f"file://{recording.resolve()}", sample_rate_hz=sample_rate_hz, center_freq_hz=center_freq_hz, realtime=False
    )
    CaptureService(source, paths.hot_db, window_s_for_capacity_check=60.0).run()
    held = snapshot.hot_time_range(paths.hot_db)
    if held is None:
        raise ConfigError(f"{recording} holds no samples; check the file.")
    snap = paths.snapshots / "evaluate.db"
    snap.parent.mkdir(parents=True, exist_ok=True)
    snapshot.take_snapshot(paths.hot_db, snap)
    with AnalysisDB(paths.analysis_db) as db:
        db.load_window(snap, PARTITION_KEY, held[0], held[1] + 1, keep_partitions=1)
        frames.render_partition(
            db, PARTITION_KEY, paths.spectrograms, nfft=nfft, hop=hop, frame_cols=frame_cols, backend="numpy"
        )
    return held


def current_yolo(paths: DataPaths, conf: float) -> tuple[Callable, str, str]:
    """(detector, version, name) of the current model of the registry under ``paths`` (the
    shipped model in a data root without one, ``ml.shipped_model``)."""
    from sdr_assets.ml.infer import load_detector
    from sdr_assets.ml.shipped_model import ensure_shipped_model, shipped_available
    from sdr_assets.store.registry import current_model
    from sdr_assets.store.window import AnalysisDB

    if not paths.analysis_db.exists() and not shipped_available():
        raise ModelError(
            f"no analysis DB at {paths.analysis_db}: no model to evaluate; materialise "
            "detector_model first (or use --detector energy)."
        )
    with AnalysisDB(paths.analysis_db) as db:
        shipped = ensure_shipped_model(db, paths)
        row = current_model(db)
    if row is None:
        raise ModelError(
            f"the registry in {paths.analysis_db} has no current model ({shipped.note or 'none promoted'}); "
            "materialise detector_model first (or use --detector energy)."
        )
    det = load_detector(row, conf=conf)
    return det, row.version, f"yolo {type(det).__name__}"


def parse_detectors(value: str | Sequence[str]) -> list[str]:
    """``"yolo,energy"`` (or a list) -> ["yolo", "energy"]; unknown or empty -> ConfigError."""
    names = [n.strip() for n in (value.split(",") if isinstance(value, str) else value) if n.strip()]
    bad = [n for n in names if n not in DETECTORS]
    if bad or not names:
        raise ConfigError(f"--detector {','.join(names) or value!r}: use energy, yolo, or both as yolo,energy.")
    return list(dict.fromkeys(names))


def _min_extent(sample_rate_hz: float, nfft: int, hop: int) -> tuple[float, float]:
    """(seconds, Hz) of MIN_BOX_PX columns / rows of the frames: the YOLO labels' minimum box."""
    from sdr_assets.ml.labels import MIN_BOX_PX

    return MIN_BOX_PX * hop / sample_rate_hz, MIN_BOX_PX * sample_rate_hz / nfft


def evaluate(
    recordings: Sequence[Recording],
    reference: Reference,
    detectors: Sequence[str] = ("energy",),
    *,
    tol_s: float = DEFAULT_TOL_S,
    iou_threshold: float = DEFAULT_IOU,
    freq_tol_hz: float = DEFAULT_FREQ_TOL_HZ,
    nfft: int = 640,
    hop: int = 640,
    frame_cols: int = 640,
    conf: float = DEFAULT_CONF,
    on_file: Callable[[FileResult], None] | None = None,
    progress: Callable[[Any], Any] = iter,
    require_energy: bool = False,
    suppress_across_freq: bool = False,
    home: DataPaths | None = None,
    optional: Sequence[str] = (),
) -> Evaluation:
    """Run the chain over each recording and score every detector on the same window.
    ``home``: the data root whose registry holds the YOLO model (required for "yolo").
    ``optional``: detectors that are left out, with the reason in ``Evaluation.unavailable``,
    where they cannot load (no current model) instead of failing the run.
    ``require_energy`` / ``suppress_across_freq``: ``detect_partition``'s filters for model boxes."""
    from sdr_assets.ml.detections import detect_partition
    from sdr_assets.store.window import AnalysisDB

    detectors = parse_detectors(detectors)
    if not 0 < iou_threshold <= 1:
        raise ConfigError(f"--iou {iou_threshold:g}: must be in (0, 1].")
    models, unavailable = [], {}
    for name in list(detectors):
        if name == "yolo":
            try:
                if home is None:
                    raise ConfigError("--detector yolo needs the data root whose registry holds the model.")
                models.append(current_yolo(home, conf))
            except (ModelError, ConfigError, ImportError) as exc:
                if name not in optional:
                    raise
                unavailable[name] = str(exc)
                detectors.remove(name)
        else:
            models.append((None, "energy", "energy (IQ)"))
    if not detectors:
        raise ModelError(f"no detector to evaluate: {'; '.join(f'{k}: {v}' for k, v in unavailable.items())}")
    summaries = [EvalSummary(name, version, []) for name, (_, version, _) in zip(detectors, models)]
    with_freq = isinstance(reference, Rtl433Reference)
    for s in summaries:
        s.tally_freq = Tally() if with_freq else None
        s.tally_band = Tally() if reference.matching == "iou" else None
    recordings = list(recordings)
    for rec in recordings:  # all of them before the first hour of work
        try:
            found = rec.path.is_file()
        except (OSError, ValueError):  # a name too long for the filesystem, a NUL
            found = False
        if not found:
            raise ConfigError(f"{rec.path} does not exist; check --recordings (and the manifest).")
    with tempfile.TemporaryDirectory(prefix="sdr_evaluate_") as tmp:
        for i, rec in enumerate(progress(recordings)):
            cache: list[FileRead] = []

            def read(rec=rec, cache=cache) -> FileRead:
                if not cache:
                    cache.append(read_recording(rec))
                return cache[0]

            refs = reference.boxes(rec, read)
            paths = DataPaths(Path(tmp) / f"{i:04d}")
            paths.root.mkdir(parents=True)
            t0_ns, _ = ingest(
                rec.path,
                paths,
                sample_rate_hz=rec.sample_rate_hz,
                center_freq_hz=rec.center_freq_hz,
                nfft=nfft,
                hop=hop,
                frame_cols=frame_cols,
            )
            with AnalysisDB(paths.analysis_db) as db:
                frames = db.frames(PARTITION_KEY)
                extent = _min_extent(frames[0].sample_rate_hz, nfft, hop) if frames else (0.0, 0.0)
                for s, (model, version, name) in zip(summaries, models):
                    _, rows = detect_partition(
                        db,
                        PARTITION_KEY,
                        paths.root,
                        detector=model,
                        model_version=version,
                        detector_name=name,
                        write=False,
                        require_energy=require_energy and model is not None,
                        suppress_across_freq=suppress_across_freq and model is not None,
                    )
                    dets = detection_boxes(rows, t0_ns)
                    res = _score(s, rec.name, dets, refs, reference, tol_s, iou_threshold, freq_tol_hz, extent)
                    if on_file is not None:
                        on_file(res)
    return Evaluation(reference, summaries, tol_s, iou_threshold, freq_tol_hz, unavailable)


def detection_boxes(rows: Sequence[Any], t0_ns: int) -> list[Box]:
    """Detection rows (absolute ns) as scoring boxes in seconds from the recording's start ``t0_ns``."""
    return [
        Box(
            (r.t_start_ns - t0_ns) / NS_PER_S,
            (r.t_end_ns - t0_ns) / NS_PER_S,
            r.freq_lower_hz,
            r.freq_upper_hz,
            r.label,
            r.confidence,
        )
        for r in rows
    ]


def _score(
    s: EvalSummary,
    name: str,
    dets: list[Box],
    refs: list[Box],
    reference: Reference,
    tol_s: float,
    iou_threshold: float,
    freq_tol_hz: float,
    min_extent: tuple[float, float],
) -> FileResult:
    if reference.matching == "iou":
        kw = {"min_duration_s": min_extent[0], "min_bandwidth_hz": min_extent[1]}
        matches = match_iou(dets, refs, iou_threshold, **kw)
        s.tally.add(dets, refs, matches, match_iou(dets, refs, iou_threshold, same_label=True, **kw))
        if s.tally_band is not None:
            s.tally_band.add(
                dets,
                refs,
                match_time_band(dets, refs, iou_threshold, **kw),
                match_time_band(dets, refs, iou_threshold, same_label=True, **kw),
            )
    else:
        matches = match_starts(dets, refs, tol_s)
        s.tally.add(dets, refs, matches)
        if s.tally_freq is not None:
            s.tally_freq.add(dets, refs, match_starts(dets, refs, tol_s, freq_tol_hz))
    tp = sum(j is not None for j in matches)
    rows = [
        {
            "file": name,
            "detector": s.detector,
            "t_start_s": round(d.t_start_s, 6),
            "t_end_s": round(d.t_end_s, 6),
            "freq_lower_hz": round(d.freq_lower_hz, 1),
            "freq_upper_hz": round(d.freq_upper_hz, 1),
            "label": d.label,
            "confidence": round(d.score, 4),
            "matched": j is not None,
        }
        for d, j in zip(dets, matches)
    ]
    res = FileResult(name, len(refs), tp, len(dets) - tp, len(refs) - tp, rows)
    s.files.append(res)
    return res


def evaluate_recordings(
    recordings: list[dict[str, Any]],
    folder: Path,
    *,
    home: DataPaths | None = None,
    detector: str = "energy",
    tol_s: float = DEFAULT_TOL_S,
    nfft: int = 640,
    hop: int = 640,
    frame_cols: int = 640,
    conf: float = DEFAULT_CONF,
    on_file: Callable[[FileResult], None] | None = None,
    progress: Callable[[Any], Any] = iter,
    require_energy: bool = False,
    suppress_across_freq: bool = False,
) -> EvalSummary:
    """One detector against manifest entries (``load_manifest``) of recordings in ``folder``."""
    ev = evaluate(
        manifest_recordings(recordings, folder),
        Reference(),
        [detector],
        tol_s=tol_s,
        nfft=nfft,
        hop=hop,
        frame_cols=frame_cols,
        conf=conf,
        on_file=on_file,
        progress=progress,
        require_energy=require_energy,
        suppress_across_freq=suppress_across_freq,
        home=home,
    )
    return ev.summaries[0]
