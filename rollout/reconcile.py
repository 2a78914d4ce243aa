"""One datacenter's next step in a project's deployment, as one pure function.

`reconcile(snapshot) -> Plan`: the snapshot is what the datacenter's coordinator knows (the
deployment, its hosts, which regions hold the replica, what the other datacenters did, the
rollout it persisted, the clock); the plan is what to change (targets and builds to stage, the
rollout to persist, this datacenter's outcome and current build, the deployment's status with
its reason). The coordinator (`gantry.actors.rollout.coordinator`) applies a plan to Redis, the
simulator (`gantry.sim.run`) to its model: a rule added here reaches both.

Stage, then activate: with `strategy.stage` "all" every live host first stages the build beside
what it runs, as soon as the region holds the replica; activation waits until every datacenter
that can stage has (`activation.may_activate`), and region waves go one after another. A host
that has not staged within the deadline counts as failed for its wave. With "wave", each wave
downloads and activates. A datacenter at an approval gate of the strategy (before a wave, or
before its region wave) holds there and the deployment waits (WAITING_APPROVAL, naming the gate)
until the gate is approved; then any datacenter's reconcile lets it go on. Where no rollout moves
hosts, every live host converges to the build the datacenter runs (a host that joined or came
back late); a region that joined the stack during a deployment runs its build once the
deployment is COMPLETED and the region holds the replica.
"""
from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from gantry.records import Deployment, HostView
from gantry.rollout.activation import may_activate, staging, stragglers, to_unstage
from gantry.rollout.approvals import region_gate, wave_gates
from gantry.rollout.dc_rollout import DcRollout
from gantry.rollout.waves import Strategy
from gantry.statuses import BuildStatus, DcPhase, DeploymentStatus, HostState, allowed

D = DeploymentStatus


@dataclass
class Snapshot:
    dc: str
    region: str
    dcs_by_region: dict[str, list[str]]
    deployment: Deployment
    hosts: dict[str, HostView]          # the datacenter's hosts that serve the project
    holding: Collection[str]            # regions whose store holds the build's replica
    staged_dcs: Collection[str]         # datacenters that have staged the build
    outcomes: dict[str, str]            # datacenter -> its DcPhase outcome for the deployment
    rollout: DcRollout | None           # as persisted; the plan carries it advanced
    current: str | None                 # the build this datacenter runs for the project
    now: float
    build_status: str | None = None     # needed only while the region lacks the replica
    build_error: str = ""
    staging_began: float | None = None  # when this datacenter began staging the build
    stage_deadline_s: float = float("inf")
    analysis: dict[int, tuple[str, str]] = field(default_factory=dict)   # wave -> its canary analysis's verdict here
    approved: Collection[str] = ()      # the deployment's approval gates that are approved ("wave:2", ...)


@dataclass
class Plan:
    targets: dict[str, str] = field(default_factory=dict)   # host -> build to run
    stages: dict[str, str] = field(default_factory=dict)    # host -> build to stage ("": none)
    late: list[str] = field(default_factory=list)           # hosts that did not stage in time
    staging_began: float | None = None                      # set when staging begins here
    staged: bool = False                                    # every live host has staged (or is late)
    rollout: DcRollout | None = None                        # to persist
    outcome: str | None = None                              # this datacenter's new outcome
    current: str | None = None                              # this datacenter now runs it
    status: tuple[DeploymentStatus, str] | None = None      # the deployment's next status, and why
    awaiting: str = ""                                      # with WAITING_APPROVAL: the gate it waits at
    moving: bool = False                                    # a rollout moves (or holds) hosts here


def reconcile(s: Snapshot) -> Plan:
    plan = Plan()
    dep = s.deployment
    if dep.status == D.WAITING_APPROVAL and dep.awaiting in s.approved:
        _status(plan, dep, D.IN_PROGRESS, f"{dep.awaiting} approved")
    going_back = s.rollout is not None and s.rollout.phase in (DcPhase.ROLLING_BACK, DcPhase.ROLLED_BACK)
    if dep.status.active and dep.stage_all and going_back:
        # a host back on the previous build with the new one staged reports `staged` about the
        # new one, so it would never count as running the previous: take the new one back
        unstage("", s.hosts.values(), plan)
    elif dep.status.active and dep.stage_all:
        if s.region in s.holding:
            plan.staged = stage(dep.build_id, s.hosts.values(), plan, s)
    elif dep.status.active:   # "wave": each wave downloads; nothing older stays staged
        unstage(dep.build_id, s.hosts.values(), plan)
    elif dep.status in (D.ROLLED_BACK, D.ABORTED):
        unstage("", [h for h in s.hosts.values() if h.stage_build == dep.build_id], plan)
    plan.moving = _roll(s, plan)
    if (dep.status == D.COMPLETED and dep.regions and s.region not in dep.regions and s.region in s.holding
            and s.current != dep.build_id):
        plan.current = dep.build_id   # a region that joined during it converges once it is done
    current = plan.current or s.current
    if not plan.moving and current:
        for host, v in s.hosts.items():
            if v.state != HostState.LOST and v.target_build != current:
                plan.targets[host] = current
    return plan


def stage(build: str, hosts: Collection[HostView], plan: Plan, s: Snapshot | None = None) -> bool:
    """Tell every live host to stage `build` (the region holds it); True when each has staged
    it, failed to, runs it already, or is lost. With a deployment's snapshot `s`, once its
    staging deadline here has passed, the hosts still at it are late and staging is over: one
    host that cannot stage does not hold every datacenter."""
    tell, running, done = staging(build, hosts)
    unstage(build, running, plan)   # they run the build: an older staged one is not coming
    plan.stages.update((h, build) for h in tell)
    if done or s is None:
        return done
    began = s.staging_began
    if began is None:
        began = plan.staging_began = s.now
    if s.now < began + s.stage_deadline_s:
        return False
    plan.late += [h.host_id for h in stragglers(build, hosts) if h.stage_late != build]
    return True


def unstage(keep: str, hosts: Collection[HostView], plan: Plan) -> None:
    """Take back every build to stage but `keep`."""
    plan.stages.update((h, "") for h in to_unstage(keep, hosts))


def _roll(s: Snapshot, plan: Plan) -> bool:
    """Step the datacenter's rollout; True while it moves (or holds, paused) hosts here."""
    dep, dc = s.deployment, s.dc
    if dep.status == D.ROLLED_BACK:   # take back what this datacenter moved, once
        if s.outcomes.get(dc) not in (None, DcPhase.DONE):
            return False
    elif not dep.status.active:
        return False
    elif s.rollout is None:   # once started here, a rollout goes on
        region_waves = dep.strategy.get("regionWaves") or [[r] for r in dep.regions]
        if not may_activate(s.region, region_waves, _made_for(s), s.holding.__contains__, dep.stage_all,
                            s.staged_dcs, s.outcomes):
            return False
        gate = region_gate(dep.strategy, region_waves, s.region)
        if gate and gate not in s.approved and s.region in s.holding:
            _wait(plan, dep, gate, dc)
            return False
    rollout = s.rollout
    if rollout is None and dep.status != D.ROLLED_BACK and s.region not in s.holding:
        if s.build_status not in (BuildStatus.DEPLOYING, BuildStatus.SUCCEEDED):   # a failed build never lands
            _status(plan, dep, D.ROLLED_BACK, f"build {dep.build_id} is {s.build_status or 'missing'}: "
                                              f"{s.build_error or 'no replica in ' + s.region}")
        return False
    if dep.status == D.ROLLED_BACK:
        if rollout is None:   # never started here: nothing to take back
            plan.outcome = DcPhase.UNTOUCHED
            return False
        rollout.roll_back(dep.reason or "rolled back")
    if rollout is None:
        strategy = dep.strategy
        rollout = DcRollout.start(dep.build_id, dep.previous_build, [h for h, v in s.hosts.items() if not v.lost],
                                  Strategy(steps=tuple(strategy["steps"]), min_healthy=strategy["minHealthy"],
                                           bake_s=strategy["bakeS"]), analyze=bool(dep.analysis),
                                  gates=wave_gates(strategy))
    if dep.status == D.PAUSED:
        rollout.pause()
    else:
        rollout.resume()
    plan.targets.update(rollout.step(s.hosts, s.now, s.analysis.get(rollout.wave), s.approved))
    plan.rollout = rollout
    if rollout.awaiting:
        _wait(plan, dep, rollout.awaiting, dc)
    if rollout.held and dep.status == D.IN_PROGRESS:   # a person decides: resume goes on, abort rolls back
        _status(plan, dep, D.PAUSED, f"{rollout.held} ({dc}, wave {rollout.wave + 1})")
    if rollout.phase == DcPhase.DONE:
        if s.outcomes.get(dc) != DcPhase.DONE:
            plan.current, plan.outcome = rollout.build_id, DcPhase.DONE
        done = {**s.outcomes, dc: DcPhase.DONE}
        # the regions it was made for: a region that joined the stack meanwhile holds nothing open
        if all(done.get(d) == DcPhase.DONE for r in dep.regions for d in s.dcs_by_region.get(r, ())):
            _status(plan, dep, D.COMPLETED, "")
    elif rollout.phase == DcPhase.ROLLED_BACK and s.outcomes.get(dc) != DcPhase.ROLLED_BACK:
        plan.current = rollout.previous_build
        plan.outcome = DcPhase.ROLLED_BACK
        _status(plan, dep, D.ROLLED_BACK, f"{dc}: {rollout.reason}")
    return rollout.phase not in (DcPhase.DONE, DcPhase.ROLLED_BACK)


def _made_for(s: Snapshot) -> dict[str, list[str]]:
    """The datacenters of the regions the deployment was made for (a region that joined the stack
    since is not waited for)."""
    regions = s.deployment.regions
    return {r: dcs for r, dcs in s.dcs_by_region.items() if not regions or r in regions}


def _wait(plan: Plan, dep: Deployment, gate: str, dc: str) -> None:
    """The deployment waits at an approval gate (once: it may wait at one gate at a time)."""
    if dep.status == D.IN_PROGRESS and plan.status is None:
        plan.status, plan.awaiting = (D.WAITING_APPROVAL, f"approval needed before {gate} ({dc} is there)"), gate


def _status(plan: Plan, dep: Deployment, to: DeploymentStatus, reason: str) -> None:
    if allowed(dep.status, to):
        plan.status = (to, reason)
