"""The host registry. A host's own record holds what belongs to the machine (its address, the
projects it serves, when it last reported, whether it is lost); one record per (host, project)
holds what the host does for that project (its target, the build it runs, its state, its error)."""
from __future__ import annotations

import json
from typing import Callable

import redis

from gantry.records import HostView
from gantry.state import keys, scripts
from gantry.state.connection import read_hashes
from gantry.statuses import HostState

ALL = "*"   # a host that serves every project


def serves(host: dict, project: str) -> bool:
    """Whether a host record says it serves `project`."""
    said = host.get("serves") or ALL
    return said == ALL or project in json.loads(said)


def record(h: dict) -> dict:
    """A host's own record as read, with `state` lost for a lost host."""
    return {**h, "state": HostState.LOST} if h.get("lostAt") else h


def merged(h: dict, row: dict) -> dict:
    """A host's record (as `record` gives it) merged with its record for a project: state idle
    where it has none yet, lost for a lost host."""
    out = {**h, **row, "updatedAt": h.get("updatedAt", "")}
    out["state"] = HostState.LOST if h.get("lostAt") else (row.get("state") or HostState.IDLE)
    return out


class Hosts:
    def __init__(self, r: redis.Redis, clock: Callable[[], int]):
        self.r, self.clock = r, clock
        self._report = scripts.register(r, "host_report")
        self._set = scripts.register(r, "host_set")
        self._touch = scripts.register(r, "touch_hosts")

    def report(self, host_id: str, region: str, dc: str, fields: dict, projects: dict[str, dict],
               serving: list[str] | None = None) -> dict[str, tuple[str, str]]:
        """Store a host's heartbeat: its own fields, and `projects` (project -> the fields it
        reported for it). Returns project -> (target, build to stage), "" for none, for every
        project the host has a record for; the same script notes each target as
        sentTargetBuildID, so a rollout never reads a report without knowing what the host was
        told in answer to it."""
        now = str(self.clock())
        fields = {"hostID": host_id, "region": region, "dc": dc, "updatedAt": now,
                  "serves": json.dumps(sorted(serving)) if serving else ALL,
                  **{k: "" if v is None else str(v) for k, v in fields.items()}}
        reported = {p: {"updatedAt": now, **{k: "" if v is None else str(v) for k, v in f.items()}}
                    for p, f in projects.items()}
        names = sorted(set(self.r.smembers(keys.host_projects(dc, host_id))) | set(reported))
        targets = self._report(
            keys=[keys.host(dc, host_id), keys.hosts(dc), keys.host_projects(dc, host_id), keys.host_seq(dc),
                  keys.host_changed(dc), *(keys.host_project(dc, host_id, p) for p in names)],
            args=[json.dumps(fields), host_id, json.dumps(names), json.dumps(reported or {})])
        pairs = zip(names, targets[0::2], targets[1::2])
        return {p: (t, st) for p, t, st in pairs if t or st or p in reported}

    def get(self, dc: str, host_id: str) -> dict | None:
        return self.r.hgetall(keys.host(dc, host_id)) or None

    def targets(self, dc: str, host_id: str) -> dict[str, str]:
        """project -> the build the host is told to run for it."""
        return {p: t for p, (t, _) in self.wanted(dc, host_id).items() if t}

    def wanted(self, dc: str, host_id: str) -> dict[str, tuple[str, str]]:
        """project -> (the build the host is told to run, the build to stage), "" for none."""
        names = sorted(self.r.smembers(keys.host_projects(dc, host_id)))
        rows = read_hashes(self.r, [keys.host_project(dc, host_id, p) for p in names])
        return {p: (row.get("targetBuildID") or "", row.get("stageBuildID") or "") for p, row in zip(names, rows)}

    def _write(self, dc: str, host_id: str, field: str, value, project: str = "") -> None:
        key = keys.host_project(dc, host_id, project) if project else keys.host(dc, host_id)
        self._set(keys=[key, keys.host_projects(dc, host_id), keys.host_seq(dc), keys.host_changed(dc)],
                  args=[host_id, field, value, project])

    def set_target(self, dc: str, host_id: str, project: str, build_id: str) -> None:
        self._write(dc, host_id, "targetBuildID", build_id, project)

    def set_stage(self, dc: str, host_id: str, project: str, build_id: str) -> None:
        """Tell the host to download and unpack `build_id` beside what it runs, without switching."""
        self._write(dc, host_id, "stageBuildID", build_id, project)

    def note(self, dc: str, host_id: str, field: str, text: str) -> None:
        """A remark on the host's own record that its reports do not overwrite (why its claims
        were dropped, say)."""
        self._write(dc, host_id, field, text)

    def mark_stage_late(self, dc: str, host_id: str, project: str, build_id: str) -> None:
        """The host did not stage `build_id` in time: it counts as failed for its wave."""
        self._write(dc, host_id, "stageLate", build_id, project)

    def touched(self, dc: str, host_ids: list[str]) -> None:
        """Hosts whose records were written some other way (a benchmark's fleet, straight into
        Redis): coordinators read them again (state/host_cache.py)."""
        if host_ids:
            self._touch(keys=[keys.host_seq(dc), keys.host_changed(dc)], args=host_ids)

    def mark_lost(self, dc: str, host_id: str) -> None:
        self._write(dc, host_id, "lostAt", self.clock())

    def in_dc(self, dc: str) -> list[dict]:
        """The hosts' own records, with `state` lost for a lost host."""
        ids = sorted(self.r.smembers(keys.hosts(dc)))
        return [record(h) for h in read_hashes(self.r, [keys.host(dc, i) for i in ids]) if h]

    def views(self, dc: str, project: str, hosts: list[dict] | None = None) -> dict[str, HostView]:
        """`for_project`, typed for a rollout: host -> its view."""
        return {h["hostID"]: HostView.from_hash(h) for h in self.for_project(dc, project, hosts)}

    def for_project(self, dc: str, project: str, hosts: list[dict] | None = None) -> list[dict]:
        """The hosts of `dc` that serve `project`, each its own record merged with its record
        for the project (state idle where it has none yet, lost for a lost host). `hosts`: the
        datacenter's host records if the caller has just read them."""
        hosts = [h for h in (self.in_dc(dc) if hosts is None else hosts) if serves(h, project)]
        rows = read_hashes(self.r, [keys.host_project(dc, h["hostID"], project) for h in hosts])
        return [merged(h, row) for h, row in zip(hosts, rows)]
