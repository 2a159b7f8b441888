"""Snapshot replica: partition snapshots copied to S3-compatible object storage (no dagster).

Off by default; ``SDR_ASSETS_REPLICA_URL=s3://BUCKET/PREFIX`` turns it on (endpoint and keys
from the standard AWS variables). ``s3`` talks to the object store (boto3, loaded lazily);
``local`` keeps the receipts of verified uploads, catches up what is waiting, and prunes the
local snapshots without losing one the replica does not hold yet. The hot DB itself is never
replicated live (that would add a second writer): the recovery point is one partition.
"""
