import io
import os
import tarfile

import pytest

from gantry.artifacts.packing import OutputLimits, OutputTooLarge, UnsafeOutput, pack


def make_tree(root):
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "app").write_bytes(b"#!/bin/sh\necho hi\n")
    os.chmod(root / "bin" / "app", 0o750)
    (root / "data.txt").write_text("data")
    os.symlink("bin/app", root / "run")
    return root


def packed(root):
    buf = io.BytesIO()
    digest, size = pack(root, buf)
    return digest, size, buf.getvalue()


def test_same_tree_same_bytes_whatever_the_times(tmp_path):
    a = make_tree(tmp_path / "a")
    b = make_tree(tmp_path / "b")
    os.utime(b / "data.txt", (1, 1))
    da, sa, ba = packed(a)
    db, sb, bb = packed(b)
    assert (da, sa) == (db, sb) and ba == bb and len(ba) == sa
    assert da.startswith("sha256:")


def test_tar_holds_the_files_with_normalised_modes(tmp_path):
    _, _, data = packed(make_tree(tmp_path / "a"))
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        members = {m.name: m for m in t.getmembers()}
        assert list(members) == ["bin", "bin/app", "data.txt", "run"]
        assert members["bin/app"].mode == 0o755 and members["data.txt"].mode == 0o644
        assert members["run"].issym() and members["run"].linkname == "bin/app"
        assert t.extractfile("data.txt").read() == b"data"


@pytest.mark.parametrize("target", ["/etc/passwd", "../../outside", "bin/../../x"])
def test_links_out_of_the_output_are_refused(tmp_path, target):
    root = make_tree(tmp_path / "a")
    os.symlink(target, root / "bad")
    with pytest.raises(UnsafeOutput, match="outside"):
        packed(root)


def test_fifo_is_refused(tmp_path):
    root = make_tree(tmp_path / "a")
    os.mkfifo(root / "pipe")
    with pytest.raises(UnsafeOutput, match="not a regular file"):
        packed(root)


def test_a_chain_of_relative_links_that_ends_outside_is_refused(tmp_path):
    # each link alone stays inside; followed one after another they climb out
    root = make_tree(tmp_path / "a")
    d = root
    for i in range(10):
        d = d / f"d{i}"
        d.mkdir()
    os.symlink("d0/d1/d2/d3/d4/d5/d6/d7/d8/d9", root / "deep")
    os.symlink("deep/" + "../" * 10 + "..", root / "up")
    with pytest.raises(UnsafeOutput, match="through another symlink"):
        packed(root)


def test_a_link_to_a_link_is_refused(tmp_path):
    root = make_tree(tmp_path / "a")
    os.symlink("run", root / "again")
    with pytest.raises(UnsafeOutput, match="through another symlink"):
        packed(root)


def test_the_output_root_is_never_followed(tmp_path):
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key").write_text("s3cr3t")
    os.symlink(secret, tmp_path / "out")
    with pytest.raises(OSError):
        packed(tmp_path / "out")


def test_caps_count_sparse_files_in_full(tmp_path):
    root = make_tree(tmp_path / "a")
    with open(root / "sparse", "wb") as f:
        f.truncate(1 << 30)
    with pytest.raises(OutputTooLarge, match="GANTRY_MAX_ARTIFACT_BYTES"):
        pack(root, io.BytesIO(), OutputLimits(max_bytes=100 << 20))
    with pytest.raises(OutputTooLarge, match="GANTRY_MAX_ARTIFACT_FILES"):
        pack(root, io.BytesIO(), OutputLimits(max_files=3))
    out = io.BytesIO()
    pack(root, out, OutputLimits(max_bytes=2 << 30, max_files=10))   # the same tree under the caps packs
    assert out.tell() > 1 << 30
