"""Deployments, each project's desired build (the design's ZooKeeper role) and each
datacenter's share of a deployment: its persisted rollout, its outcome and what it runs."""
from __future__ import annotations

import json
import uuid
from typing import Callable

import redis

from gantry import cursor
from gantry.records import Deployment
from gantry.state import audit as audit_entries
from gantry.state import keys, scripts
from gantry.state.connection import read_fields, read_hashes
from gantry.statuses import DEPLOYMENT_ACTIVE, DEPLOYMENT_TERMINAL, Concurrency, DeploymentStatus


class BuildExpired(Exception):
    """Retention expired the build: its chunks may be gone, it deploys no more."""


class DeployBusy(Exception):
    """The project's concurrency is `reject`, and this deployment is under way (or waits)."""


class Deployments:
    def __init__(self, r: redis.Redis, clock: Callable[[], int], frozen: Callable[[str], str | None] = lambda p: None):
        """`frozen(project)`: why no deployment of the project may start now (a freeze window), if so."""
        self.r, self.clock, self.frozen = r, clock, frozen
        self._create = scripts.register(r, "create_deployment")
        self._status = scripts.register(r, "deployment_status")
        self._promote = scripts.register(r, "promote_deployment")

    def create(self, project: str, build_id: str, previous_build: str | None, strategy: dict,
               regions: list[str], user: str, audit: Callable[[str], str] | None = None,
               analysis: dict | None = None, concurrency: Concurrency = Concurrency.PREEMPT,
               fields: dict | None = None) -> dict:
        """A new deployment: by `concurrency`, it supersedes the one in flight (PREEMPT), or waits
        its turn in the project's queue (QUEUE; SUPERSEDE drops the queued ones first), or is
        refused while one is under way (REJECT: raises DeployBusy). `audit(deploymentID)` gives
        the audit entry written with it; `fields` are set on it too (holdFreeze "1": it waits in the
        queue until no freeze window is open). The fields returned say its status and `queuePosition`."""
        dep_id = uuid.uuid4().hex
        now = self.clock()
        fields = {"deploymentID": dep_id, "projectName": project, "buildID": build_id,
                  "previousBuildID": previous_build or "", "strategy": json.dumps(strategy),
                  "status": DeploymentStatus.IN_PROGRESS.value, "reason": "", "regions": json.dumps(regions),
                  "createdAt": str(now), "updatedAt": str(now), "createdBy": user,
                  **({"analysis": json.dumps(analysis)} if analysis else {}), **(fields or {})}
        entry = audit(dep_id) if audit else ""
        while True:   # the one in flight and the queue are read first, so the script is handed their keys
            prev = self.r.hget(keys.desired(project), "deploymentID") or ""
            queued = self.r.lrange(keys.deploy_queue(project), 0, -1)
            version, place = self._create(
                keys=[keys.deploy(dep_id), keys.deploys(project), keys.desired(project), keys.deployed(),
                      keys.deploy(prev) if prev else keys.deploy(dep_id), *audit_entries.keys_for(entry),
                      keys.build(build_id), keys.deploy_queue(project), *[keys.deploy(q) for q in queued], keys.events()],
                args=[json.dumps(fields), now, entry, prev, keys.desired_channel(), concurrency.value, ",".join(queued)])
            if version == -2:
                raise BuildExpired(build_id)
            if version == -3:   # name the one under way, else the first that waits
                under_way = prev and (self.get(prev) or {}).get("status") in DEPLOYMENT_ACTIVE
                raise DeployBusy(prev if under_way else (queued or [""])[0])
            if version != -1:
                status = DeploymentStatus.QUEUED if place else DeploymentStatus.IN_PROGRESS
                if place == 1:   # its turn may be now (the queue held only deployments a freeze holds)
                    self.promote_next(project)   # (or a coordinator's tick's promotion started it meanwhile)
                    status = DeploymentStatus(self.r.hget(keys.deploy(dep_id), "status"))
                return {**fields, "status": status.value,
                        "queuePosition": place if status == DeploymentStatus.QUEUED else None}

    def queue(self, project: str) -> list[str]:
        """The project's deployments waiting their turn, first first."""
        return self.r.lrange(keys.deploy_queue(project), 0, -1)

    def promote_waiting(self, projects: list[str]) -> None:
        """For each of these projects (their desired deployment has ended), start the next queued
        one: what a status change does itself, done again in case its writer died in between."""
        with self.r.pipeline(transaction=False) as p:
            for project in projects:
                p.llen(keys.deploy_queue(project))
            waiting = p.execute()
        for project, n in zip(projects, waiting):
            if n:
                self.promote_next(project)

    def promote_next(self, project: str) -> str | None:
        """Start the project's next queued deployment if the desired one has ended and no freeze
        window is open (unless the head overrode it); its ID, if one started."""
        for _ in range(1000):
            head = self.r.lindex(keys.deploy_queue(project), 0)
            if head is None:
                return None
            desired = self.r.hget(keys.desired(project), "deploymentID") or ""
            if self._held(project, head, desired):
                return None
            build = self.r.hget(keys.deploy(head), "buildID") or ""
            previous = next((b for b in self.completed_builds(project) if b != build), "")
            got = self._promote(keys=[keys.desired(project), keys.deploy_queue(project), keys.deploy(head),
                                      keys.deploy(desired) if desired else keys.deploy(head), keys.build(build),
                                      keys.events()],
                                args=[head, desired, self.clock(), keys.desired_channel(), previous])
            if got == 0:
                return None
            if got == 2:
                self._news(head)
                return head
        return None

    def _held(self, project: str, head: str, desired: str) -> bool:
        """The queue's head may not start now: a freeze window is open (its reason says so)."""
        if desired and self.r.hget(keys.deploy(desired), "status") in DEPLOYMENT_ACTIVE:
            return False   # its turn has not come: the script says so
        status, override, reason = self.r.hmget(keys.deploy(head), "status", "freezeOverride", "reason")
        if status != DeploymentStatus.QUEUED or override:
            return False
        why = self.frozen(project)
        if why and reason != f"waits for the {why}":
            self.r.hset(keys.deploy(head), "reason", f"waits for the {why}")
        return why is not None

    def set_prediction(self, dep_id: str, prediction: dict) -> None:
        """What the simulator predicted for it when it was created (shown beside its progress)."""
        self.r.hset(keys.deploy(dep_id), "prediction", json.dumps(prediction))

    def get(self, dep_id: str) -> dict | None:
        return self.r.hgetall(keys.deploy(dep_id)) or None

    def page(self, project: str, limit: int, after: str | None) -> tuple[list[dict], str | None]:
        """A project's deployments, newest first, after the cursor "<createdAt ms>:<deploymentID>"
        (ties on createdAt are ordered by ID, so none repeats or is skipped)."""
        index = keys.deploys(project)
        if after:
            ms, last_id = cursor.split(after)
            same = [m for m in self.r.zrevrangebyscore(index, ms, ms) if m < last_id]
            ids = same + self.r.zrevrangebyscore(index, f"({ms}", "-inf", start=0, num=limit + 1)
        else:
            ids = self.r.zrevrange(index, 0, limit)
        deps = [d for d in read_hashes(self.r, [keys.deploy(i) for i in ids[:limit + 1]]) if d]
        members, next_cursor = cursor.page([cursor.key(int(d["createdAt"]), d["deploymentID"]) for d in deps], limit)
        return deps[:len(members)], next_cursor

    def desired(self, project: str) -> dict:
        return self.r.hgetall(keys.desired(project))

    def desired_deployments(self, projects: list[str] | None = None) -> list[Deployment]:
        """The desired deployment of every project that has one (of `projects`, as read from
        `projects_with_desired_state`), in two round trips."""
        projects = self.projects_with_desired_state() if projects is None else projects
        ids = [row[0] for row in read_fields(self.r, [keys.desired(p) for p in projects], ("deploymentID",))]
        return [Deployment.from_hash(d) for d in read_hashes(self.r, [keys.deploy(i) for i in ids if i]) if d]

    def projects_with_desired_state(self) -> list[str]:
        return sorted(self.r.smembers(keys.deployed()))

    def set_status(self, dep_id: str, to: DeploymentStatus, reason: str = "", audit: str = "",
                   only_from=(), fields: dict | None = None) -> str | None:
        """Move the deployment to `to` if `statuses.DEPLOYMENT_FROM` allows it from where it is
        (and, if given, it is in `only_from`), setting `fields` with it. Returns the previous
        status if the change was made (and `audit` recorded), else None."""
        ok, cur = self._status(keys=[keys.deploy(dep_id), *audit_entries.keys_for(audit), keys.events()],
                               args=[to, ",".join(only_from), reason, self.clock(), audit,
                                     json.dumps(fields) if fields else ""])
        if not ok:
            return None
        self._news(dep_id)
        if to in DEPLOYMENT_TERMINAL and cur != DeploymentStatus.QUEUED:   # its turn ended: the next one's begins
            self.promote_next(self.r.hget(keys.deploy(dep_id), "projectName") or "")
        return cur

    def completed_builds(self, project: str) -> list[str]:
        """Builds of COMPLETED deployments, newest first, each once (the good builds)."""
        ids = self.r.zrevrange(keys.deploys(project), 0, 500)
        out = []
        for status, build_id in read_fields(self.r, [keys.deploy(i) for i in ids], ("status", "buildID")):
            if status == DeploymentStatus.COMPLETED and build_id not in out:
                out.append(build_id)
        return out

    def deployed_at(self, project: str) -> dict[str, int]:
        """build -> when its newest deployment was created (ms)."""
        ids = self.r.zrange(keys.deploys(project), 0, -1)
        out: dict[str, int] = {}
        for build_id, created in read_fields(self.r, [keys.deploy(i) for i in ids], ("buildID", "createdAt")):
            if build_id and created:
                out[build_id] = max(out.get(build_id, 0), int(created))
        return out

    def last_completed_build(self, project: str) -> str | None:
        """The previous good build: the newest COMPLETED deployment's."""
        return next(iter(self.completed_builds(project)), None)

    # --- each datacenter's share ----------------------------------------------------------------

    def mark_dc(self, dep_id: str, dc: str, outcome: str) -> dict[str, str]:
        self.r.hset(keys.dc_outcomes(dep_id), dc, outcome)
        self._news(dep_id)
        return self.r.hgetall(keys.dc_outcomes(dep_id))

    def dc_outcomes(self, dep_id: str) -> dict[str, str]:
        return self.r.hgetall(keys.dc_outcomes(dep_id))

    def mark_staged(self, dep_id: str, dc: str) -> None:
        if self.r.hsetnx(keys.dc_staged(dep_id), dc, self.clock()):
            self._news(dep_id)

    def staging_began(self, dep_id: str, dc: str) -> float | None:
        """When (s) the datacenter began staging the deployment's build, if it has."""
        ms = self.r.hget(keys.dc_staging(dep_id), dc)
        return int(ms) / 1000 if ms else None

    def begin_staging(self, dep_id: str, dc: str, at: float) -> float:
        """Note that the datacenter began staging at `at` (s), unless it had already; returns when it did."""
        with self.r.pipeline() as p:
            p.hsetnx(keys.dc_staging(dep_id), dc, int(at * 1000))
            p.hget(keys.dc_staging(dep_id), dc)
            return int(p.execute()[1]) / 1000

    def staged_dcs(self, dep_id: str) -> dict[str, str]:
        """dc -> ms when the datacenter finished staging the deployment's build."""
        return self.r.hgetall(keys.dc_staged(dep_id))

    def set_dc_current(self, project: str, dc: str, build_id: str) -> None:
        self.r.hset(keys.dc_current(project), dc, build_id)

    def dc_current(self, project: str) -> dict[str, str]:
        return self.r.hgetall(keys.dc_current(project))

    def save_rollout(self, dep_id: str, dc: str, rollout: dict) -> None:
        self.r.set(keys.rollout(dep_id, dc), json.dumps(rollout))

    def load_rollout(self, dep_id: str, dc: str) -> dict | None:
        raw = self.r.get(keys.rollout(dep_id, dc))
        return json.loads(raw) if raw else None

    def _news(self, dep_id: str) -> None:
        """Wake every coordinator: a status, or a datacenter's outcome or staging, changed."""
        self.r.publish(keys.desired_channel(), dep_id)

    def subscribe(self):
        """A pub/sub subscription that hears of every new deployment, every change of a
        deployment's status, and every datacenter that staged or finished one."""
        pubsub = self.r.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(keys.desired_channel())
        return pubsub
