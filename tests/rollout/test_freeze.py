"""Freeze windows: recurring (cron, duration, time zone) and one-off."""
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from gantry.rollout.freeze import FreezeIn, frozen

BERLIN = ZoneInfo("Europe/Berlin")
FRIDAY_NIGHT = FreezeIn(reason="weekend", cron="0 16 * * FRI", durationS=64 * 3600, timeZone="Europe/Berlin")


def at(*args, tz=BERLIN):
    return datetime(*args, tzinfo=tz)


def test_fridays_from_16_00_berlin_for_64_hours():
    assert FRIDAY_NIGHT.open_until(at(2026, 12, 4, 15, 59)) is None
    until = FRIDAY_NIGHT.open_until(at(2026, 12, 4, 16, 0))   # opens on the minute
    assert until == at(2026, 12, 7, 8, 0).astimezone(timezone.utc)
    assert FRIDAY_NIGHT.open_until(at(2026, 12, 6, 23, 0)) == until
    assert FRIDAY_NIGHT.open_until(at(2026, 12, 7, 8, 0)) is None   # Monday 08:00: open again
    assert FRIDAY_NIGHT.open_until(at(2026, 12, 4, 15, 30, tz=timezone.utc)) == until   # 16:30 in Berlin


def test_across_the_change_to_summer_time_the_window_keeps_local_times():
    # 2027-03-26 is a Friday; clocks go forward on Sunday the 28th: the freeze still ends Monday
    # 08:00 in Berlin (63 hours later by the clock on the wall of a server in UTC)
    until = FRIDAY_NIGHT.open_until(at(2027, 3, 27, 12, 0))
    assert until.astimezone(BERLIN) == at(2027, 3, 29, 8, 0)
    assert until - at(2027, 3, 26, 16, 0) == timedelta(hours=63)


def test_one_off_windows_and_the_one_that_closes_last_is_named():
    now = datetime(2026, 12, 5, 12, tzinfo=timezone.utc)
    incident = FreezeIn(reason="incident 42", start=now - timedelta(minutes=5), end=now + timedelta(minutes=30))
    later = FreezeIn(reason="release train", start=now - timedelta(hours=1), end=now + timedelta(hours=2))
    past = FreezeIn(reason="old", start=now - timedelta(days=2), end=now - timedelta(days=1))
    assert frozen({"stack": [past], "project": []}, now) is None
    scope, w, until = frozen({"stack": [incident, past], "project": [later]}, now)
    assert (scope, w.reason, until) == ("project", "release train", now + timedelta(hours=2))
    assert incident.open_until(now + timedelta(minutes=30)) is None   # the end is not in it


@pytest.mark.parametrize("bad", [
    {"reason": "x"},                                                   # neither kind
    {"reason": "x", "cron": "0 16 * * FRI"},                           # no duration
    {"reason": "x", "cron": "not a cron", "durationS": 60},
    {"reason": "x", "cron": "0 16 * * FRI", "durationS": 60, "timeZone": "Mars/Olympus"},
    {"reason": "x", "start": "2026-12-05T12:00:00Z", "end": "2026-12-05T11:00:00Z"},
    {"reason": "x", "start": "2026-12-05T12:00:00", "end": "2026-12-05T13:00:00"},   # no zone: ambiguous
    {"reason": "", "start": "2026-12-05T12:00:00Z", "end": "2026-12-05T13:00:00Z"},
    {"reason": "x", "cron": "0 16 * * FRI", "durationS": 60, "start": "2026-12-05T12:00:00Z", "end": "2026-12-05T13:00:00Z"},
])
def test_bad_windows_are_refused_with_a_reason(bad):
    with pytest.raises(ValidationError):
        FreezeIn.model_validate(bad)
