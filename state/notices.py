"""The outbox: every notice to a destination (a webhook, an apprise URL, GitHub), each
destination's queue of them in order, and what became of each delivery.

A notice waits at the head of its destination's queue until it is delivered or given up, so a
destination gets its events in order, and one that is down or hangs holds up no other."""
from __future__ import annotations

import json

import redis

from gantry.state import keys

KEEP = 1000                 # deliveries listed per project (older ones expire)
TTL_S = 7 * 24 * 3600


class Notices:
    def __init__(self, r: redis.Redis):
        self.r = r

    def enqueue(self, notices: list[dict], pipe) -> None:
        """Inside the caller's MULTI (with the event's ack): each notice recorded and queued behind
        the ones its destination holds. A notice: id, project, dest ("<project>/<subscription>"),
        event, payload, createdAt."""
        for n in notices:
            key = keys.notice(n["id"])
            pipe.hset(key, mapping={**n, "status": "pending", "attempts": 0, "nextAt": 0})
            pipe.expire(key, TTL_S)
            pipe.rpush(keys.notice_queue(n["dest"]), n["id"])
            pipe.sadd(keys.notice_queues(), n["dest"])
            pipe.zadd(keys.notices(n["project"]), {n["id"]: int(n["createdAt"])})
            pipe.zremrangebyrank(keys.notices(n["project"]), 0, -KEEP - 1)

    def destinations(self) -> list[str]:
        return sorted(self.r.smembers(keys.notice_queues()))

    def head(self, dest: str) -> dict | None:
        """The notice its destination is to get next, or None (the queue is forgotten when empty)."""
        notice_id = self.r.lindex(keys.notice_queue(dest), 0)
        if notice_id is None:
            with self.r.pipeline() as p:   # forget the queue unless something was queued meanwhile
                p.watch(keys.notice_queue(dest))
                if p.llen(keys.notice_queue(dest)) == 0:
                    p.multi()
                    p.srem(keys.notice_queues(), dest)
                    try:
                        p.execute()
                    except redis.WatchError:
                        pass
            return None
        return self.r.hgetall(keys.notice(notice_id)) or {"id": notice_id, "missing": "1"}

    def done(self, dest: str, notice_id: str, status: str, at_ms: int, error: str = "") -> None:
        """Delivered (or given up): off the head of its queue."""
        with self.r.pipeline() as p:
            p.hset(keys.notice(notice_id), mapping={"status": status, "finishedAt": at_ms, "error": error})
            p.hincrby(keys.notice(notice_id), "attempts", 1)
            p.lrem(keys.notice_queue(dest), 1, notice_id)
            p.execute()

    def retry(self, notice_id: str, next_at_ms: int, error: str) -> None:
        with self.r.pipeline() as p:
            p.hset(keys.notice(notice_id), mapping={"nextAt": next_at_ms, "error": error})
            p.hincrby(keys.notice(notice_id), "attempts", 1)
            p.execute()

    def listed(self, project: str, limit: int = 100) -> list[dict]:
        """The project's newest notices, newest first."""
        ids = self.r.zrevrange(keys.notices(project), 0, limit - 1)
        with self.r.pipeline(transaction=False) as p:
            for i in ids:
                p.hgetall(keys.notice(i))
            return [h for h in p.execute() if h]

    def github_deployment(self, dep_id: str) -> int | None:
        got = self.r.get(keys.github_deployment(dep_id))
        return int(got) if got else None

    def remember_github_deployment(self, dep_id: str, github_id: int) -> None:
        self.r.set(keys.github_deployment(dep_id), github_id, ex=90 * 24 * 3600)


def payload(n: dict) -> dict:
    return json.loads(n.get("payload") or "{}")
