"""The blob store contract on S3 through boto3, against a real `rclone serve s3`."""
import time
import uuid

from blobstore_contract import check_contract
from gantry.artifacts.blobstore import S3BlobStore


def test_s3_store_contract(stack, tmp_path):
    cfg = stack.config()
    region = cfg.regions[-1]
    bucket = f"contract-{uuid.uuid4().hex[:8]}"
    store = S3BlobStore(region.s3_endpoint, bucket, cfg.s3_access_key, cfg.s3_secret_key, ca_file=region.ca_file)
    store.ensure_bucket()
    check_contract(store, tmp_path)


def test_a_presigned_url_reads_one_object_and_nothing_else(stack):
    import httpx
    cfg = stack.config()
    region = cfg.regions[-1]
    store = S3BlobStore(region.s3_endpoint, f"presign-{uuid.uuid4().hex[:8]}", cfg.s3_access_key, cfg.s3_secret_key,
                        ca_file=region.ca_file)
    http = httpx.Client(verify=cfg.http_verify())
    store.ensure_bucket()
    store.put("chunks/a", b"alpha")
    store.put("chunks/b", b"beta")
    url = store.presign("chunks/a", expires_s=60)
    assert cfg.s3_secret_key not in url
    r = http.get(url)
    assert r.status_code == 200 and r.content == b"alpha"
    assert http.get(url.replace("chunks/a", "chunks/b")).status_code == 403   # the signature covers the key
    short = store.presign("chunks/a", expires_s=1)
    deadline = time.monotonic() + 10
    while (late := http.get(short)).status_code == 200:   # good until it expires, then never again
        assert time.monotonic() < deadline, "the URL never expired"
        time.sleep(0.2)
    assert late.status_code in (400, 403) and b"alpha" not in late.content, late   # expired (rclone says 400)
