"""Every transition of builds, replication rows, deployments and hosts, allowed and refused,
walked against the spec written out here (independently of the tables in gantry.statuses)."""
import itertools

import pytest

from gantry.statuses import (BUILD_TERMINAL, DEPLOYMENT_ACTIVE, DEPLOYMENT_TERMINAL, BuildStatus, DeploymentStatus,
                             HostState, ReplicationStatus, allowed)

B, R, D, H = BuildStatus, ReplicationStatus, DeploymentStatus, HostState

ALLOWED = {
    BuildStatus: {
        (B.QUEUED, B.BUILDING), (B.BUILDING, B.QUEUED), (B.BUILDING, B.DEPLOYING), (B.BUILDING, B.FAILED),
        (B.BUILDING, B.DEAD), (B.BUILDING, B.CANCELLED), (B.QUEUED, B.CANCELLED), (B.DEPLOYING, B.SUCCEEDED),
        (B.DEPLOYING, B.FAILED), (B.DEPLOYING, B.CANCELLED),
        (B.FAILED, B.DEPLOYING),   # only a build whose replication gave up, on an operator's retry
        (B.SUCCEEDED, B.EXPIRED),  # retention let it go
    },
    ReplicationStatus: {
        (R.PENDING, R.RETRYING), (R.PENDING, R.REPLICATED), (R.PENDING, R.FAILED), (R.RETRYING, R.RETRYING),
        (R.RETRYING, R.REPLICATED), (R.RETRYING, R.FAILED), (R.FAILED, R.PENDING),
    },
    DeploymentStatus: {
        (D.IN_PROGRESS, D.PAUSED), (D.PAUSED, D.IN_PROGRESS), (D.IN_PROGRESS, D.COMPLETED),
        (D.IN_PROGRESS, D.ROLLED_BACK), (D.PAUSED, D.ROLLED_BACK), (D.IN_PROGRESS, D.ABORTED), (D.PAUSED, D.ABORTED),
        (D.IN_PROGRESS, D.SUPERSEDED), (D.PAUSED, D.SUPERSEDED),
        # the deploy queue: a queued one starts in its turn, or is aborted or superseded while it waits
        (D.QUEUED, D.IN_PROGRESS), (D.QUEUED, D.ABORTED), (D.QUEUED, D.SUPERSEDED),
        # an approval gate: waits, is approved, paused or ended there like any deployment under way
        (D.IN_PROGRESS, D.WAITING_APPROVAL), (D.WAITING_APPROVAL, D.IN_PROGRESS), (D.WAITING_APPROVAL, D.PAUSED),
        (D.WAITING_APPROVAL, D.ROLLED_BACK), (D.WAITING_APPROVAL, D.ABORTED), (D.WAITING_APPROVAL, D.SUPERSEDED),
    },
    HostState: {
        (H.IDLE, H.DOWNLOADING), (H.IDLE, H.ACTIVE), (H.DOWNLOADING, H.ACTIVE), (H.DOWNLOADING, H.FAILED),
        (H.ACTIVE, H.DOWNLOADING), (H.FAILED, H.DOWNLOADING), (H.FAILED, H.ACTIVE),
        # staging: downloaded and unpacked beside the running build, then activated (or failed)
        (H.DOWNLOADING, H.STAGED), (H.STAGED, H.DOWNLOADING), (H.STAGED, H.ACTIVE), (H.STAGED, H.FAILED),
        (H.ACTIVE, H.STAGED), (H.IDLE, H.STAGED), (H.FAILED, H.STAGED),
        *((s, H.LOST) for s in H if s is not H.LOST), *((H.LOST, s) for s in H if s is not H.LOST),
    },
}
EVERY_PAIR = [(kind, cur, to) for kind in ALLOWED for cur, to in itertools.product(kind, kind) if cur is not to]


@pytest.mark.parametrize("kind,cur,to", EVERY_PAIR, ids=[f"{k.__name__}:{c}->{t}" for k, c, t in EVERY_PAIR])
def test_every_transition_is_allowed_or_refused_as_specified(kind, cur, to):
    assert allowed(cur, to) is ((cur, to) in ALLOWED[kind])


def test_finished_builds_and_deployments_stay_finished():
    for to in BuildStatus:
        for cur in BUILD_TERMINAL - {B.FAILED, B.SUCCEEDED}:
            assert not allowed(cur, to)
    assert [to for to in BuildStatus if allowed(B.SUCCEEDED, to)] == [B.EXPIRED]
    for cur, to in itertools.product(DEPLOYMENT_TERMINAL, DeploymentStatus):
        assert not allowed(cur, to)
    assert DEPLOYMENT_ACTIVE | DEPLOYMENT_TERMINAL | {DeploymentStatus.QUEUED} == set(DeploymentStatus)


def test_statuses_read_and_compare_as_their_plain_names():
    # they travel through Redis and JSON as plain strings
    assert B.QUEUED == "QUEUED" and f"{H.ACTIVE}" == "active" and str(D.COMPLETED) == "COMPLETED"
