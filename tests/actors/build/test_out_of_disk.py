"""When a failed attempt is the builder's full disk: it fails the build with that reason (the
real full disk is tests/chaos/test_disk_full.py)."""
import errno

from gantry.actors.build.attempt import BuildFailed, InfraFault, out_of_disk


def test_enospc_or_a_full_filesystem_is_out_of_disk_and_anything_else_is_not(tmp_path):
    assert "ran out of disk" in out_of_disk(tmp_path, OSError(errno.ENOSPC, "No space left on device"))
    assert "ran out of disk" in out_of_disk(tmp_path, InfraFault("git fetch: No space left on device"))
    assert out_of_disk(tmp_path, BuildFailed("command exited 1", 1)) == ""
    assert out_of_disk(tmp_path, OSError(errno.EACCES, "denied")) == ""
    full = out_of_disk(tmp_path, BuildFailed("command exited 1", 1), min_free=1 << 62)   # "less than 4 EiB free"
    assert full.startswith("the builder ran out of disk (") and str(tmp_path) in full
