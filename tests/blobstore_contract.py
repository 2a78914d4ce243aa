"""The contract every blob store backend passes (run on the filesystem store in the unit tests
and on S3 against rclone in the integration tests)."""
import threading

import pytest

from gantry.artifacts.blobstore import BlobNotFound, chunk_key
from gantry.artifacts.chunking import digest_of


def check_contract(store, tmp_path):
    data = b"x" * 1000 + b"tail"
    key = chunk_key(digest_of(data))
    assert not store.has(key)
    with pytest.raises(BlobNotFound):
        store.get(key)
    assert store.put(key, data) is True
    assert store.has(key) and store.get(key) == data
    assert store.put(key, data) is False          # present: not uploaded again
    assert store.get(key) == data

    # concurrent writers of the same content-addressed key: one copy, never partial
    big = bytes(range(256)) * 40_000
    big_key = chunk_key(digest_of(big))
    threads = [threading.Thread(target=store.put, args=(big_key, big)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get(big_key) == big

    src = tmp_path / "src.bin"
    src.write_bytes(big)
    store.put_file("files/a.bin", src)
    store.get_file("files/a.bin", tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == big

    store.put("list/a/1", b"1")
    store.put("list/a/2", b"2")
    store.put("list/b/1", b"3")
    assert store.list("list/a/") == ["list/a/1", "list/a/2"]
    assert store.list("list/") == ["list/a/1", "list/a/2", "list/b/1"]
    assert store.list("nothing/") == []
