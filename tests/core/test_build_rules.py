import pytest

from gantry import builds as B
from gantry import cursor as listing
from gantry.clock import iso_ms
from gantry.statuses import BuildStatus as S


def test_queue_order_priority_first_then_fifo():
    arrivals = [(5, 1), (9, 2), (5, 3), (0, 4), (9, 5)]  # (priority, seq)
    order = sorted(arrivals, key=lambda a: B.queue_base(a[0]) + a[1])   # as create_build.lua scores them
    assert order == [(9, 2), (9, 5), (5, 1), (5, 3), (0, 4)]


def test_queue_score_is_exact_in_a_double():
    top = B.queue_base(B.MIN_PRIORITY) + (1 << 43) - 1
    assert float(top) == top


def test_queue_priority_range():
    with pytest.raises(ValueError):
        B.queue_base(10)


def test_index_members_sort_by_time_then_id():
    a = listing.key(1_000, "a" * 32)
    b = listing.key(1_000, "b" * 32)
    c = listing.key(999, "f" * 32)
    assert sorted([b, c, a]) == [c, a, b]


def test_cursor_round_trip_and_rejects_garbage():
    m = listing.key(1764170000123, "0" * 32)
    assert listing.parse(m) == m
    for bad in ["", "123", "1764170000123", "abc:def", m + "x", "1764170000123:" + "g" * 32]:
        with pytest.raises(ValueError):
            listing.parse(bad)


def test_page_cuts_at_limit_and_gives_cursor_only_when_more():
    members = [listing.key(5 - i, f"{i:032x}") for i in range(4)]
    items, cursor = listing.page(members, 3)
    assert items == members[:3] and cursor == members[2]
    items, cursor = listing.page(members[:3], 3)
    assert items == members[:3] and cursor is None


def test_retry_decision_backs_off_then_dead():
    assert B.retry_decision(0, 3, 5, 300) == (S.QUEUED, 5)
    assert B.retry_decision(1, 3, 5, 300) == (S.QUEUED, 10)
    assert B.retry_decision(2, 3, 5, 300) == (S.QUEUED, 20)
    assert B.retry_decision(3, 3, 5, 300)[0] is S.DEAD
    assert B.retry_decision(2, 9, 100, 150) == (S.QUEUED, 150)


def test_heartbeat_expiry_after_three_intervals():
    assert not B.heartbeat_expired(0, 180_000, 60, 3)
    assert B.heartbeat_expired(0, 180_001, 60, 3)


@pytest.mark.parametrize("sha,ok", [("a" * 40, True), ("0123456789abcdef" * 4, True), ("A" * 40, False),
                                   ("a" * 39, False), ("a" * 41, False), ("g" * 40, False), ("", False)])
def test_sha_validation(sha, ok):
    assert B.valid_sha(sha) is ok


@pytest.mark.parametrize("name,ok", [("web", True), ("my-svc.v2_x", True), ("-x", False), ("UP", False),
                                     ("a" * 63, True), ("a" * 64, False), ("a/b", False), ("", False)])
def test_name_validation(name, ok):
    assert B.valid_name(name) is ok


def test_iso_ms():
    assert iso_ms(0) == "1970-01-01T00:00:00.000Z"
    assert iso_ms(1764170000123) == "2025-11-26T15:13:20.123Z"
