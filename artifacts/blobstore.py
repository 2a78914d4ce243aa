"""A region's blob store through the S3 API (boto3): multipart, parallel parts, retries."""
from __future__ import annotations

from pathlib import Path

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError


class S3BlobStore:
    def __init__(self, endpoint: str, bucket: str, access_key: str, secret_key: str):
        self.bucket = bucket
        self.s3 = boto3.client(
            "s3", endpoint_url=endpoint, aws_access_key_id=access_key,
            aws_secret_access_key=secret_key, region_name="us-east-1",
            config=Config(retries={"max_attempts": 8, "mode": "standard"},
                          s3={"addressing_style": "path"}, connect_timeout=5, read_timeout=60))
        self.transfer = TransferConfig(multipart_threshold=64 << 20, multipart_chunksize=64 << 20,
                                       max_concurrency=4)

    def ensure_bucket(self) -> None:
        try:
            self.s3.head_bucket(Bucket=self.bucket)
        except ClientError:
            self.s3.create_bucket(Bucket=self.bucket)

    def exists(self, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def put_file(self, key: str, path: Path) -> None:
        """Idempotent: content-addressed keys that exist already are not uploaded again."""
        if not self.exists(key):
            self.s3.upload_file(str(path), self.bucket, key, Config=self.transfer)

    def get_file(self, key: str, path: Path) -> None:
        self.s3.download_file(self.bucket, key, str(path), Config=self.transfer)

    def size(self, key: str) -> int:
        return self.s3.head_object(Bucket=self.bucket, Key=key)["ContentLength"]


def artifact_key(digest: str) -> str:
    algo, hexdigest = digest.split(":", 1)
    return f"artifacts/{algo}/{hexdigest[:2]}/{hexdigest}.tar"
