"""The host registry: each host's last report and the target build it was given."""
from __future__ import annotations

import json
from typing import Callable

import redis

from gantry.state import keys, scripts
from gantry.state.connection import read_hashes
from gantry.statuses import HostState


class Hosts:
    def __init__(self, r: redis.Redis, clock: Callable[[], int]):
        self.r, self.clock = r, clock
        self._report = scripts.register(r, "host_report")

    def report(self, host_id: str, region: str, dc: str, fields: dict) -> dict:
        """Store a host's heartbeat and return its record, whose targetBuildID is the reply. The
        same script notes that target as sentTargetBuildID, so a rollout never reads a report
        without knowing what the host was told in answer to it."""
        fields = {"hostID": host_id, "region": region, "dc": dc, "updatedAt": str(self.clock()),
                  **{k: "" if v is None else str(v) for k, v in fields.items()}}
        flat = self._report(keys=[keys.host(host_id), keys.hosts(dc)], args=[json.dumps(fields), host_id])
        return dict(zip(flat[::2], flat[1::2]))

    def get(self, host_id: str) -> dict | None:
        return self.r.hgetall(keys.host(host_id)) or None

    def set_target(self, host_id: str, build_id: str) -> None:
        self.r.hset(keys.host(host_id), "targetBuildID", build_id)

    def mark_lost(self, host_id: str) -> None:
        self.r.hset(keys.host(host_id), "state", HostState.LOST)

    def in_dc(self, dc: str) -> list[dict]:
        ids = sorted(self.r.smembers(keys.hosts(dc)))
        return [h for h in read_hashes(self.r, [keys.host(i) for i in ids]) if h]
