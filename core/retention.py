"""Which builds and build caches a project keeps: pure decisions over plain data, with the reason
for each, so `gantry gc --dry-run` can say why anything would go.

A SUCCEEDED build is kept while any of these holds (else it expires):
  - it is among the newest `keepLast` successful builds;
  - a deployment of it was created in the last `keepDeployedDays` days;
  - it is in use: desired, run or staged by a datacenter or host, or what a rollback would pick;
  - it is pinned.
A cache (one branch's) goes when it was last used (saved or restored) more than `cacheUnusedDays`
ago, then least recently used first while the project's caches hold more than `cacheMaxBytes`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

DAY_MS = 24 * 3600 * 1000


class RetentionIn(BaseModel):
    """A project's retention policy; what it leaves out keeps its default."""
    model_config = ConfigDict(extra="forbid")
    keepLast: int = Field(20, ge=1, le=10_000, description="the newest successful builds kept whatever else holds")
    keepDeployedDays: float = Field(30, ge=0, le=3650, description="a build deployed this recently is kept")
    cacheUnusedDays: float = Field(14, ge=0, le=3650, description="a build cache unused this long goes")
    cacheMaxBytes: int = Field(20 << 30, ge=0, description="a project's caches, least recently used go first past this")


@dataclass(frozen=True)
class BuildFacts:
    buildID: str
    createdAt: int          # ms
    pinned: bool = False


@dataclass
class Verdict:
    keep: bool
    reasons: list[str] = field(default_factory=list)


def decide_builds(policy: RetentionIn, succeeded: list[BuildFacts], deployed_at: dict[str, int],
                  in_use: dict[str, str], now_ms: int) -> dict[str, Verdict]:
    """`succeeded`: the project's SUCCEEDED builds; `deployed_at`: build -> when its newest deployment
    was created (ms); `in_use`: build -> how it is in use. Returns build -> verdict."""
    newest = sorted(succeeded, key=lambda b: (b.createdAt, b.buildID), reverse=True)
    horizon = now_ms - policy.keepDeployedDays * DAY_MS
    out = {}
    for rank, b in enumerate(newest):
        reasons = []
        if rank < policy.keepLast:
            reasons.append(f"among the newest {policy.keepLast} successful builds")
        if deployed_at.get(b.buildID, -1) >= horizon:
            reasons.append(f"deployed in the last {policy.keepDeployedDays:g} days")
        if b.buildID in in_use:
            reasons.append(in_use[b.buildID])
        if b.pinned:
            reasons.append("pinned")
        if reasons:
            out[b.buildID] = Verdict(True, reasons)
        else:
            deployed = deployed_at.get(b.buildID)
            last = f"last deployed {(now_ms - deployed) / DAY_MS:.1f} days ago" if deployed is not None else "never deployed"
            out[b.buildID] = Verdict(False, [f"successful build number {rank + 1} from the newest (keepLast "
                                             f"{policy.keepLast}), {last}, not pinned, not in use"])
    return out


@dataclass(frozen=True)
class CacheFacts:
    branch: str
    usedAt: int             # ms: saved or last restored
    bytes: int


def decide_caches(policy: RetentionIn, caches: list[CacheFacts], now_ms: int) -> dict[str, Verdict]:
    """branch -> verdict for each of a project's caches."""
    out, held = {}, 0
    for c in sorted(caches, key=lambda c: (c.usedAt, c.branch), reverse=True):
        idle_days = (now_ms - c.usedAt) / DAY_MS
        if idle_days > policy.cacheUnusedDays:
            out[c.branch] = Verdict(False, [f"unused for {idle_days:.1f} days (cacheUnusedDays {policy.cacheUnusedDays:g})"])
        elif held + c.bytes > policy.cacheMaxBytes:
            out[c.branch] = Verdict(False, [f"the project's more recently used caches hold {held} bytes; this "
                                            f"one's {c.bytes} would pass cacheMaxBytes {policy.cacheMaxBytes}"])
        else:
            held += c.bytes
            out[c.branch] = Verdict(True, [f"used {idle_days:.1f} days ago"])
    return out
