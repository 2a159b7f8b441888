"""The local half of the replica: which snapshots are uploaded, catch-up, and local pruning.

A verified upload leaves a small receipt, ``snapshots/.replica/<snapshot>.json`` (the object's
URL, sha256, size and the file's mtime). A snapshot without a valid receipt (none, or the file
changed since) is *waiting*: every sync uploads what is waiting, current partition first, so
an outage of the replica loses nothing as long as the files are still on disk. Local pruning
with the replica on keeps the newest ``keep`` snapshots as before, and beyond them deletes
only uploaded ones; waiting ones are held, at most ``max_waiting`` of them (each is a copy of
the whole hot DB, so the disk needs a bound). A waiting snapshot pruned past that bound is
lost to the replica: it is counted and named, never silent.
"""

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from sdr_assets.errors import ConfigError, ReplicaError
from sdr_assets.replica.s3 import S3Replica, UploadResult
from sdr_assets.store.files import write_output
from sdr_assets.store.snapshot import list_snapshots, remove_snapshot

RECEIPTS = ".replica"


def receipt_path(snapshot: Path) -> Path:
    snapshot = Path(snapshot)
    return snapshot.parent / RECEIPTS / f"{snapshot.name}.json"


def receipt(snapshot: Path) -> dict | None:
    """The upload receipt of ``snapshot`` if it still describes the file on disk, else None."""
    path = receipt_path(snapshot)
    try:
        rec = json.loads(path.read_text())
        st = Path(snapshot).stat()
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if rec.get("n_bytes") != st.st_size or rec.get("mtime_ns") != st.st_mtime_ns:
        return None  # re-materialised since the upload
    return rec


def _write_receipt(snapshot: Path, res: UploadResult, mtime_ns: int) -> None:
    path = receipt_path(snapshot)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_output(
        path,
        json.dumps(
            {
                "url": res.url,
                "sha256": res.sha256,
                "etag": res.etag,
                "n_bytes": res.n_bytes,
                "mtime_ns": mtime_ns,
                "uploaded_ns": time.time_ns(),
            },
            sort_keys=True,
        ),
        "replica receipt",
    )


def waiting(folder: Path) -> list[Path]:
    """Snapshots in ``folder`` not (or no longer) matched by an upload receipt, newest first."""
    return [p for p in list_snapshots(folder) if receipt(p) is None]


@dataclass
class SyncResult:
    uploaded: list[UploadResult] = field(default_factory=list)
    waiting: list[Path] = field(default_factory=list)  # still not in the replica
    pruned_remote: list[str] = field(default_factory=list)
    error: str | None = None  # why the sync stopped early (the replica down, credentials, ...)

    @property
    def n_bytes(self) -> int:
        return sum(r.n_bytes for r in self.uploaded)


def sync_snapshots(
    replica: S3Replica, folder: Path, sensor: str, first: Path | None = None, metadata: dict[str, str] | None = None
) -> SyncResult:
    """Upload every waiting snapshot of ``folder`` (``first`` before the others, then newest
    first), then apply the replica's retention (which never deletes ``first``'s object: a
    backfilled old partition stays). A :class:`ReplicaError` stops the sync and is
    returned in ``error``; what was not uploaded stays waiting for the next sync."""
    todo = waiting(folder)
    if first is not None and Path(first) in todo:
        todo.remove(Path(first))
        todo.insert(0, Path(first))
    out = SyncResult()
    try:
        for path in todo:
            mtime_ns = path.stat().st_mtime_ns
            meta = dict(metadata or {}) if path == first else {}
            res = replica.upload(path, sensor, metadata=meta)
            _write_receipt(path, res, mtime_ns)
            out.uploaded.append(res)
        mine = [r.key for r in out.uploaded[:1] if first is not None and todo[0] == Path(first)]
        out.pruned_remote = replica.prune(sensor, keep_keys=mine)
    except ReplicaError as exc:
        out.error = str(exc)
    out.waiting = waiting(folder)
    return out


@dataclass
class LocalPrune:
    removed: list[Path] = field(default_factory=list)  # beyond keep, already in the replica
    held_waiting: list[Path] = field(default_factory=list)  # beyond keep, waiting: kept
    dropped_waiting: list[Path] = field(default_factory=list)  # beyond keep and max_waiting: lost


def prune_local(folder: Path, keep: int, max_waiting: int) -> LocalPrune:
    """Local retention with the replica on (see the module doc)."""
    if keep < 0 or max_waiting < 0:
        raise ConfigError(f"prune_local(keep={keep}, max_waiting={max_waiting}): both must be >= 0.")
    out = LocalPrune()
    for path in list_snapshots(folder)[keep:]:
        if receipt(path) is not None:
            out.removed.append(path)
        elif len(out.held_waiting) < max_waiting:
            out.held_waiting.append(path)
        else:
            out.dropped_waiting.append(path)
    for path in out.removed + out.dropped_waiting:
        remove_snapshot(path)
    receipts = Path(folder) / RECEIPTS
    if receipts.is_dir():  # receipts of snapshots that are gone
        for rec in receipts.glob("*.json"):
            if not (Path(folder) / rec.name[: -len(".json")]).exists():
                rec.unlink(missing_ok=True)
    return out
