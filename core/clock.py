"""Time as gantry stores it (integer milliseconds since the epoch) and shows it (RFC 3339)."""
from __future__ import annotations

import datetime as dt
import time


def now_ms() -> int:
    return int(time.time() * 1000)


def iso_ms(ms: int | None) -> str | None:
    """Milliseconds since the epoch as an RFC 3339 UTC string, e.g. 2026-11-26T15:07:48.123Z."""
    if ms is None:
        return None
    t = dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
