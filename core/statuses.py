"""Every status and state in gantry, and the transitions each may make.

The tables are the rules; the Redis scripts enforce them atomically (they are rendered with these
names, see `gantry.state.scripts`), and nothing else spells a status as a string.

  builds        QUEUED -> BUILDING -> DEPLOYING -> SUCCEEDED (-> EXPIRED by retention); FAILED, CANCELLED,
                DEAD end it early
  replication   (one row per build and region) PENDING -> RETRYING* -> REPLICATED | FAILED
  deployments   (QUEUED ->) IN_PROGRESS <-> PAUSED | WAITING_APPROVAL -> COMPLETED | ROLLED_BACK | ABORTED |
                SUPERSEDED
  hosts         idle -> downloading -> active | failed; any -> lost (silent); lost -> as reported
  datacenter    a deployment's share of one datacenter: ROLLING <-> BAKING -> DONE, or ROLLING_BACK
  rollouts      -> ROLLED_BACK; PAUSED holds (see rollout/dc_rollout.py)
"""
from __future__ import annotations

from enum import StrEnum


class BuildStatus(StrEnum):
    QUEUED = "QUEUED"
    BUILDING = "BUILDING"
    DEPLOYING = "DEPLOYING"     # built and in the primary store; replicating to the other regions
    SUCCEEDED = "SUCCEEDED"     # in every region's store
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    DEAD = "DEAD"               # infrastructure faults used up its retries
    EXPIRED = "EXPIRED"         # SUCCEEDED once; retention let it go: its chunks may be swept, it deploys no more

    @property
    def terminal(self) -> bool:
        return self in BUILD_TERMINAL


class ReplicationStatus(StrEnum):
    PENDING = "PENDING"
    RETRYING = "RETRYING"
    REPLICATED = "REPLICATED"
    FAILED = "FAILED"


class DeploymentStatus(StrEnum):
    QUEUED = "QUEUED"            # waits for the project's deployment under way (deploy.concurrency "queue")
    IN_PROGRESS = "IN_PROGRESS"
    PAUSED = "PAUSED"
    WAITING_APPROVAL = "WAITING_APPROVAL"   # at an approval gate of its strategy: a person with the role says go
    COMPLETED = "COMPLETED"
    ROLLED_BACK = "ROLLED_BACK"
    ABORTED = "ABORTED"
    SUPERSEDED = "SUPERSEDED"

    @property
    def active(self) -> bool:
        return self in DEPLOYMENT_ACTIVE


class HostState(StrEnum):
    IDLE = "idle"
    DOWNLOADING = "downloading"
    STAGED = "staged"          # the new build unpacked in releases/<buildID>, not yet switched to
    ACTIVE = "active"
    FAILED = "failed"
    LOST = "lost"


class DcPhase(StrEnum):
    ROLLING = "ROLLING"
    BAKING = "BAKING"
    DONE = "DONE"
    ROLLING_BACK = "ROLLING_BACK"
    ROLLED_BACK = "ROLLED_BACK"
    PAUSED = "PAUSED"
    UNTOUCHED = "UNTOUCHED"     # an outcome only: the deployment ended before it reached the datacenter
    WAITING_FOR_REPLICA = "WAITING_FOR_REPLICA"   # shown only: not started, the region's replica is not in yet


class AnalysisOutcome(StrEnum):
    """A canary analysis's word on a measurement, an interval or a whole wave."""
    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"   # no data, too few samples, or a marginal score: a person decides
    SKIPPED = "SKIPPED"             # a measurement not taken: no host is left on the previous build to compare with


TIMED_OUT = "TIMED_OUT"   # a simulation's outcome when its deployment had not ended by the limit

B, R, D, H = BuildStatus, ReplicationStatus, DeploymentStatus, HostState

BUILD_TERMINAL = frozenset({B.SUCCEEDED, B.FAILED, B.CANCELLED, B.DEAD, B.EXPIRED})
DEPLOYMENT_ACTIVE = frozenset({D.IN_PROGRESS, D.PAUSED, D.WAITING_APPROVAL})
DEPLOYMENT_TERMINAL = frozenset(D) - DEPLOYMENT_ACTIVE - {D.QUEUED}

# Each table maps a status to the statuses it may be entered from.
BUILD_FROM: dict[BuildStatus, frozenset[BuildStatus]] = {
    B.QUEUED: frozenset({B.BUILDING}),  # retry after an infrastructure fault
    B.BUILDING: frozenset({B.QUEUED}),
    B.DEPLOYING: frozenset({B.BUILDING, B.FAILED}),  # FAILED: replication given up, then retried
    B.SUCCEEDED: frozenset({B.DEPLOYING}),
    B.FAILED: frozenset({B.BUILDING, B.DEPLOYING}),
    B.CANCELLED: frozenset({B.QUEUED, B.BUILDING, B.DEPLOYING}),
    B.DEAD: frozenset({B.BUILDING}),
    B.EXPIRED: frozenset({B.SUCCEEDED}),
}

REPLICATION_FROM: dict[ReplicationStatus, frozenset[ReplicationStatus]] = {
    R.PENDING: frozenset({R.FAILED}),   # an operator's retry starts a given-up region again
    R.RETRYING: frozenset({R.PENDING, R.RETRYING}),
    R.REPLICATED: frozenset({R.PENDING, R.RETRYING}),
    R.FAILED: frozenset({R.PENDING, R.RETRYING}),
}

DEPLOYMENT_FROM: dict[DeploymentStatus, frozenset[DeploymentStatus]] = {
    D.QUEUED: frozenset(),   # a new deployment starts IN_PROGRESS, or QUEUED behind the one under way
    D.IN_PROGRESS: frozenset({D.PAUSED, D.QUEUED, D.WAITING_APPROVAL}),   # resume, its turn came
                                                                          # (promote_deployment.lua), or approved
    D.PAUSED: frozenset({D.IN_PROGRESS, D.WAITING_APPROVAL}),
    D.WAITING_APPROVAL: frozenset({D.IN_PROGRESS}),
    D.COMPLETED: frozenset({D.IN_PROGRESS}),
    D.ROLLED_BACK: DEPLOYMENT_ACTIVE,
    D.ABORTED: DEPLOYMENT_ACTIVE | {D.QUEUED},
    D.SUPERSEDED: DEPLOYMENT_ACTIVE | {D.QUEUED},
}

# A host agent starts idle (or active, with a release installed), downloads a new target, and
# ends active or failed; staging downloads and unpacks a build without switching to it (staged),
# and activating a staged build downloads nothing. A failed host goes back to active when its
# target returns to the build it runs. `lost` is the coordinator's verdict on a silent host; one
# that comes back reports whatever it is.
HOST_FROM: dict[HostState, frozenset[HostState]] = {
    H.IDLE: frozenset({H.LOST}),
    H.DOWNLOADING: frozenset({H.IDLE, H.ACTIVE, H.STAGED, H.FAILED, H.LOST}),
    H.STAGED: frozenset({H.IDLE, H.DOWNLOADING, H.ACTIVE, H.FAILED, H.LOST}),
    H.ACTIVE: frozenset({H.IDLE, H.DOWNLOADING, H.STAGED, H.FAILED, H.LOST}),
    H.FAILED: frozenset({H.DOWNLOADING, H.STAGED, H.LOST}),
    H.LOST: frozenset({H.IDLE, H.DOWNLOADING, H.STAGED, H.ACTIVE, H.FAILED}),
}

class DeploymentOp(StrEnum):
    """What a user may do to a deployment in flight (`POST .../deployments/{id}?op=`)."""
    PAUSE = "PAUSE"
    RESUME = "RESUME"
    ABORT = "ABORT"


DEPLOYMENT_OPS = {DeploymentOp.PAUSE: D.PAUSED, DeploymentOp.RESUME: D.IN_PROGRESS, DeploymentOp.ABORT: D.ABORTED}
OP_ONLY_FROM = {DeploymentOp.RESUME: (D.PAUSED,)}   # a queued deployment starts in its turn, not on a resume


class Concurrency(StrEnum):
    """What a new deployment of a project does while another is under way (`deploy.concurrency`)."""
    QUEUE = "queue"           # it waits its turn
    SUPERSEDE = "supersede"   # the queued ones not yet started are dropped for it; it waits its turn
    REJECT = "reject"         # 409, naming the one under way
    PREEMPT = "preempt"       # it replaces the one under way at once (a rollback; the store's default)


class AttemptEnd(StrEnum):
    """How a build attempt ended when it did not leave the build in a status of its own."""
    LEASE_LOST = "LEASE_LOST"   # another attempt holds the build (check_in.lua says so)
    UNKNOWN = "UNKNOWN"


TABLES = {BuildStatus: BUILD_FROM, ReplicationStatus: REPLICATION_FROM, DeploymentStatus: DEPLOYMENT_FROM,
          HostState: HOST_FROM}


def allowed(current, to) -> bool:
    """Whether a `current` status may become `to` (both of the same kind)."""
    return current in TABLES[type(to)][to]
