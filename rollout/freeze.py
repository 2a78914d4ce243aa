"""Deploy freeze windows, pure: when a deployment may not start, and why.

A window recurs (a cron expression for its start, in a time zone, and a duration: "Fridays 16:00
for 64 h, Europe/Berlin") or is a one-off range. Each has a reason. A deployment asked for while
any of the stack's or its project's windows is open is refused, naming the window and when it
ends, unless an admin overrides it with a reason. A rollback is never frozen.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_DURATION_S = 14 * 24 * 3600


class FreezeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=200)
    cron: str | None = Field(default=None, max_length=100, description='when it starts, e.g. "0 16 * * FRI"')
    durationS: float | None = Field(default=None, gt=0, le=MAX_DURATION_S, description="how long it lasts (with cron)")
    timeZone: str = Field(default="UTC", max_length=64, description="the cron's time zone, e.g. Europe/Berlin")
    start: AwareDatetime | None = Field(default=None, description="a one-off window: from")
    end: AwareDatetime | None = Field(default=None, description="a one-off window: until")

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        from croniter import croniter   # the control plane's (the stack extra); the models load on hosts too
        if v is not None and not croniter.is_valid(v):
            raise ValueError(f"not a cron expression: {v!r}")
        return v

    @field_validator("timeZone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}")
        return v

    @model_validator(mode="after")
    def _kind(self):
        recurring, once = self.cron is not None, self.start is not None or self.end is not None
        if recurring == once:
            raise ValueError("a window is either recurring (cron and durationS) or one-off (start and end)")
        if recurring and self.durationS is None:
            raise ValueError("a recurring window needs durationS")
        if once and (self.start is None or self.end is None or self.end <= self.start):
            raise ValueError("a one-off window needs a start before its end")
        return self

    def open_until(self, now: datetime) -> datetime | None:
        """When the window closes, if it is open at `now` (aware); else None."""
        if self.cron is None:
            return self.end if self.start <= now < self.end else None
        from croniter import croniter
        local = now.astimezone(ZoneInfo(self.timeZone))
        began = croniter(self.cron, local + timedelta(seconds=1)).get_prev(datetime)   # a start at `now` counts
        ends = began + timedelta(seconds=self.durationS)
        return ends.astimezone(timezone.utc) if now < ends else None

    def describe(self) -> str:
        return (f"{self.cron!r} for {self.durationS:g} s ({self.timeZone})" if self.cron
                else f"{self.start.isoformat()} to {self.end.isoformat()}")


class FreezeWindows(BaseModel):
    model_config = ConfigDict(extra="forbid")
    windows: list[FreezeIn] = Field(max_length=50)


def frozen(windows: dict[str, list[FreezeIn]], now: datetime) -> tuple[str, FreezeIn, datetime] | None:
    """(scope, window, when it closes) of the window open at `now` that closes last, if any.
    `windows`: scope ("stack", "project") -> its windows."""
    open_ = [(until, scope, w) for scope, ws in windows.items() for w in ws if (until := w.open_until(now))]
    if not open_:
        return None
    until, scope, w = max(open_, key=lambda x: x[0])
    return scope, w, until
