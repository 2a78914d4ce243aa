"""What hosts send their datacenter's coordinator (`actors/rollout/host_gateway.py`): reports,
watches, peer and origin queries, repair requests. A host is not trusted: every field is bounded."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from gantry.statuses import HostState as H

ReportedState = Literal[H.IDLE, H.DOWNLOADING, H.STAGED, H.ACTIVE, H.FAILED]   # lost is the coordinator's word

ProjectName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")]


class ProjectReport(BaseModel):
    """What a host does for one project."""
    state: ReportedState
    activeBuildID: str | None = Field(default=None, max_length=64)
    error: str = Field(default="", max_length=1000)
    about: str | None = Field(default=None, max_length=64)   # the build this state concerns


Digest = Annotated[str, Field(pattern=r"^blake3:[0-9a-f]{64}$")]
HostID = Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
# host:port of a peer server, pasted into other hosts' URLs: a name or an address, and a port; nothing else
PeerAddress = Annotated[str, Field(pattern=r"^(\[[0-9a-fA-F:.]{2,45}\]|[A-Za-z0-9][A-Za-z0-9.-]{0,252}):"
                                           r"([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$")]
Bits = Annotated[str, Field(max_length=180_000)]   # a base64 bitfield over chunk indexes (artifacts.bitfield)


class ArtifactHeld(BaseModel):
    """What a host holds of one artifact: its whole bitfield (`bits`), or what it added since
    the last one the coordinator took (`add`); neither: nothing new, still held."""
    artifact: Digest
    chunks: int = Field(ge=0, le=1 << 20)   # the artifact's unique chunks: the bitfield's length
    bits: Bits | None = None
    add: Bits | None = None
    complete: bool = False


class HeartbeatIn(BaseModel):
    hostID: HostID
    region: str = Field(max_length=64)
    address: PeerAddress
    rack: str = Field(default="", max_length=64)
    projects: dict[ProjectName, ProjectReport] = Field(default_factory=dict, max_length=100)
    serves: list[ProjectName] | None = Field(default=None, max_length=100)   # None: every project
    artifacts: list[ArtifactHeld] = Field(default_factory=list, max_length=32)
    download: dict = Field(default_factory=dict)
    activation: dict = Field(default_factory=dict)   # its last switch, start and health check


class WatchIn(BaseModel):
    """Wait up to `waitS` for the host's targets to change from `version`."""
    hostID: HostID
    version: int = Field(ge=0)
    waitS: float = Field(default=10, ge=0, le=60)


class PeersIn(BaseModel):
    hostID: HostID
    address: PeerAddress
    rack: str = Field(default="", max_length=64)
    artifact: Digest
    chunks: int = Field(ge=1, le=1 << 20)
    wanted: Bits   # the chunks it still wants
    have: Bits     # the chunks it holds
    failed: list[PeerAddress] = Field(default_factory=list, max_length=16)   # peers that lack chunks they claim
    busy: list[PeerAddress] = Field(default_factory=list, max_length=16)     # peers that answered only 503 for long
    served: list[PeerAddress] = Field(default_factory=list, max_length=16)   # peers that gave it verified chunks


class OriginIn(BaseModel):
    hostID: HostID
    artifact: Digest
    digests: list[Digest] = Field(max_length=1_000)   # the daemon asks for URL_BATCH at once


class RepairIn(BaseModel):
    """A host got bytes from its regional store that do not match the chunk's digest."""
    hostID: HostID
    digest: Digest
