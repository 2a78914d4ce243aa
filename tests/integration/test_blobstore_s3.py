"""The blob store contract on S3 through boto3, against a real `rclone serve s3`."""
import uuid

from blobstore_contract import check_contract
from gantry.artifacts.blobstore import S3BlobStore


def test_s3_store_contract(stack, tmp_path):
    cfg = stack.config()
    region = cfg.regions[-1]
    bucket = f"contract-{uuid.uuid4().hex[:8]}"
    store = S3BlobStore(region.s3_endpoint, bucket, cfg.s3_access_key, cfg.s3_secret_key)
    store.ensure_bucket()
    check_contract(store, tmp_path)
