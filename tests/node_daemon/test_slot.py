"""What a host does for one project (node_daemon/slot.py) and who a host record serves."""
import pytest

from gantry.node_daemon.slot import Slot
from gantry.state.hosts import serves
from gantry.statuses import HostState as H


def test_a_slot_moves_only_to_a_new_target_and_reports_what_its_state_is_about(tmp_path):
    slot = Slot(tmp_path, "web")
    assert slot.installer.releases == tmp_path / "projects" / "web" / "releases"
    assert slot.report() == {"state": "idle", "activeBuildID": None, "error": "", "about": None}
    assert slot.wants("b1") and not slot.wants(None)
    slot.moving_to = "b1"
    slot.become(H.DOWNLOADING)
    slot.become(H.FAILED)
    slot.failed_target = "b1"
    assert not slot.wants("b1") and slot.wants("b2")   # a failed target is not retried by itself
    assert slot.report()["about"] == "b1"
    with pytest.raises(RuntimeError):
        slot.become(H.IDLE)   # nothing goes back to idle: a bug, and said so


def test_staging_sits_between_downloading_and_active_and_a_failed_stage_waits_for_its_wave(tmp_path):
    slot = Slot(tmp_path, "web")
    (slot.installer.releases / "a1").mkdir(parents=True)
    (slot.installer.releases / "a1" / ".complete").write_text("")
    slot.installer.switch("a1")
    slot = Slot(tmp_path, "web")   # restarted: runs a1
    assert slot.state == H.ACTIVE and slot.wants_staged("b1") and not slot.wants_staged("a1")
    slot.moving_to = "b1"
    slot.become(H.DOWNLOADING)
    slot.become(H.STAGED)
    assert slot.report() == {"state": "staged", "activeBuildID": "a1", "error": "", "about": "b1"}
    assert not slot.wants_staged("b1")                         # staged once
    assert not slot.back_on("a1", "b1") and slot.back_on("a1", None)   # staged stays while b1 is still coming
    assert slot.wants("b1")                                    # the wave activates it
    slot.become(H.FAILED)
    slot.failed_target = "b1"
    assert not slot.back_on("a1", "b1")   # a failed stage stays failed until its wave sees it
    assert not slot.wants("b1") and not slot.wants_staged("b1")
    assert slot.back_on("a1", "c1")       # another build is wanted now: b1's failure is over


def test_a_first_release_that_fails_its_hooks_leaves_the_host_failed_and_running_nothing(tmp_path):
    """With no release before it, a release that failed its start hook stayed `current`: once the
    rollback took its staged build back, the host said it was active on the failed build."""
    slot = Slot(tmp_path, "web")
    (slot.installer.releases / "b1").mkdir(parents=True)
    (slot.installer.releases / "b1" / ".complete").write_text("")
    slot.installer.switch("b1")   # the deploy switches before the hooks run
    slot.moving_to = "b1"
    slot.become(H.DOWNLOADING)
    slot.become(H.FAILED)
    slot.failed_target = "b1"
    assert not slot.back_on("b1", None)   # still told to run b1, nothing to stage: b1 failed, and stays so
    slot.installer.deactivate()
    assert slot.installer.active() is None and slot.report()["activeBuildID"] is None
    assert slot.report()["state"] == "failed"


def test_a_host_serves_every_project_unless_it_names_some():
    assert serves({}, "web") and serves({"serves": "*"}, "web")
    assert serves({"serves": '["shop", "web"]'}, "web") and not serves({"serves": '["shop"]'}, "web")
