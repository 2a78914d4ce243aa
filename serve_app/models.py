"""The public API's request and response models, in one place."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gantry.builds import DEFAULT_PRIORITY, ENV_NAME_RE, MAX_PRIORITY, MIN_PRIORITY, valid_sha

Status = Literal["QUEUED", "BUILDING", "DEPLOYING", "SUCCEEDED", "FAILED", "CANCELLED", "DEAD"]


class Error(BaseModel):
    error: str
    detail: Any = None


class ProjectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    repoURL: str = Field(min_length=1, max_length=2048)

    @field_validator("repoURL")
    @classmethod
    def _repo(cls, v: str) -> str:
        if not (v.startswith("/") or v.startswith("file:///") or v.startswith("https://")):
            raise ValueError("repoURL must be an absolute local path, a file:// URL or an https:// URL")
        if any(c in v for c in "\n\r\0") or v.startswith("-"):
            raise ValueError("repoURL contains forbidden characters")
        return v


class Project(BaseModel):
    projectName: str
    repoURL: str
    createdAt: str | None


class BuildDetails(BaseModel):
    model_config = ConfigDict(extra="allow")
    env: dict[str, str] = Field(default_factory=dict, max_length=100)

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [k for k in v if not ENV_NAME_RE.match(k) or k.startswith("GANTRY_")]
        if bad:
            raise ValueError(f"invalid environment variable names: {bad}")
        return v


class BuildIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    commitSHA: str
    buildDetails: BuildDetails | None = None
    priority: int = Field(default=DEFAULT_PRIORITY, ge=MIN_PRIORITY, le=MAX_PRIORITY)

    @field_validator("commitSHA")
    @classmethod
    def _sha(cls, v: str) -> str:
        v = v.lower()
        if not valid_sha(v):
            raise ValueError("commitSHA must be 40 or 64 hexadecimal characters")
        return v


class BuildAccepted(BaseModel):
    buildID: str
    projectName: str
    commitSHA: str
    buildStatus: Status
    createdAt: str


class BuildSummary(BaseModel):
    buildID: str
    commitSHA: str
    buildStatus: Status
    createdAt: str


class BuildPage(BaseModel):
    builds: list[BuildSummary]
    nextCursor: str | None
    limit: int


class Artifact(BaseModel):
    digest: str            # the manifest's BLAKE3 digest
    size: int | None       # bytes of the packed artifact
    chunks: int | None


class Replication(BaseModel):
    region: str
    replicationStatus: Literal["PENDING", "REPLICATED", "FAILED"]
    bytesTransferred: int
    bytesSkipped: int
    chunksTransferred: int
    chunksSkipped: int
    retries: int
    error: str | None
    updatedAt: str | None


class Build(BaseModel):
    buildID: str
    projectName: str
    commitSHA: str
    buildStatus: Status
    buildDetails: dict
    priority: int | None
    createdAt: str
    startedAt: str | None
    finishedAt: str | None
    lastHeartbeat: str | None
    retries: int
    error: str | None
    exitCode: int | None
    logTail: str | None = None
    artifact: Artifact | None
    replication: list[Replication] = []


class BuildLog(BaseModel):
    buildID: str
    offset: int
    nextOffset: int
    data: str
    complete: bool


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    buildID: str
