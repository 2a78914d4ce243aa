import pytest

from blobstore_contract import check_contract
from gantry.artifacts.blobstore import FsBlobStore


def test_filesystem_store_contract(tmp_path):
    check_contract(FsBlobStore(tmp_path / "store"), tmp_path)


def test_keys_cannot_escape_the_store(tmp_path):
    with pytest.raises(ValueError):
        FsBlobStore(tmp_path / "store").put("../../etc/x", b"x")


def test_no_temp_files_left_behind(tmp_path):
    s = FsBlobStore(tmp_path / "store")
    s.put("a/b", b"1")
    assert [p.name for p in (tmp_path / "store" / "a").iterdir()] == ["b"]
