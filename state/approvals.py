"""Approvals given at a deployment's gates (`gantry.rollout.approvals`), each recorded with its
audit entry in one transaction."""
from __future__ import annotations

import json

import redis

from gantry.state import keys
from gantry.state.audit import AuditLog


class Approvals:
    def __init__(self, r: redis.Redis, audit_log: AuditLog):
        self.r, self.audit_log = r, audit_log

    def given(self, dep_id: str) -> dict[str, list[dict]]:
        """gate -> the approvals given there, first first."""
        return {gate: json.loads(raw) for gate, raw in self.r.hgetall(keys.approvals(dep_id)).items()}

    def add(self, dep_id: str, gate: str, approval: dict, audit: str) -> list[dict]:
        """Add one approval at `gate` (the caller has checked who may give it); returns the gate's
        approvals. Optimistic: a concurrent approval makes it read and write again."""
        key = keys.approvals(dep_id)
        with self.r.pipeline() as p:
            while True:
                try:
                    p.watch(key)
                    given = json.loads(p.hget(key, gate) or "[]") + [approval]
                    p.multi()
                    p.hset(key, gate, json.dumps(given))
                    self.audit_log.record(audit, client=p)
                    p.execute()
                    self.r.publish(keys.desired_channel(), dep_id)   # the coordinators look again now
                    return given
                except redis.WatchError:
                    continue
