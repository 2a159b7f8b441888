"""snapshot_replica: the partition's snapshot (and any still waiting) copied to object storage.

Wiring only: the work is in sdr_assets.replica. Its own asset, after hot_snapshot, so a replica
that is down or refuses the keys never fails the local snapshot: the check WARNs, the snapshot
stays waiting on disk, and the next materialisation of any partition uploads it.
"""

import dagster as dg

from sdr_assets.defs.analysis import hot_snapshot, snapshot_path
from sdr_assets.defs.partitions import SENSOR_TIME, sensor_of
from sdr_assets.defs.resources import SdrStore

GROUP = "analysis"


@dg.asset(
    partitions_def=SENSOR_TIME,
    group_name=GROUP,
    kinds={"s3"},
    deps=[hot_snapshot],
    check_specs=[
        dg.AssetCheckSpec(
            "replica_upload",
            asset="snapshot_replica",
            description="every local snapshot is in the replica, verified (sha256, size, ETag); WARN "
            "while some wait for a replica that is down (a later run uploads them)",
        )
    ],
)
def snapshot_replica(context: dg.AssetExecutionContext, store: SdrStore):
    """Off-site copy of the partition's snapshot in S3-compatible storage (SDR_ASSETS_REPLICA_URL)."""
    from sdr_assets.replica.local import sync_snapshots

    replica = store.replica()
    if replica is None:
        note = "off: set SDR_ASSETS_REPLICA_URL=s3://BUCKET/PREFIX to copy snapshots off this disk"
        return dg.MaterializeResult(
            metadata={"replica": "off", "note": note},
            check_results=[
                dg.AssetCheckResult(
                    check_name="replica_upload",
                    passed=True,
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={"replica": "off"},
                )
            ],
        )
    sensor = sensor_of(context)
    key = str(context.partition_key)
    paths = store.paths(sensor)
    this = snapshot_path(store, key)
    res = sync_snapshots(replica, paths.snapshots, sensor, first=this, metadata={"partition": key})
    mine = next((u for u in res.uploaded if u.key.endswith("/" + this.name)), None)
    if res.error:
        context.log.warning(f"replica: {res.error}")
    for u in res.uploaded:
        context.log.info(
            f"replica: {u.url} {u.n_bytes / 1e6:.1f} MB in {u.seconds:.2f} s "
            f"({u.parts} part(s), sha256 {u.sha256[:12]}..., verified)"
        )
    meta = {
        "replica": replica.config.url,
        "endpoint": replica.config.endpoint_url or "AWS",
        "url": mine.url if mine else "not uploaded",
        "sha256": mine.sha256 if mine else "-",
        "uploaded": len(res.uploaded),
        "uploaded_MB": round(res.n_bytes / 1e6, 2),
        "upload_seconds": round(sum(u.seconds for u in res.uploaded), 3),
        "MB/s": round(res.n_bytes / 1e6 / max(sum(u.seconds for u in res.uploaded), 1e-9), 1) if res.uploaded else 0.0,
        "caught_up": len([u for u in res.uploaded if u is not mine]),
        "waiting": len(res.waiting),
        "replica_pruned": len(res.pruned_remote),
        "error": res.error or "none",
    }
    if not this.exists():
        meta["note"] = f"no local snapshot {this.name} (pruned already?); uploaded what was waiting"
    passed = res.error is None and not res.waiting
    return dg.MaterializeResult(
        metadata=meta,
        check_results=[
            dg.AssetCheckResult(
                check_name="replica_upload",
                passed=passed,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "waiting": len(res.waiting),
                    "error": res.error or "none",
                    "waiting_files": ", ".join(p.name for p in res.waiting) or "none",
                },
            )
        ],
    )
