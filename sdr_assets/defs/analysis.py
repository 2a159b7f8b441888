"""Analysis assets: point-in-time snapshot -> circular-buffer window -> spectrogram frames."""

from pathlib import Path

import dagster as dg

from sdr_assets.defs.partitions import SENSOR_TIME, sensor_of, window_ns
from sdr_assets.defs.resources import SdrStore, SpectrogramSettings
from sdr_assets.records import utc_iso
from sdr_assets.store import frames as frames_store
from sdr_assets.store import snapshot as snap
from sdr_assets.store.retention import Removed, prune_reports, remove_tree
from sdr_assets.store.sensors import split_key
from sdr_assets.store.window import check_contiguity

GROUP = "analysis"
COVERAGE_MIN = 0.999  # stored / (expected - recorded as lost)


def snapshot_path(store: SdrStore, partition_key: str) -> Path:
    """The sensor's snapshot folder, one file per time window: hot-2026-11-23-0400.db."""
    sensor, time_key = split_key(partition_key)
    return store.paths(sensor).snapshots / snap.snapshot_file_name(time_key)


def _require_held(hot: Path, t0_ns: int, t1_ns: int, key: str) -> None:
    """Fail clearly when retention has already dropped the partition's samples."""
    if not hot.exists():
        raise dg.Failure(
            f"No hot database at {hot}: start the capture first "
            "(`sdr-assets capture --source synthetic://?seed=1`), then materialise again."
        )
    starts_ns = snap.retention_dropped(hot, t1_ns)
    if starts_ns is not None:
        raise dg.Failure(
            f"Partition {key} is no longer held by the hot database: it now starts at "
            f"{utc_iso(starts_ns, sep=' ', suffix=' UTC')}, after this window ended. Raise the capture's --cap-bytes / "
            "--max-age-s to keep more history, or materialise newer partitions."
        )


@dg.asset(
    partitions_def=SENSOR_TIME,
    group_name=GROUP,
    kinds={"sqlite"},
    check_specs=[
        dg.AssetCheckSpec(
            "snapshot_integrity",
            asset="hot_snapshot",
            blocking=True,
            description="PRAGMA integrity_check on the copy is ok; a corrupt copy stops the partition's later steps",
        )
    ],
)
def hot_snapshot(context: dg.AssetExecutionContext, store: SdrStore):
    """Point-in-time copy of the sensor's hot DB (SQLite online backup, one step, non-blocking)."""
    paths = store.paths(sensor_of(context))
    key = str(context.partition_key)
    t0_ns, t1_ns = window_ns(context)
    _require_held(paths.hot_db, t0_ns, t1_ns, key)
    dest = snapshot_path(store, key)
    dest.parent.mkdir(parents=True, exist_ok=True)
    res = snap.take_snapshot(paths.hot_db, dest)
    replica = store.replica()
    if replica is None:
        removed, replica_meta = snap.prune_snapshots(paths.snapshots, keep=store.keep_snapshots), {}
    else:  # snapshots the replica does not hold yet are held (up to replica_max_waiting)
        removed, replica_meta = _prune_for_replica(context, paths.snapshots, store)
    context.log.info(
        f"snapshot {dest.name}: {res.n_bytes / 1e6:.1f} MB in {res.seconds:.2f} s, "
        f"{res.n_chunks} chunks, last seq {res.last_seq}, integrity {res.integrity}"
    )
    meta = {
        "sensor": paths.sensor,
        "hot_db": dg.MetadataValue.path(str(paths.hot_db)),
        "path": dg.MetadataValue.path(str(dest)),
        "bytes": res.n_bytes,
        "MB": round(res.n_bytes / 1e6, 2),
        "seconds": round(res.seconds, 3),
        "MB/s": round(res.mb_per_s, 1),
        "chunks": res.n_chunks,
        "last_seq": res.last_seq if res.last_seq is not None else -1,
        "holds_until": utc_iso(res.last_t_end_ns, sep=" ", suffix=" UTC") if res.last_t_end_ns else "no samples",
        "integrity": res.integrity,
        "snapshots_pruned": len(removed),
        **replica_meta,
    }
    return dg.MaterializeResult(
        metadata=meta,
        check_results=[
            dg.AssetCheckResult(
                check_name="snapshot_integrity",
                passed=res.integrity == "ok",
                metadata={"integrity_check": res.integrity},
            )
        ],
    )


def _prune_for_replica(context, folder: Path, store: SdrStore) -> tuple[list, dict]:
    from sdr_assets.replica.local import prune_local

    pr = prune_local(folder, store.keep_snapshots, store.replica_max_waiting)
    if pr.dropped_waiting:
        context.log.warning(
            f"{len(pr.dropped_waiting)} snapshot(s) never reached the replica and were pruned "
            f"(more than replica_max_waiting={store.replica_max_waiting} waiting): "
            f"{', '.join(p.name for p in pr.dropped_waiting)}. Check the replica (snapshot_replica)."
        )
    return pr.removed + pr.dropped_waiting, {
        "snapshots_held_for_replica": len(pr.held_waiting),
        "snapshots_dropped_unreplicated": len(pr.dropped_waiting),
    }


@dg.asset(
    partitions_def=SENSOR_TIME,
    group_name=GROUP,
    kinds={"sqlite"},
    deps=[hot_snapshot],
    check_specs=[
        dg.AssetCheckSpec(
            "window_coverage",
            asset="iq_window",
            blocking=True,
            description="samples stored vs expected, less recorded gaps; an unrecorded hole fails "
            "(ERROR) and stops the partition's later steps",
        )
    ],
)
def iq_window(context: dg.AssetExecutionContext, store: SdrStore):
    """The partition's chunks, gaps and annotations, copied into the analysis DB."""
    paths = store.paths()
    key = str(context.partition_key)
    src = snapshot_path(store, key)
    if not src.exists():
        raise dg.Failure(f"No snapshot for {key} at {src}; materialise hot_snapshot for this partition first.")
    integrity = snap.verify_snapshot(src)
    if integrity != "ok":
        raise dg.Failure(
            f"Snapshot {src} is corrupt ({integrity}); re-materialise "
            "hot_snapshot for this partition. The hot DB was not touched."
        )
    t0_ns, t1_ns = window_ns(context)
    with store.open_analysis() as db:
        st = db.load_window(src, key, t0_ns, t1_ns, keep_partitions=store.keep_partitions)
        holes = check_contiguity(list(db.iter_chunks(key, with_iq=False)), db.gaps(key))
        held = [p.partition_key for p in db.partitions()]
    reports_gone = prune_reports(paths.reports, held)  # right after reading what is held
    frames_gone = Removed()
    for dropped in st.dropped_partitions:
        frames_gone.add(remove_tree(frames_store.partition_folder(paths.spectrograms, dropped)))
    if st.empty:
        context.log.warning(f"partition {key} holds no samples: the window is empty (was the capture running then?)")
    meta = {
        "samples": st.n_samples,
        "chunks": st.n_chunks,
        "seconds_covered": round(st.covered_s, 3),
        "window_s": round(st.duration_s, 1),
        "gaps": st.n_gaps,
        "samples_lost": st.n_samples_lost,
        "coverage_pct": round(100 * st.coverage, 3),
        "empty": st.empty,
        "first_seq": st.first_seq if st.first_seq is not None else -1,
        "last_seq": st.last_seq if st.last_seq is not None else -1,
        "partitions_dropped": ", ".join(st.dropped_partitions) or "none",
        "spectrogram_files_removed": frames_gone.files,
        "report_files_removed": reports_gone.files,
        "bytes_freed": frames_gone.bytes_freed + reports_gone.bytes_freed,
    }
    if st.empty:
        meta["note"] = "empty window: no samples stored in this partition"
    # An unrecorded hole breaks the promise (ERROR); a window the capture covered only in
    # part (it started or stopped inside it, with nothing lost) is worth a WARN.
    passed = not holes and (st.empty or st.coverage >= COVERAGE_MIN)
    return dg.MaterializeResult(
        metadata=meta,
        check_results=[
            dg.AssetCheckResult(
                check_name="window_coverage",
                passed=passed,
                severity=dg.AssetCheckSeverity.ERROR if holes else dg.AssetCheckSeverity.WARN,
                metadata={
                    "coverage_pct": round(100 * st.coverage, 3),
                    "unrecorded_holes": len(holes),
                    "first_hole": str(holes[0]) if holes else "none",
                },
            )
        ],
    )


@dg.asset(
    partitions_def=SENSOR_TIME,
    group_name=GROUP,
    kinds={"numpy"},
    deps=[iq_window],
    check_specs=[
        dg.AssetCheckSpec("frame_count", asset="spectrograms", description="frames written == frames the samples imply")
    ],
)
def spectrograms(context: dg.AssetExecutionContext, store: SdrStore, spectrogram: SpectrogramSettings):
    """STFT frames of the window as 8-bit PNGs, indexed so every pixel maps to time and Hz; the energy detector's bursts."""
    from sdr_assets.dsp.stft import pick_backend

    paths = store.paths()
    backend = pick_backend() if spectrogram.backend == "auto" else spectrogram.backend
    key = str(context.partition_key)
    with store.open_analysis() as db:
        st = frames_store.render_partition(
            db,
            key,
            paths.spectrograms,
            nfft=spectrogram.nfft,
            hop=spectrogram.hop,
            frame_cols=spectrogram.frame_cols,
            backend=backend,
            energy={},  # the energy detector runs here, once per window, on this STFT (store.bursts)
        )
        run = db.energy_run(key)
        on_disk = [f.path for f in db.frames(key)]
    missing = [p for p in on_disk if not (paths.root / p).exists()]
    ms_per_frame = 1000 * (st.stft_s + st.png_s) / max(st.n_frames, 1)
    meta = {
        "frames": st.n_frames,
        "expected_frames": st.expected_frames,
        "samples": st.n_samples,
        "seconds": round(st.seconds, 2),
        "stft_s": round(st.stft_s, 3),
        "png_s": round(st.png_s, 3),
        "ms_per_frame": round(ms_per_frame, 2),
        "energy_bursts": st.n_bursts,
        "energy_s": round(st.energy_s, 3),
        "energy_detector": run.geometry if run else "not run",
        "backend": st.backend,
        "nfft": spectrogram.nfft,
        "hop": spectrogram.hop,
        "frame_cols": spectrogram.frame_cols,
        "folder": dg.MetadataValue.path(st.folder),
    }
    if st.n_frames == 0:
        meta["note"] = "no frames: the window holds no samples"
    return dg.MaterializeResult(
        metadata=meta,
        check_results=[
            dg.AssetCheckResult(
                check_name="frame_count",
                passed=st.n_frames == st.expected_frames and not missing,
                metadata={"frames": st.n_frames, "expected": st.expected_frames, "missing_files": len(missing)},
            )
        ],
    )
