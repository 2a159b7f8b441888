"""`sdr-assets restore`: a partition's snapshot back from the replica, verified (docs/replica.md)."""

import os
import re
from pathlib import Path

import click

from sdr_assets.paths import DEFAULT_SENSOR
from sdr_assets.records import utc_iso

_TIME_KEY_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}-[0-9]{2}:[0-9]{2}")


@click.command()
@click.option(
    "--partition",
    "partition_key",
    required=True,
    metavar="KEY",
    help="The partition: a time key like 2026-11-23-04:00 (of --sensor) or a full key like 'roof|2026-11-23-04:00'.",
)
@click.option(
    "--sensor",
    default=DEFAULT_SENSOR,
    show_default=True,
    metavar="NAME",
    help="The radio sensor whose snapshot to fetch (it need not be registered here: "
    "a restore often runs on a new machine).",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for hot-KEY.db (created if missing; an existing file is never replaced).",
)
@click.option(
    "--replica-url",
    default="",
    metavar="s3://BUCKET/PREFIX",
    help="Default: $SDR_ASSETS_REPLICA_URL. Endpoint and keys: the standard AWS variables.",
)
def restore(partition_key: str, sensor: str, out_dir: Path, replica_url: str) -> None:
    """Download a partition's snapshot from the replica; check its sha256 and integrity."""
    from sdr_assets.errors import ConfigError
    from sdr_assets.replica.s3 import ENV_URL, ReplicaConfig, S3Replica
    from sdr_assets.store.sensors import KEY_SEP, check_name, split_key
    from sdr_assets.store.snapshot import hot_time_range, snapshot_file_name

    if KEY_SEP in partition_key:
        key_sensor, time_key = split_key(partition_key)
        if sensor not in (DEFAULT_SENSOR, key_sensor):
            raise ConfigError(
                f"--partition {partition_key!r} names sensor {key_sensor!r} but --sensor is "
                f"{sensor!r}; give one of them."
            )
        sensor = key_sensor
    else:
        time_key = partition_key
    check_name(sensor)
    if not _TIME_KEY_RE.fullmatch(time_key):
        raise ConfigError(
            f"--partition {partition_key!r}: the time part must look like 2026-11-23-04:00 "
            "(a partition key as the Dagster UI shows it)."
        )
    config = ReplicaConfig.from_env(os.environ, replica_url)
    if config is None:
        raise ConfigError(
            f"no replica to restore from: set {ENV_URL}=s3://BUCKET/PREFIX (and "
            "AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or pass --replica-url."
        )
    res = S3Replica(config).restore(sensor, snapshot_file_name(time_key), out_dir)
    held = hot_time_range(res.path)
    span = "no chunks" if held is None else f"chunks {' .. '.join(utc_iso(t, sep=' ', suffix='') for t in held)} UTC"
    click.echo(f"restored {res.url} -> {res.path}: {res.n_bytes / 1e6:.1f} MB in {res.seconds:.2f} s")
    click.echo(f"sha256 ok ({res.sha256}); integrity_check ok; {span}")
