"""Blob stores: a filesystem store and S3 (boto3). Same contract: writes are idempotent and
atomic (a reader never sees a partial object), and content-addressed keys already present are
not written again."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from gantry.artifacts.atomic import write_atomically


def chunk_key(digest: str) -> str:
    algo, hexd = digest.split(":", 1)
    return f"chunks/{algo}/{hexd[:2]}/{hexd}"


def digest_of_key(key: str) -> str | None:
    """The digest a chunk key names (None for anything else under chunks/)."""
    parts = key.split("/")
    return f"{parts[1]}:{parts[3]}" if len(parts) == 4 and parts[0] == "chunks" else None


def manifest_key(digest: str) -> str:
    algo, hexd = digest.split(":", 1)
    return f"manifests/{algo}/{hexd}.json"


class BlobNotFound(KeyError):
    pass


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    written: float    # epoch seconds (S3 gives whole seconds)


class BlobStore(Protocol):
    def has(self, key: str) -> bool: ...
    def put(self, key: str, data: bytes) -> bool: ...          # True if written, False if present
    def replace(self, key: str, data: bytes) -> None: ...      # written whatever is there
    def get(self, key: str) -> bytes: ...
    def put_file(self, key: str, path: Path) -> None: ...
    def get_file(self, key: str, path: Path) -> None: ...
    def list(self, prefix: str) -> list[str]: ...             # keys under prefix, sorted
    def list_meta(self, prefix: str) -> list[StoredObject]: ...  # the same with size and time written
    def delete(self, keys: list[str]) -> None: ...             # gone; a missing key is no error


class FsBlobStore:
    """Objects as files under `root`; written to a temp file and renamed into place."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        p = (self.root / key).resolve()
        if self.root.resolve() not in p.parents:
            raise ValueError(f"key {key!r} escapes the store")
        return p

    def has(self, key: str) -> bool:
        return self._path(key).is_file()

    def put(self, key: str, data: bytes) -> bool:
        if self.has(key):
            return False
        write_atomically(self._path(key), data)
        return True

    def replace(self, key: str, data: bytes) -> None:
        write_atomically(self._path(key), data)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(key)

    def put_file(self, key: str, path: Path) -> None:
        self.put(key, Path(path).read_bytes())

    def get_file(self, key: str, path: Path) -> None:
        Path(path).write_bytes(self.get(key))

    def list(self, prefix: str) -> list[str]:
        root = self.root.resolve()
        return sorted(k for k in (p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
                      if k.startswith(prefix) and not Path(k).name.startswith(".tmp-"))

    def list_meta(self, prefix: str) -> list[StoredObject]:
        out = []
        for key in self.list(prefix):
            try:
                st = self._path(key).stat()
            except FileNotFoundError:
                continue
            out.append(StoredObject(key, st.st_size, st.st_mtime))
        return out

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            self._path(key).unlink(missing_ok=True)


class S3BlobStore:
    """A bucket through the S3 API: multipart for large objects, parallel parts, retries with
    backoff (botocore standard mode). S3 PUTs are atomic per object."""

    def __init__(self, endpoint: str, bucket: str, access_key: str, secret_key: str, max_attempts: int = 8,
                 timeout_s: float = 60, ca_file: str = ""):
        """`ca_file`: the CA an https endpoint's certificate is checked against (default: the system's roots)."""
        self.bucket = bucket
        self.s3 = boto3.client(
            "s3", endpoint_url=endpoint, aws_access_key_id=access_key, verify=ca_file or None,
            aws_secret_access_key=secret_key, region_name="us-east-1",
            config=Config(retries={"max_attempts": max_attempts, "mode": "standard"},
                          # Over HTTPS the body is not hashed into the signature (UNSIGNED-PAYLOAD): TLS
                          # carries it intact, and chunks and manifests are checked against their digests
                          # when read. Hashing it was 45% of a 5 MiB PUT's client CPU.
                          s3={"addressing_style": "path", "payload_signing_enabled": not endpoint.startswith("http://")},
                          signature_version="s3v4",   # presigned URLs too
                          connect_timeout=min(5, timeout_s), read_timeout=timeout_s,
                          max_pool_connections=16,
                          # Over HTTPS botocore streams bodies aws-chunked with a trailing checksum,
                          # which rclone's S3 server refuses (MissingContentLength); chunks are
                          # content-addressed and verified by their digest anyway.
                          request_checksum_calculation="when_required", response_checksum_validation="when_required"))
        self.transfer = TransferConfig(multipart_threshold=64 << 20, multipart_chunksize=64 << 20,
                                       max_concurrency=4)

    def reachable(self) -> bool:
        """The bucket answers with these credentials (raises otherwise)."""
        self.s3.head_bucket(Bucket=self.bucket)
        return True

    def ensure_bucket(self) -> None:
        try:
            self.s3.head_bucket(Bucket=self.bucket)
        except ClientError:
            self.s3.create_bucket(Bucket=self.bucket)

    def has(self, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def put(self, key: str, data: bytes) -> bool:
        if self.has(key):
            return False
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data)
        return True

    def replace(self, key: str, data: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data)

    def get(self, key: str) -> bytes:
        try:
            return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise BlobNotFound(key)
            raise

    def presign(self, key: str, expires_s: int = 900) -> str:
        """A URL that GETs `key` without credentials until it expires."""
        return self.s3.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": key},
                                              ExpiresIn=expires_s)

    def put_file(self, key: str, path: Path) -> None:
        self.s3.upload_file(str(path), self.bucket, key, Config=self.transfer)

    def get_file(self, key: str, path: Path) -> None:
        self.s3.download_file(self.bucket, key, str(path), Config=self.transfer)

    def list(self, prefix: str) -> list[str]:
        return [o.key for o in self.list_meta(prefix)]

    def list_meta(self, prefix: str) -> list[StoredObject]:
        out = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            out += [StoredObject(o["Key"], o["Size"], o["LastModified"].timestamp()) for o in page.get("Contents", [])]
        return sorted(out, key=lambda o: o.key)

    def delete(self, keys: list[str]) -> None:
        for i in range(0, len(keys), 1000):   # DeleteObjects takes 1,000 keys at most
            batch = keys[i:i + 1000]
            out = self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
            if errors := [e for e in out.get("Errors", []) if e.get("Code") not in ("NoSuchKey", "404")]:
                raise OSError(f"{len(errors)} objects not deleted from {self.bucket}, first: {errors[0]}")


def s3_for(region, access_key: str, secret_key: str, **kw) -> S3BlobStore:
    """The blob store of a `gantry.topology.Region`."""
    return S3BlobStore(region.s3_endpoint, region.bucket, access_key, secret_key, ca_file=region.ca_file, **kw)
