"""The public API's request and response models, in one place."""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gantry.retention import RetentionIn
from gantry.rollout.analysis import AnalysisIn
from gantry.rollout.approvals import ApprovalGate
from gantry.rollout.freeze import FreezeIn
from gantry.notify.subscriptions import GitHubIn, SubscriptionIn
from gantry.builds import BRANCH_RE, DEFAULT_PRIORITY, ENV_NAME_RE, MAX_PRIORITY, MIN_PRIORITY, valid_sha
from gantry.statuses import BuildStatus, DcPhase, DeploymentStatus, ReplicationStatus



class Error(BaseModel):
    error: str
    detail: Any = None


class RateLimit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    perSecond: float = Field(gt=0, le=10_000)
    burst: int = Field(ge=1, le=100_000)


class BuildSettings(BaseModel):
    """How to build a commit that has no gantry.toml (where it has one, the file wins field by field)."""
    model_config = ConfigDict(extra="forbid")
    command: str | None = Field(default=None, max_length=65536, description="run with sh -c in the checkout")
    output: str | None = Field(default=None, max_length=4096, description="directory that becomes the artifact")
    timeout: float | None = Field(default=None, description="seconds")
    fetch: str | None = Field(default=None, max_length=65536, description="runs first, with network only to "
                                                                     "egressAllow, through gantry's proxy")
    cache: list[str] | None = Field(default=None, description="paths kept between builds: in the checkout, or ~/...")
    cpus: float | None = Field(default=None, description="reserved on a builder; its cgroup's CPU limit")
    memoryMB: int | None = Field(default=None, description="reserved on a builder; its cgroup's memory limit")
    submodules: bool | None = None


class DeploySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: str | None = Field(default=None, max_length=65536)
    health: str | None = Field(default=None, max_length=65536)
    metricsPort: int | None = Field(default=None, ge=1, le=65535, description="where the app serves Prometheus "
                                    "metrics, at each host's address (the stack's Prometheus scrapes it)")
    concurrency: Literal["queue", "supersede", "reject"] | None = Field(
        default=None, description="a deployment asked for while another is under way: waits its turn (queue, the "
                                  "default), drops the queued ones for itself (supersede), or is refused (reject)")
    auto: bool | None = Field(default=None, description="each build of the default branch that SUCCEEDS deploys "
                              "itself with the default strategy, through the queue, freezes and approvals")
    duringFreeze: Literal["refuse", "wait"] | None = Field(
        default=None, description="a deployment asked for inside a freeze window: 409 (refuse, the default) or "
                                  "QUEUED until the window ends (wait); an automatic one always waits")
    strategy: StrategyIn | None = Field(default=None, description="the default strategy (automatic deployments use it)")


class ProjectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    repoURL: str = Field(min_length=1, max_length=2048)
    webhookSecret: str | None = Field(default=None, min_length=16, max_length=256,
                                      description="HMAC secret for GitHub push webhooks; never returned")
    defaultBranch: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._/-]{1,255}$")
    coalesce: bool | None = Field(default=None, description="a newer default-branch build cancels "
                                                            "the QUEUED default-branch builds it supersedes")
    rateLimit: RateLimit | None = Field(default=None, description="writes per second for this project")
    prestage: bool | None = Field(default=None, description="stage each build on the project's hosts as soon "
                                                            "as it SUCCEEDS, before anyone deploys it")
    build: BuildSettings | None = Field(default=None, description="replaces the project's build settings")
    deploy: DeploySettings | None = Field(default=None, description="replaces the project's deploy hooks")
    egressAllow: list[str] | None = Field(default=None, max_length=64,
                                          description="host or host:port the fetch step may reach (80 and 443 "
                                                      "when no port is given)")
    retention: RetentionIn | None = Field(default=None, description="replaces the project's retention policy")
    analysis: AnalysisIn | None = Field(default=None, description="canary analysis of each wave (replaces it)")
    prometheusURL: str | None = Field(default=None, pattern=r"^(https?://[^\s]{1,2040})?$",
                                      description="an existing Prometheus for its analysis (\"\": the stack's)")
    freeze: list[FreezeIn] | None = Field(default=None, max_length=50, description="its deploy freeze windows (replaces them)")
    notifications: list[SubscriptionIn] | None = Field(default=None, max_length=50, description="who hears of its "
                                                       "builds and deployments (replaces them; secrets are never returned)")
    github: GitHubIn | None = Field(default=None, description="commit statuses and Deployments on GitHub ({}: none)")

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
    defaultBranch: str = "main"
    coalesce: bool = False
    webhookConfigured: bool = False
    webhookPath: str
    rateLimit: RateLimit
    prestage: bool = False
    build: dict = Field(default_factory=dict)
    deploy: dict = Field(default_factory=dict)
    egressAllow: list[str] = Field(default_factory=list)
    retention: RetentionIn = Field(default_factory=RetentionIn)
    analysis: AnalysisIn | None = None
    prometheusURL: str | None = None
    freeze: list[FreezeIn] = Field(default_factory=list)
    notifications: list[dict] = Field(default_factory=list)
    github: dict | None = None


class BuildDetails(BaseModel):
    model_config = ConfigDict(extra="allow")
    env: dict[str, str] = Field(default_factory=dict, max_length=100)
    branch: str | None = Field(default=None, max_length=200)   # its cache is the branch's only if the commit is on it

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [k for k in v if not ENV_NAME_RE.match(k) or k.startswith("GANTRY_")]
        if bad:
            raise ValueError(f"invalid environment variable names: {bad}")
        return v

    @field_validator("branch")
    @classmethod
    def _branch(cls, v: str | None) -> str | None:
        if v is not None and not BRANCH_RE.match(v):
            raise ValueError("not a branch name (letters, digits, '.', '_', '-' and '/' between parts)")
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
    buildStatus: BuildStatus
    createdAt: str


class BuildSummary(BaseModel):
    buildID: str
    commitSHA: str
    buildStatus: BuildStatus
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
    replicationStatus: ReplicationStatus
    bytesTransferred: int
    bytesSkipped: int
    chunksTransferred: int
    chunksSkipped: int
    retries: int
    error: str | None
    updatedAt: str | None
    source: str | None = Field(None, description="the region this copy came from (replication is a tree)")


class BuildCache(BaseModel):
    restoredBytes: int
    savedBytes: int        # uploaded: what the store did not hold yet
    hit: bool
    branch: str | None     # whose cache was restored


class BuildResources(BaseModel):
    cpus: float
    memoryMB: int


class Build(BaseModel):
    buildID: str
    projectName: str
    commitSHA: str
    buildStatus: BuildStatus
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
    supersededBy: str | None = None    # set when a newer build of the branch cancelled this one
    artifact: Artifact | None
    replication: list[Replication] = []
    configSource: Literal["gantry.toml", "project", "both"] | None = None
    fetchSeconds: float | None = None   # the fetch step, in the sandbox (None: no fetch step ran)
    buildSeconds: float | None = None   # the build step
    cache: BuildCache | None = None
    resources: BuildResources | None = None
    pinned: bool = False                # retention keeps it whatever else holds
    expiredAt: str | None = None        # EXPIRED: when retention let it go...
    expiredReason: str | None = None    # ...and why


class BuildLog(BaseModel):
    buildID: str
    offset: int
    nextOffset: int
    data: str
    complete: bool


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    buildID: str


class StrategyIn(BaseModel):
    """Waves: each step is a host count (an integer, e.g. 1 for a canary) or a fraction of the
    datacenter (0 < x <= 1.0), giving how many hosts are updated once that wave is done."""
    model_config = ConfigDict(extra="forbid")
    steps: list[int | float] = Field(default=[1, 0.10, 0.50, 1.0], min_length=1, max_length=20)
    minHealthy: float = Field(default=0.9, ge=0, le=1)
    bakeS: float = Field(default=30.0, ge=0, le=24 * 3600)
    stage: Literal["all", "wave"] = Field(
        default="all", description='"all": stage the build on every host of every region at once, then let the '
                                   'waves only activate it; "wave": each wave downloads, then activates')
    regionWaves: list[list[Annotated[str, Field(max_length=64)]]] | None = Field(
        default=None, max_length=64, description="regions that activate together, wave after wave, e.g. "
        '[["us-east"], ["eu-west", "ap-south"]]; regions left out go last, together. Default: the first '
        "region alone, then every other region together")
    approve: list[ApprovalGate] | None = Field(
        default=None, max_length=20, description='approval gates, e.g. {"before": "regionWave:2", "role": "deployer", '
        '"count": 1, "notRequester": true}: the deployment waits at each (WAITING_APPROVAL) until approved')

    @field_validator("approve", mode="before")
    @classmethod
    def _one_gate(cls, v):
        return [v] if isinstance(v, dict) else v

    @field_validator("approve")
    @classmethod
    def _gates(cls, v: list[ApprovalGate] | None) -> list[ApprovalGate] | None:
        if v is not None and len({g.before for g in v}) != len(v):
            raise ValueError("two approval gates stand before the same wave")
        return v

    @field_validator("regionWaves")
    @classmethod
    def _region_waves(cls, v: list[list[str]] | None) -> list[list[str]] | None:
        if v is not None:
            named = [r for wave in v for r in wave]
            if any(not wave for wave in v):
                raise ValueError("a region wave names at least one region")
            if len(named) != len(set(named)):
                raise ValueError("a region appears in more than one region wave")
        return v

    @field_validator("steps")
    @classmethod
    def _steps(cls, v: list[int | float]) -> list[int | float]:
        for x in v:
            if (isinstance(x, int) and x < 1) or (isinstance(x, float) and not 0 < x <= 1):
                raise ValueError("a step is a host count (integer >= 1) or a fraction in (0, 1.0]")
        return v


class DeploymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    buildID: str = Field(pattern=r"^[0-9a-f]{32}$")
    strategy: StrategyIn | None = None
    analysis: AnalysisIn | Literal["off"] | None = Field(default=None, description="this deployment's canary "
                                                         'analysis instead of the project\'s; "off": none')
    overrideFreeze: bool = Field(default=False, description="deploy inside a freeze window (admins, with a reason)")
    reason: str | None = Field(default=None, max_length=500, description="why: needed to override a freeze")
    waitForFreeze: bool | None = Field(default=None, description="inside a freeze window, wait in the queue until it "
                                       "ends instead of a 409 (default: the project's deploy.duringFreeze); with "
                                       "concurrency reject, queue instead (what continuous deployment asks)")


class ApproveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    comment: str | None = Field(default=None, max_length=500, description="recorded with the approval")


class RollbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    buildID: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")


class DeploymentAccepted(BaseModel):
    deploymentID: str
    projectName: str
    buildID: str
    status: str
    queuePosition: int | None = None   # QUEUED: its place in the project's queue (1: next)


class HostCounts(BaseModel):
    total: int
    pending: int
    downloading: int
    staged: int
    active: int
    failed: int
    lost: int


class DcProgress(BaseModel):
    dc: str
    currentBuildID: str | None = None   # what the datacenter runs now, for this project
    phase: DcPhase | None
    waiting: str | None = None          # why it has not started: its region's replica is not there yet
    wave: int | None
    waves: int | None
    hosts: HostCounts


class RegionProgress(BaseModel):
    region: str
    dcs: list[DcProgress]
    hosts: HostCounts


class Deployment(BaseModel):
    deploymentID: str
    projectName: str
    buildID: str
    previousBuildID: str | None
    status: DeploymentStatus
    reason: str | None
    strategy: dict
    createdAt: str
    updatedAt: str
    createdBy: str
    currentRegion: str | None
    regions: list[RegionProgress]
    hosts: HostCounts
    prediction: dict | None = None     # what the simulator predicted when it was created (see Prediction)
    queue: dict | None = None          # QUEUED: {position, ahead, etaSeconds}
    approval: dict | None = None       # WAITING_APPROVAL: {gate, mayApprove, approvals}


class RegionPrediction(BaseModel):
    region: str
    stagedSeconds: float | None
    activeSeconds: float | None


class Prediction(BaseModel):
    """A dry run: how long the deployment would take, and what that rests on."""
    predictedSeconds: float | None
    perRegion: list[RegionPrediction]
    assumptions: dict
    status: str                        # how the simulated deployment ended (COMPLETED when healthy)
    timeline: list                     # [seconds, region, staged hosts, active hosts]


class Host(BaseModel):
    hostID: str
    region: str
    dc: str
    address: str | None = None
    activeBuildID: str | None
    state: str
    error: str | None = None
    updatedAt: str | None


class DeploymentSummary(BaseModel):
    deploymentID: str
    buildID: str
    status: str
    reason: str | None
    createdAt: str
    updatedAt: str
    createdBy: str


class DeploymentPage(BaseModel):
    deployments: list[DeploymentSummary]
    nextCursor: str | None
    limit: int


class Notice(BaseModel):
    """One notification to one destination, and how its delivery went."""
    noticeID: str
    event: str
    kind: Literal["webhook", "apprise", "github"]
    destination: dict                  # the subscription as the API shows it (no secret)
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    error: str | None                  # the last attempt's, if it failed
    createdAt: str
    finishedAt: str | None
    nextAttemptAt: str | None          # pending: when it is tried again
    payload: dict                      # what a webhook receives


class NoticeList(BaseModel):
    projectName: str
    notices: list[Notice]


class WebhookResult(BaseModel):
    delivery: str | None
    queued: bool                 # a build was queued by this delivery (or by its first delivery)
    duplicate: bool = False      # a redelivery: nothing new was done
    reason: str
    buildID: str | None = None
    superseded: list[str] = []
