"""The events stream (`keys.events()`): the state scripts append each status change as they make
it (`scripts/events.lua`); the coordinators append the waves they finish. Each reader is a
consumer group, so one that dies re-reads what it had not acknowledged."""
from __future__ import annotations

import redis

from gantry.state import keys

MAX_EVENTS = 100_000


class Events:
    def __init__(self, r: redis.Redis):
        self.r = r

    def emit(self, kind: str, id_: str, project: str, status: str, came_from: str = "", **extra: str) -> None:
        self.r.xadd(keys.events(), {"kind": kind, "id": id_, "project": project, "status": status, "from": came_from,
                                    **{k: str(v) for k, v in extra.items()}}, maxlen=MAX_EVENTS, approximate=True)

    def join(self, group: str) -> None:
        """Make the consumer group if it is not there: it reads what is appended from now on."""
        try:
            self.r.xgroup_create(keys.events(), group, id="$", mkstream=True)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    def read(self, group: str, consumer: str, count: int = 200) -> list[tuple[str, dict]]:
        """What `consumer` read before and has not acknowledged (a retry), else what is new."""
        for start in ("0", ">"):
            got = self.r.xreadgroup(group, consumer, {keys.events(): start}, count=count)
            entries = [(i, f) for _, batch in got for i, f in batch if f]
            if entries:
                return entries
        return []

    def ack(self, group: str, ids: list[str], client=None) -> None:
        if ids:
            (client or self.r).xack(keys.events(), group, *ids)

    def attempts(self, group: str, event_id: str) -> int:
        """How many times the group's readers were handed this event."""
        rows = self.r.xpending_range(keys.events(), group, min=event_id, max=event_id, count=1)
        return rows[0]["times_delivered"] if rows else 0
