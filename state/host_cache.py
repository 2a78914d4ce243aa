"""One datacenter's host records as a coordinator last read them, read again only for the hosts
whose records changed since.

Every write to a host's records (state/hosts.py, in Lua) bumps the datacenter's change sequence
and scores the host with the new number in one sorted set. A reader that has seen sequence n
asks for the hosts scored above n and reads only those, so a quiet datacenter costs one Redis
command a step, and a busy one a read per host that changed, not one per host it has.
The first read (and the one after `reset`) reads every host.
"""
from __future__ import annotations

import json

import redis

from gantry.records import HostView
from gantry.state import keys
from gantry.state.connection import read_hashes
from gantry.state.hosts import ALL, merged, record


class HostCache:
    def __init__(self, r: redis.Redis, dc: str):
        self.r, self.dc = r, dc
        self.seq: int | None = None   # the change sequence the records are as of
        self.records: dict[str, dict] = {}          # host -> its record (state lost for a lost host)
        self.views_of: dict[str, dict[str, HostView]] = {}   # project -> host -> its view, for the hosts serving it
        self._sorted: list[dict] | None = None
        self._serving: dict[str, list[dict]] = {}   # project -> the records of the hosts that serve it
        self._projects: dict[str, set[str] | None] = {}   # host -> the projects it serves, None: all
        self.hosts_read = 0   # host records read since it began (a benchmark's figure)

    def reset(self) -> None:
        """Read every host again at the next `in_dc`."""
        self.seq = None

    def in_dc(self) -> list[dict]:
        """The datacenter's host records, by host ID, as of now."""
        if self.seq is not None:
            with self.r.pipeline(transaction=False) as p:
                p.get(keys.host_seq(self.dc))
                p.zrangebyscore(keys.host_changed(self.dc), f"({self.seq}", "+inf", withscores=True)
                now, changed = p.execute()
            if int(now or 0) < self.seq:   # Redis lost writes (restored from an older copy): read all
                self.seq = None
            elif not changed:
                return self._list()
            else:
                ids = [h for h, _ in changed]
                seq = int(max(score for _, score in changed))
        if self.seq is None:
            seq = int(self.r.get(keys.host_seq(self.dc)) or 0)   # first: a write after it is read next time
            ids = sorted(self.r.smembers(keys.hosts(self.dc)))
            self.records, self.views_of = {}, {}
        for host_id, h in zip(ids, read_hashes(self.r, [keys.host(self.dc, i) for i in ids])):
            self.forget(host_id)
            if h:
                self.records[host_id] = record(h)
                self._projects[host_id] = None if (h.get("serves") or ALL) == ALL else set(json.loads(h["serves"]))
        self.seq, self.hosts_read = seq, self.hosts_read + len(ids)
        return self._list()

    def forget(self, host_id: str) -> None:
        """Drop what is known of the host's projects (its record changed under the caller)."""
        self._sorted, self._serving = None, {}
        for views in self.views_of.values():
            views.pop(host_id, None)

    def _list(self) -> list[dict]:
        if self._sorted is None:
            self._sorted = [self.records[h] for h in sorted(self.records)]
        return self._sorted

    def views(self, project: str) -> dict[str, HostView]:
        """The hosts that serve `project`, each as a rollout of it sees them (their records for
        it read only where not known since they last changed)."""
        known = self.views_of.setdefault(project, {})
        hosts = self._serving.get(project)
        if hosts is None:
            hosts = self._serving[project] = [h for h in self._list()
                                              if self._projects[h["hostID"]] is None or project in self._projects[h["hostID"]]]
        missing = [h for h in hosts if h["hostID"] not in known]
        rows = read_hashes(self.r, [keys.host_project(self.dc, h["hostID"], project) for h in missing])
        self.hosts_read += len(missing)
        for h, row in zip(missing, rows):
            known[h["hostID"]] = HostView.from_hash(merged(h, row))
        return {h["hostID"]: known[h["hostID"]] for h in hosts}
