"""Reserved uids: a lease per concurrent build, a uid per project on a host (real flock, real
processes, no Ray)."""
import os
import subprocess

import pytest

from gantry.uids import PROJECT_UIDS, NoFreeUid, ProjectUids, UidRange, lease, processes_of, reserved

RANGE = UidRange(600_900, 3)


def test_builds_at_once_get_uids_of_their_own_and_a_released_one_comes_back(tmp_path):
    a, b, c = (lease(RANGE, tmp_path / "locks") for _ in range(3))
    assert len({a.uid, b.uid, c.uid}) == 3 and all(x.uid in RANGE for x in (a, b, c))
    with pytest.raises(NoFreeUid):
        lease(RANGE, tmp_path / "locks")
    b.release()
    assert lease(RANGE, tmp_path / "locks").uid == b.uid
    assert oct(os.stat(tmp_path / "locks").st_mode & 0o777) == "0o700"


def test_a_uid_is_handed_out_only_once_whatever_still_ran_as_it_is_gone(tmp_path):
    one = UidRange(600_950, 1)
    left = subprocess.Popen(["sleep", "60"], user=one.base, group=one.base, extra_groups=[])   # an earlier build's
    try:
        assert left.pid in processes_of(one.base)
        with lease(one, tmp_path / "locks") as got:
            assert got.uid == one.base and left.wait(10) == -9
    finally:
        left.kill()


def test_hook_users_inside_the_reserved_ranges_are_refused():
    builds = UidRange(600_000, 1_000)
    assert reserved(600_123, 600_123, builds).startswith("builds")
    assert reserved(65534, PROJECT_UIDS.base + 5, builds).startswith("projects")
    assert reserved(65534, 65534, builds) is None and reserved(0, 0, builds) is None


def test_each_project_keeps_its_uid_across_restarts(tmp_path):
    uids = ProjectUids(tmp_path / "project-uids.json")
    web, shop = uids.of("web"), uids.of("shop")
    assert web != shop and {web, shop} <= set(PROJECT_UIDS)
    again = ProjectUids(tmp_path / "project-uids.json")
    assert (again.of("shop"), again.of("web")) == (shop, web)
    assert oct(os.stat(tmp_path / "project-uids.json").st_mode & 0o777) == "0o600"
