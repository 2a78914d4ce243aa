"""Replication: one row per build and region (the Binary replication row), and each region's
queue of jobs. The primary's row is REPLICATED when the build publishes; the others follow as
each region's replicator copies the chunks it lacks."""
from __future__ import annotations

import json
from collections import Counter
from typing import Callable

import redis

from gantry.artifacts.replica_sources import pick
from gantry.records import ReplicationRow
from gantry.state import audit as audit_entries
from gantry.state import keys, scripts
from gantry.state.builds import TransitionRefused
from gantry.state.connection import read_hashes
from gantry.statuses import BuildStatus, ReplicationStatus


class Replication:
    def __init__(self, r: redis.Redis, clock: Callable[[], int]):
        self.r, self.clock = r, clock
        self._publish = scripts.register(r, "publish_artifact")
        self._restart = scripts.register(r, "restart_replication")
        self._finish = scripts.register(r, "finish_replication")
        self._retry = scripts.register(r, "retry_replication")
        self._backfill = scripts.register(r, "backfill_replication")

    def publish(self, build_id: str, owner: str, fields: dict, primary: str, others: list[str],
                primary_row: dict) -> BuildStatus:
        """BUILDING -> DEPLOYING with the artifact, replication rows and jobs, atomically.
        Returns DEPLOYING, or SUCCEEDED when there is no other region."""
        per_region = [k for r in others for k in (keys.repl_row(build_id, r), keys.repl_queue(r))]
        ok, status = self._publish(
            keys=[keys.build(build_id), keys.building(), keys.statuscount(), keys.repl_regions(build_id),
                  keys.repl_row(build_id, primary), *per_region, keys.events()],
            args=[owner, json.dumps({k: str(v) for k, v in fields.items()}), self.clock(), primary,
                  json.dumps(others), json.dumps(primary_row)])
        if not ok:
            raise TransitionRefused(build_id, status or None, BuildStatus.DEPLOYING.value)
        self._news(build_id, others)
        return BuildStatus(status)

    def backfill(self, build_id: str, regions: list[str]) -> list[str]:
        """Queue a job in each of `regions` (ones that joined the stack after the build published)
        that has no row for it; returns the regions queued."""
        queued = [r for r in regions if self._backfill(
            keys=[keys.build(build_id), keys.repl_regions(build_id), keys.repl_row(build_id, r), keys.repl_queue(r)],
            args=[build_id, r, self.clock()])]
        self._news(build_id, queued)
        return queued

    def regions(self, build_id: str) -> list[str]:
        return sorted(self.r.smembers(keys.repl_regions(build_id)))

    def rows(self, build_id: str) -> list[dict]:
        return [h for h in read_hashes(self.r, [keys.repl_row(build_id, r) for r in self.regions(build_id)]) if h]

    def row(self, build_id: str, region: str) -> dict:
        return self.r.hgetall(keys.repl_row(build_id, region))

    def record(self, build_id: str, region: str) -> ReplicationRow | None:
        row = self.row(build_id, region)
        return ReplicationRow.from_hash(row) if row else None

    def due(self, region: str, limit: int = 10) -> list[str]:
        return self.r.zrangebyscore(keys.repl_queue(region), "-inf", self.clock(), start=0, num=limit)

    def update(self, build_id: str, region: str, fields: dict, incr: dict | None = None) -> None:
        """A row's progress figures (its status changes only through the scripts)."""
        if "replicationStatus" in fields:
            raise ValueError("a replication row's status changes through publish, retry, finish or restart")
        key = keys.repl_row(build_id, region)
        with self.r.pipeline() as p:
            p.hset(key, mapping={**{k: str(v) for k, v in fields.items()}, "updatedAt": self.clock()})
            for k, v in (incr or {}).items():
                p.hincrby(key, k, v)
            p.execute()

    def retry(self, build_id: str, region: str, ready_at_ms: int, error: str) -> bool:
        """The row RETRYING and its job queued again at `ready_at_ms`; False if the row may not
        become RETRYING (it ended meanwhile)."""
        return bool(self._retry(keys=[keys.repl_row(build_id, region), keys.repl_queue(region)],
                                args=[build_id, ready_at_ms, error, self.clock()]))

    def restart(self, build_id: str, audit: str | None = None) -> list[str]:
        """Start again every region that gave up (its row FAILED); a build that failed only for
        that is DEPLOYING again. Returns the regions restarted (none: nothing to do)."""
        regions = self.regions(build_id)   # fixed when the build published
        per_region = [k for r in regions for k in (keys.repl_row(build_id, r), keys.repl_queue(r))]
        restarted = self._restart(keys=[keys.build(build_id), keys.statuscount(), *audit_entries.keys_for(audit),
                                         *per_region],
                                  args=[self.clock(), audit or "", json.dumps(regions)])
        self._news(build_id, restarted)
        return restarted

    def _news(self, build_id: str, regions: list[str]) -> None:
        """Wake the regions' replicators: a job of theirs is due now."""
        for region in regions:
            self.r.publish(keys.repl_channel(region), build_id)

    def subscribe(self, region: str):
        """A pub/sub subscription that hears of every job queued in `region` for now."""
        pubsub = self.r.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(keys.repl_channel(region))
        return pubsub

    def finish(self, build_id: str, region: str, ok: bool, reason: str = "") -> str:
        """A region's job ended; returns the build's status after it."""
        fields = {"replicationStatus": ReplicationStatus.REPLICATED if ok else ReplicationStatus.FAILED,
                  "error": reason}
        rows = [keys.repl_row(build_id, r) for r in self.regions(build_id)]
        return self._finish(keys=[keys.build(build_id), keys.statuscount(), keys.repl_row(build_id, region),
                                  keys.repl_queue(region), *rows, keys.events()],
                            args=[build_id, "1" if ok else "0", json.dumps(fields), self.clock(),
                                  f"replication to {region} failed: {reason}"])

    # --- replication as a tree (artifacts/replica_sources.py) ---------------------------------

    def claim_source(self, build_id: str, region: str, primary: str, fanout: int, lease_s: float) -> str | None:
        """The region `region`'s copy comes from: a region whose replica has landed (or the
        primary), serving fewer than `fanout` copies, claimed for `lease_s` and noted on the
        row as `source`. None: every holder serves `fanout` copies now (try again shortly).
        Claims are read and written in one optimistic transaction, so two replicators never
        both take a source's last place."""
        key = keys.repl_sources(build_id)
        holders = sorted({primary} | {r["region"] for r in self.rows(build_id)
                                      if r.get("replicationStatus") == ReplicationStatus.REPLICATED})
        with self.r.pipeline() as p:
            while True:
                try:
                    p.watch(key)
                    now = self.clock()
                    live = [c.split(">") for c in p.zrangebyscore(key, now, "+inf")]
                    source = pick(holders, Counter(s for s, to in live if to != region), fanout, primary)
                    if source is None:
                        p.unwatch()
                        return None
                    p.multi()
                    p.zremrangebyscore(key, "-inf", now)
                    if mine := [f"{s}>{to}" for s, to in live if to == region]:   # an attempt before this one
                        p.zrem(key, *mine)
                    p.zadd(key, {f"{source}>{region}": now + int(lease_s * 1000)})
                    p.pexpire(key, 24 * 3600 * 1000)
                    p.hset(keys.repl_row(build_id, region), "source", source)
                    p.execute()
                    return source
                except redis.WatchError:
                    continue

    def extend_source(self, build_id: str, region: str, source: str, lease_s: float) -> None:
        """A copy under way keeps its claim."""
        self.r.zadd(keys.repl_sources(build_id), {f"{source}>{region}": self.clock() + int(lease_s * 1000)}, xx=True)

    def release_source(self, build_id: str, region: str, source: str) -> None:
        self.r.zrem(keys.repl_sources(build_id), f"{source}>{region}")

    def later(self, build_id: str, region: str, ready_at_ms: int) -> None:
        """The region's job waits (for a source) until `ready_at_ms`, its row as it is."""
        self.r.zadd(keys.repl_queue(region), {build_id: ready_at_ms}, xx=True)
