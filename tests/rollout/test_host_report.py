from gantry.rollout.dc_rollout import HostView
from gantry.node_daemon.slot import report_about
from gantry.statuses import HostState as H


def test_a_report_is_about_the_build_its_state_concerns():
    assert report_about(H.DOWNLOADING, "a", "b", None) == "b"
    assert report_about(H.ACTIVE, "a", "b", "c") == "a"
    assert report_about(H.FAILED, "a", "b", "c") == "c"
    assert report_about(H.IDLE, None, None, None) is None


def test_an_older_targets_failure_does_not_count_against_the_newer_one():
    # the host was installing A when it was told B; A then failed
    about = report_about(H.FAILED, None, "A", "A")
    seen = HostView("h", None, H.FAILED, target_build="B", acked_target=about, sent_target="B")
    assert not seen.failed_on("B")
    # its own failure of B does count
    seen = HostView("h", None, H.FAILED, "B", report_about(H.FAILED, None, "B", "B"), "B")
    assert seen.failed_on("B")
