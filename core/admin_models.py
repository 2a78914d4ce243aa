"""The API's admin models: the audit log, the archive and garbage collection."""
from __future__ import annotations

from pydantic import BaseModel

from gantry.retention import RetentionIn


class AuditEntry(BaseModel):
    auditID: str
    at: str
    user: str
    action: str
    project: str | None
    target: str | None
    detail: dict


class AuditPage(BaseModel):
    entries: list[AuditEntry]
    nextCursor: str | None
    limit: int


class ArchiveResult(BaseModel):
    moved: dict[str, int]


class ExpiredBuild(BaseModel):
    buildID: str
    reason: str


class KeptBuild(BaseModel):
    buildID: str
    reasons: list[str]


class DroppedCache(BaseModel):
    branch: str
    reason: str


class ProjectRetention(BaseModel):
    policy: RetentionIn
    expired: list[ExpiredBuild]      # a dry run: would expire
    kept: list[KeptBuild]
    caches: list[DroppedCache]       # dropped (a dry run: would be)
    archived: int                    # expired builds whose records and logs moved to the archive


class RegionTally(BaseModel):
    keptObjects: int
    keptBytes: int
    reclaimedObjects: int            # a dry run: would be deleted
    reclaimedBytes: int
    youngObjects: int                # unreferenced, but written within the grace period: left for later


class GcReport(BaseModel):
    dryRun: bool
    startedAt: str
    seconds: float
    projects: dict[str, ProjectRetention]
    regions: dict[str, RegionTally]
    sweep: str                       # swept, or why not
