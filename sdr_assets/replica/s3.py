"""Snapshots to S3-compatible object storage (AWS S3, MinIO, SeaweedFS, ...) with boto3.

One object per partition snapshot: ``s3://BUCKET/PREFIX/SENSOR/hot-2026-11-23-0400.db``, its
sha256 in the object's user metadata (``x-amz-meta-sha256``). An upload is multipart above
``part_bytes`` and is verified afterwards: size, the sha256 metadata, and the ETag against the
MD5 (or multipart MD5-of-MD5s) of the local bytes, so the server is known to hold exactly what
was sent. A restore downloads, checks the sha256 and ``PRAGMA integrity_check`` (plus each
chunk's CRC-32) before the file gets its final name.

boto3 is imported lazily: the capture service never loads it. Every botocore failure becomes
a :class:`ReplicaError` whose message says what to do.
"""

import hashlib
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sdr_assets.errors import ConfigError, ReplicaError
from sdr_assets.records import NS_PER_S

ENV_URL = "SDR_ASSETS_REPLICA_URL"
MIB = 2**20
DEFAULT_PART_BYTES = 64 * MIB  # multipart threshold and part size (S3: 5 MiB minimum)
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_MD5_ETAG_RE = re.compile(r"[0-9a-f]{32}(-[0-9]+)?")
_CREDENTIAL_CODES = {
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
    "InvalidToken",
    "ExpiredToken",
    "AccessDenied",
    "403",
    "InvalidClientTokenId",
    "AuthorizationHeaderMalformed",
}
_SNAPSHOT_RE = re.compile(r"hot-[0-9]{4}-[0-9]{2}-[0-9]{2}-[0-9]{4}\.db")


def parse_url(url: str) -> tuple[str, str]:
    """``s3://BUCKET/PREFIX`` -> (bucket, prefix without slashes at either end)."""
    m = re.fullmatch(r"s3://([^/]+)(?:/(.*))?", (url or "").strip())
    if not m or not _BUCKET_RE.fullmatch(m.group(1)):
        raise ConfigError(
            f"replica URL {url!r} is not valid: use s3://BUCKET/PREFIX with a bucket of "
            f"3-63 lower-case letters, digits, '.' or '-' (e.g. s3://sdr-backups/site-a); "
            f"set it in {ENV_URL}."
        )
    return m.group(1), (m.group(2) or "").strip("/")


@dataclass(frozen=True)
class ReplicaConfig:
    """Where snapshots go, how to sign in, and how many the replica keeps (its own retention)."""

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None  # None: AWS itself
    access_key_id: str | None = None  # None: boto3's own chain (env, ~/.aws, instance role)
    secret_access_key: str | None = None
    session_token: str | None = None
    region: str = "us-east-1"
    keep_count: int = 48  # newest partitions kept per sensor (by partition time)
    keep_age_s: float | None = 30 * 86400.0  # and none uploaded longer ago than this
    part_bytes: int = DEFAULT_PART_BYTES
    max_concurrency: int = 4  # parallel part uploads
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0
    max_attempts: int = 3  # botocore retries, standard mode

    def __post_init__(self) -> None:
        if self.keep_count < 1:
            raise ConfigError(f"replica keep_count={self.keep_count}: keep at least 1 snapshot.")
        if self.keep_age_s is not None and not self.keep_age_s > 0:
            raise ConfigError(f"replica keep_age_s={self.keep_age_s}: must be > 0 (or None: no age limit).")
        if self.part_bytes < 5 * MIB:
            raise ConfigError(f"replica part_bytes={self.part_bytes}: S3 parts are at least 5 MiB.")

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str], url: str = "", **settings) -> "ReplicaConfig | None":
        """The replica of ``url`` (else ``$SDR_ASSETS_REPLICA_URL``) with the standard AWS
        variables; None when neither names one (the replica is off)."""
        url = (url or environ.get(ENV_URL, "")).strip()
        if not url:
            return None
        bucket, prefix = parse_url(url)

        def env(*names: str) -> str | None:
            return next((environ[n].strip() for n in names if environ.get(n, "").strip()), None)

        return cls(
            bucket=bucket,
            prefix=prefix,
            endpoint_url=env("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
            access_key_id=env("AWS_ACCESS_KEY_ID"),
            secret_access_key=env("AWS_SECRET_ACCESS_KEY"),
            session_token=env("AWS_SESSION_TOKEN"),
            region=env("AWS_REGION", "AWS_DEFAULT_REGION") or "us-east-1",
            **settings,
        )


@dataclass(frozen=True)
class RemoteSnapshot:
    key: str
    n_bytes: int
    last_modified_ns: int

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class UploadResult:
    url: str  # s3://bucket/key
    key: str
    n_bytes: int
    sha256: str
    etag: str
    parts: int  # 1: a single PUT
    seconds: float

    @property
    def mb_per_s(self) -> float:
        return self.n_bytes / 1e6 / max(self.seconds, 1e-9)


@dataclass(frozen=True)
class RestoreResult:
    path: Path
    url: str
    n_bytes: int
    sha256: str
    integrity: str  # "ok" (else restore raised)
    seconds: float


def file_digests(path: Path, part_bytes: int) -> tuple[str, str, int]:
    """(sha256 hex, the S3 ETag an upload in ``part_bytes`` parts gets, number of parts), one read."""
    sha, part_md5s, buf_bytes = hashlib.sha256(), [], 0
    md5 = hashlib.md5()
    with open(path, "rb") as fh:
        while block := fh.read(min(8 * MIB, part_bytes)):
            sha.update(block)
            while block:  # a block may cross a part boundary
                take = min(len(block), part_bytes - buf_bytes)
                md5.update(block[:take])
                buf_bytes += take
                block = block[take:]
                if buf_bytes == part_bytes:
                    part_md5s.append(md5.digest())
                    md5, buf_bytes = hashlib.md5(), 0
    if buf_bytes or not part_md5s:
        part_md5s.append(md5.digest())
    if len(part_md5s) == 1:
        return sha.hexdigest(), part_md5s[0].hex(), 1
    return sha.hexdigest(), f"{hashlib.md5(b''.join(part_md5s)).hexdigest()}-{len(part_md5s)}", len(part_md5s)


def sha256_file(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(8 * MIB):
            sha.update(block)
    return sha.hexdigest()


class S3Replica:
    """The replica of one :class:`ReplicaConfig`: upload, list, prune, restore."""

    def __init__(self, config: ReplicaConfig) -> None:
        self.config = config
        self._client = None

    @property
    def client(self):
        if self._client is None:
            import boto3
            from botocore.config import Config

            c = self.config
            session = boto3.session.Session(
                aws_access_key_id=c.access_key_id,
                aws_secret_access_key=c.secret_access_key,
                aws_session_token=c.session_token,
                region_name=c.region,
            )
            self._client = session.client(
                "s3",
                endpoint_url=c.endpoint_url,
                config=Config(
                    connect_timeout=c.connect_timeout_s,
                    read_timeout=c.read_timeout_s,
                    retries={"max_attempts": c.max_attempts, "mode": "standard"},
                    s3={"addressing_style": "path" if c.endpoint_url else "auto"},
                ),
            )
        return self._client

    # -- names ---------------------------------------------------------------------------
    def object_key(self, sensor: str, file_name: str) -> str:
        return "/".join(p for p in (self.config.prefix, sensor, file_name) if p)

    def object_url(self, key: str) -> str:
        return f"s3://{self.config.bucket}/{key}"

    def _where(self) -> str:
        return f"{self.config.url} ({self.config.endpoint_url or 'AWS'})"

    # -- operations ----------------------------------------------------------------------
    def list_snapshots(self, sensor: str) -> list[RemoteSnapshot]:
        """The sensor's snapshot objects, oldest partition first."""
        prefix = self.object_key(sensor, "") + "/"
        out: list[RemoteSnapshot] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.config.bucket, Prefix=prefix)
            for page in pages:
                for obj in page.get("Contents", []):
                    name = obj["Key"][len(prefix) :]
                    if _SNAPSHOT_RE.fullmatch(name):
                        out.append(
                            RemoteSnapshot(
                                obj["Key"], int(obj["Size"]), int(obj["LastModified"].timestamp() * NS_PER_S)
                            )
                        )
        except _transport_errors() as exc:
            raise self._explain(exc, f"listing {self.object_url(prefix)}") from exc
        return sorted(out, key=lambda r: r.name)

    def upload(self, path: Path, sensor: str, metadata: Mapping[str, str] = ()) -> UploadResult:
        """Upload one snapshot file (multipart above ``part_bytes``), then verify the object."""
        from boto3.s3.transfer import TransferConfig
        from s3transfer.utils import ChunksizeAdjuster

        path = Path(path)
        c = self.config
        n_bytes = path.stat().st_size
        part_bytes = ChunksizeAdjuster().adjust_chunksize(c.part_bytes, n_bytes)  # as s3transfer will
        sha, etag, parts = file_digests(path, part_bytes)
        key = self.object_key(sensor, path.name)
        meta = {"sha256": sha, "sensor": sensor, **{str(k): str(v) for k, v in dict(metadata).items()}}
        t0 = time.perf_counter()
        try:
            self.client.upload_file(
                str(path),
                c.bucket,
                key,
                ExtraArgs={"Metadata": meta},
                Config=TransferConfig(
                    multipart_threshold=part_bytes, multipart_chunksize=part_bytes, max_concurrency=c.max_concurrency
                ),
            )
            head = self.client.head_object(Bucket=c.bucket, Key=key)
        except _transport_errors() as exc:
            raise self._explain(exc, f"uploading {path.name} to {self.object_url(key)}") from exc
        seconds = time.perf_counter() - t0
        got_etag = str(head.get("ETag", "")).strip('"')
        problems = []
        if int(head["ContentLength"]) != n_bytes:
            problems.append(f"size {head['ContentLength']} != {n_bytes}")
        if head.get("Metadata", {}).get("sha256") != sha:
            problems.append("the sha256 metadata is missing or different")
        if _MD5_ETAG_RE.fullmatch(got_etag) and got_etag != etag:
            problems.append(f"ETag {got_etag} != {etag} computed from the local file")
        if problems:
            raise ReplicaError(
                f"{self.object_url(key)} does not match {path} after the upload "
                f"({'; '.join(problems)}); the local snapshot is kept and the next run "
                "uploads it again."
            )
        return UploadResult(self.object_url(key), key, n_bytes, sha, got_etag, parts, seconds)

    def prune(self, sensor: str, *, keep_keys=(), now_ns: int | None = None) -> list[str]:
        """The replica's own retention for ``sensor``: the newest ``keep_count`` partitions,
        none uploaded more than ``keep_age_s`` ago; ``keep_keys`` always stay.
        Returns the deleted keys."""
        c = self.config
        now_ns = time.time_ns() if now_ns is None else now_ns
        held = self.list_snapshots(sensor)
        drop = held[: -c.keep_count]
        if c.keep_age_s is not None:
            cutoff_ns = now_ns - int(c.keep_age_s * NS_PER_S)
            drop += [r for r in held[-c.keep_count :] if r.last_modified_ns < cutoff_ns]
        drop = [r for r in drop if r.key not in set(keep_keys)]
        try:
            for r in drop:
                self.client.delete_object(Bucket=c.bucket, Key=r.key)
        except _transport_errors() as exc:
            raise self._explain(exc, f"pruning {self.object_url(self.object_key(sensor, ''))}") from exc
        return [r.key for r in drop]

    def restore(self, sensor: str, file_name: str, out_dir: Path) -> RestoreResult:
        """Download ``sensor``'s snapshot ``file_name`` into ``out_dir`` and prove it sound
        (sha256 against the object's metadata, then ``PRAGMA integrity_check`` and the chunks'
        CRC-32). Nothing is left in ``out_dir`` unless it passes; an existing file is never
        overwritten."""
        from sdr_assets.store.snapshot import verify_snapshot

        out_dir = Path(out_dir)
        dest = out_dir / file_name
        if dest.exists():
            raise ReplicaError(f"{dest} already exists; remove it or choose another --out folder.")
        key = self.object_key(sensor, file_name)
        url = self.object_url(key)
        try:
            head = self.client.head_object(Bucket=self.config.bucket, Key=key)
        except _transport_errors() as exc:
            if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                raise self._not_found(sensor, file_name, url) from exc
            raise self._explain(exc, f"reading {url}") from exc
        want = head.get("Metadata", {}).get("sha256")
        if not want:
            raise ReplicaError(
                f"{url} has no sha256 in its metadata, so it cannot be verified; it was "
                "not uploaded by sdr-assets. Nothing was written."
            )
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = out_dir / f".{file_name}.part-{os.getpid()}"
        t0 = time.perf_counter()
        try:
            try:
                self.client.download_file(self.config.bucket, key, str(tmp))
            except _transport_errors() as exc:
                raise self._explain(exc, f"downloading {url}") from exc
            got = sha256_file(tmp)
            if got != want:
                raise ReplicaError(
                    f"{url} is corrupt: its sha256 is {got[:16]}..., the upload recorded "
                    f"{want[:16]}...; not restored (nothing was written). Restore another "
                    "partition, or re-upload this one from a sensor that still holds it."
                )
            integrity = verify_snapshot(tmp)
            if integrity != "ok":
                raise ReplicaError(
                    f"{url} matches its sha256 but fails the integrity check ({integrity}): "
                    "it was already damaged when uploaded; not restored."
                )
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return RestoreResult(dest, url, dest.stat().st_size, got, integrity, time.perf_counter() - t0)

    # -- errors --------------------------------------------------------------------------
    def _not_found(self, sensor: str, file_name: str, url: str) -> ReplicaError:
        held = [r.name for r in self.list_snapshots(sensor)]
        have = (
            f"it holds {len(held)} snapshot(s) of sensor {sensor!r}, {held[0]} .. {held[-1]}"
            if held
            else f"it holds no snapshot of sensor {sensor!r}"
        )
        return ReplicaError(f"no replica of {file_name} at {url}; {have}.")

    def _explain(self, exc: BaseException, what: str) -> ReplicaError:
        """One line: what failed, why, and what to do."""
        code = _error_code(exc)
        where = self._where()
        if code in _CREDENTIAL_CODES:
            return ReplicaError(
                f"{what} failed: the replica {where} refused the credentials ({code}); "
                "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and the key's "
                "rights on the bucket)."
            )
        if code == "NoSuchBucket":
            return ReplicaError(
                f"{what} failed: bucket {self.config.bucket!r} does not exist at {where}; "
                "create it (e.g. `aws s3 mb s3://BUCKET`) or fix SDR_ASSETS_REPLICA_URL."
            )
        name = type(exc).__name__
        if name == "NoCredentialsError":
            return ReplicaError(
                f"{what} failed: no credentials for the replica {where}; set "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."
            )
        if name in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError"):
            return ReplicaError(
                f"{what} failed: the replica {where} cannot be reached ({exc}); the local "
                "snapshot is kept and a later run uploads it."
            )
        detail = code or name
        return ReplicaError(f"{what} failed ({detail}: {_message(exc)}); the replica is {where}.")


def _transport_errors() -> tuple[type[BaseException], ...]:
    """What boto3 raises for a refused or failed request (never a bug of ours)."""
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    return BotoCoreError, ClientError, Boto3Error, OSError


def _error_code(exc: BaseException) -> str:
    """The S3 error code of a botocore ClientError, also when wrapped (S3UploadFailedError)."""
    seen = exc
    while seen is not None:
        response = getattr(seen, "response", None)
        if isinstance(response, dict) and response.get("Error", {}).get("Code"):
            return str(response["Error"]["Code"])
        seen = seen.__cause__ or seen.__context__
    m = re.search(r"An error occurred \(([A-Za-z0-9]+)\)", str(exc))  # S3UploadFailedError's text
    return m.group(1) if m else ""


def _message(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
