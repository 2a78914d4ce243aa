"""The API's operations: who may do what, input validation, and the state calls. Each `op_*`
takes the caller's Principal; the HTTP routes and the in-cluster SDK (`invoke`) both call them.
Plain Python over `State`: no Serve, no Ray (the scheduler nudge and the archive run are handed
in), so it is unit tested against a real redis-server alone.
"""
from __future__ import annotations

import dataclasses
import inspect
import json
from typing import Callable

from gantry import cursor as listing
from gantry.archive.files import ArchiveReader, list_page
from gantry.rollout.waves import region_waves
from gantry.clock import iso_ms
from gantry.models import BuildIn, DeploymentIn, ProjectIn, RollbackIn, StrategyIn
from gantry import auth
from gantry import builds as rules
from gantry.serve_app import prediction, project_settings, views
from gantry.serve_app.errors import ApiError, check_id, check_name, parse_body
from gantry.serve_app.analysis_ops import AnalysisOps
from gantry.serve_app.approval_ops import ApprovalOps
from gantry.serve_app.freeze_ops import FreezeOps
from gantry.serve_app.notify_ops import NotifyOps
from gantry.serve_app.retention_ops import RetentionOps
from gantry.serve_app.webhook_ops import WebhookOps
from gantry.settings import Settings
from gantry.state import RateLimited, State, TransitionRefused, audit, keys
from gantry.state.deployments import BuildExpired, DeployBusy
from gantry.statuses import DEPLOYMENT_OPS, OP_ONLY_FROM, BuildStatus, Concurrency, DeploymentStatus
from gantry.topology import StackConfig

# What the in-cluster SDK may call through `invoke`: each name is an `op_<name>` method below.
SDK_OPS = ("list_projects", "get_project", "put_project", "create_build", "list_builds", "get_build", "get_logs",
           "cancel_build", "retry_replication", "create_deployment", "list_deployments", "get_deployment",
           "deployment_op", "list_hosts", "rollback", "audit", "archive", "pin_build", "unpin_build", "gc",
           "gc_report", "get_analysis", "analysis_check", "get_freeze", "put_freeze",
           "approve_deployment", "list_notifications")


def _limit(limit: str | int | None) -> int:
    try:
        n = 20 if limit is None else int(limit)
    except (TypeError, ValueError):
        n = 0
    if not 1 <= n <= 100:
        raise ApiError(400, "invalid limit", "limit must be an integer from 1 to 100")
    return n


def _cursor(cursor: str | None) -> str | None:
    if cursor:
        try:
            listing.parse(cursor)
        except ValueError as e:
            raise ApiError(400, "invalid nextCursor", str(e))
    return cursor or None



class Service(RetentionOps, AnalysisOps, FreezeOps, ApprovalOps, NotifyOps, WebhookOps):
    def __init__(self, stack: StackConfig, settings: Settings, state: State, archive_reader: ArchiveReader,
                 nudge: Callable[[], None] = lambda: None,
                 archive_now: Callable[[float], dict] | None = None,
                 gc_now: Callable[[bool, float | None, str], dict] | None = None):
        self.stack, self.settings, self.state, self.archive_reader = stack, settings, state, archive_reader
        self.secret = stack.jwt_secret()
        self._nudge_scheduler = nudge            # wakes the scheduler; it polls anyway
        self._archive_now = archive_now          # runs the archiver now (the monitor actor)
        self._gc_now = gc_now                    # a garbage-collection pass now (the monitor actor)
        self.predictor = prediction.Predictor(stack)

    def user(self, authorization: str | None, project: str | None = None) -> auth.Principal:
        """A user's principal: host tokens are for the host gateway alone. `project`: the one a
        read-only request is about, read with the rate limit's token (one round trip to Redis,
        not two); the request's `_project` gives that record."""
        who = self.who(authorization, project)
        if who.host:
            raise ApiError(403, "forbidden", "a host token is for the /dc routes only")
        return who

    def who(self, authorization: str | None, project: str | None = None) -> auth.Principal:
        try:
            who = auth.verify(self.secret, authorization)
        except ValueError as e:
            raise ApiError(401, "unauthorized", str(e))
        if not who.host:
            rate = who.rate or (self.settings.rate_user_per_s, self.settings.rate_user_burst)
            read = project if project and rules.valid_name(project) and who.may_access(project) else None
            got = self._take(f"user:{who.user}", *rate, read=keys.project(read) if read else None)
            if read:
                who = dataclasses.replace(who, read=(read, got))
        return who

    def _take(self, scope: str, rate: float, burst: float, read: str | None = None) -> dict | None:
        try:
            return self.state.rates.take(scope, rate, burst, read)
        except RateLimited as e:
            raise ApiError(429, "rate limit exceeded", {"scope": e.scope, "retryAfterS": e.retry_after_s},
                           headers={"Retry-After": str(e.retry_after_s)})

    def _write_allowed(self, name: str, project: dict) -> None:
        """A write to a project takes a token from the project's bucket."""
        limits = views.public_project(name, project, self.settings)["rateLimit"]
        self._take(f"project:{name}", limits["perSecond"], limits["burst"])

    def _project(self, who: auth.Principal, name: str) -> dict:
        check_name(name)
        if not who.may_access(name):
            raise ApiError(403, "forbidden", f"your token does not grant access to project '{name}'")
        project = who.read[1] if who.read and who.read[0] == name else self.state.projects.get(name)
        if project is None:
            raise ApiError(404, "project not found", name)
        return project

    def _admin(self, who: auth.Principal, what: str) -> None:
        if not who.admin:
            raise ApiError(403, "forbidden", f"{what} needs an admin token")

    # --- the in-cluster SDK's door ------------------------------------------------------------

    def invoke(self, token: str, op: str, kwargs: dict) -> dict:
        """Run one op for the SDK's in-cluster client: {"ok": result} or {"error": {status, error, detail}}."""
        try:
            if op not in SDK_OPS:
                raise ApiError(400, "unknown op", f"supported: {', '.join(SDK_OPS)}")
            who = self.user(f"Bearer {token}")
            run = getattr(self, f"op_{op}")
            try:
                inspect.signature(run).bind(who, **kwargs)
            except TypeError as e:
                raise ApiError(400, "bad arguments", str(e))
            return {"ok": run(who, **kwargs)}
        except ApiError as e:
            return {"error": {"status": e.status, "error": e.error, "detail": e.detail}}

    # --- projects ---------------------------------------------------------------------------

    def op_list_projects(self, who: auth.Principal) -> list[dict]:
        names = [n for n in self.state.projects.names() if who.may_access(n)]
        return [views.public_project(n, p, self.settings) for n in names if (p := self.state.projects.get(n))]

    def op_get_project(self, who: auth.Principal, projectName: str) -> dict:
        return views.public_project(projectName, self._project(who, projectName), self.settings)

    def op_put_project(self, who: auth.Principal, projectName: str, body) -> dict:
        check_name(projectName)
        self._admin(who, "registering a project")
        body = parse_body(ProjectIn, body)
        options = {}
        if body.webhookSecret is not None:
            options["webhookSecret"] = body.webhookSecret
        if body.defaultBranch is not None:
            options["defaultBranch"] = body.defaultBranch
        if body.coalesce is not None:
            options["coalesce"] = "1" if body.coalesce else "0"
        if body.rateLimit is not None:
            options.update(ratePerS=body.rateLimit.perSecond, rateBurst=body.rateLimit.burst)
        if body.prestage is not None:
            options["prestage"] = "1" if body.prestage else "0"
        if body.retention is not None:
            options["retention"] = body.retention.model_dump_json()
        if body.analysis is not None:
            options["analysis"] = body.analysis.model_dump_json()
        if body.prometheusURL is not None:   # only admins register projects: only they point one elsewhere
            options["prometheusURL"] = body.prometheusURL
        if body.freeze is not None:
            options["freeze"] = json.dumps([w.model_dump(mode="json") for w in body.freeze])
        if body.notifications is not None:
            options["notifications"] = json.dumps([s.model_dump(exclude_none=True) for s in body.notifications])
        if body.github is not None:
            options["github"] = body.github.model_dump_json() if body.github.repo else ""
        options.update(project_settings.checked(body, self.settings))
        created = self.state.projects.put(projectName, body.repoURL, options, audit=audit.prepare(
            who.user, "project.register", projectName, None,
            {"repoURL": body.repoURL, "changed": sorted(body.model_fields_set)}))
        return {"created": created, "project": self.op_get_project(who, projectName)}

    def _find(self, project: str, build_id: str) -> tuple[dict, tuple[list[dict], bytes] | None]:
        """The build's record, and for an archived build its (replication rows, log) from the archive."""
        check_id(build_id, "buildID")
        rec, archived = self.state.builds.get(build_id), None
        if rec is None and (key := self.state.archive.file_of(project, build_id)):
            if found := self.archive_reader.get(key, build_id):
                rec, archived = found[0], found[1:]
        if rec is None or rec.get("projectName") != project:
            raise ApiError(404, "build not found", build_id)
        return rec, archived


    def _build(self, project: str, build_id: str) -> dict:
        """The live record, or the archived one."""
        return self._find(project, build_id)[0]

    def _record(self, project: str, build_id: str) -> dict:
        rec, archived = self._find(project, build_id)
        return views.public_record(rec, archived[0] if archived else self.state.replication.rows(build_id))

    def _queue_build(self, user: str, project: str, sha: str, details: dict, priority: int,
                     build_id: str | None = None) -> dict:
        rec = self.state.builds.create(project, sha, details, priority, build_id=build_id, audit=lambda i: audit.prepare(
            user, "build.create", project, i, {"commitSHA": sha, **{k: details[k] for k in ("delivery", "pusher") if k in details}}))
        self._nudge_scheduler()
        return rec

    def _accepted(self, rec: dict) -> dict:
        return {"buildID": rec["buildID"], "projectName": rec["projectName"], "commitSHA": rec["commitSHA"],
                "buildStatus": rec["buildStatus"], "createdAt": iso_ms(int(rec["createdAt"]))}

    def op_create_build(self, who: auth.Principal, projectName: str, body) -> dict:
        project = self._project(who, projectName)
        body = parse_body(BuildIn, body)
        self._write_allowed(projectName, project)
        details = body.buildDetails.model_dump() if body.buildDetails else {}
        return self._accepted(self._queue_build(who.user, projectName, body.commitSHA, details, body.priority))

    def op_list_builds(self, who: auth.Principal, projectName: str, nextCursor: str | None = None,
                       limit: str | int | None = None) -> dict:
        self._project(who, projectName)
        n = _limit(limit)
        builds, cursor = list_page(self.state, self.archive_reader, projectName, n, _cursor(nextCursor))
        return {"builds": [views.build_summary(b) for b in builds], "nextCursor": cursor, "limit": n}

    def op_get_build(self, who: auth.Principal, projectName: str, buildID: str) -> dict:
        self._project(who, projectName)
        return self._record(projectName, buildID)

    def op_get_logs(self, who: auth.Principal, projectName: str, buildID: str, offset: int = 0) -> dict:
        self._project(who, projectName)
        if not isinstance(offset, int) or offset < 0:
            raise ApiError(400, "invalid offset", "a byte offset >= 0")
        rec, archived = self._find(projectName, buildID)
        if archived:  # the whole log is in the archive file
            whole = archived[1]
            data, complete = whole[offset:offset + (1 << 20)], offset + (1 << 20) >= len(whole)
        else:
            data = self.state.logs.read(buildID, offset)
            complete = (BuildStatus(rec["buildStatus"]).terminal
                        and len(self.state.logs.read(buildID, offset + len(data), 1)) == 0)
        return {"buildID": buildID, "offset": offset, "nextOffset": offset + len(data),
                "data": data.decode(errors="replace"), "complete": complete}

    def op_cancel_build(self, who: auth.Principal, projectName: str, buildID: str) -> dict:
        project = self._project(who, projectName)
        self._build(projectName, buildID)
        self._write_allowed(projectName, project)
        try:
            self.state.builds.transition(buildID, BuildStatus.CANCELLED, fields={"error": f"cancelled by {who.user}"},
                                  audit=audit.prepare(who.user, "build.cancel", projectName, buildID))
        except TransitionRefused as e:
            raise ApiError(409, "build cannot be cancelled", f"build is {e.current}")
        return self._record(projectName, buildID)

    def op_retry_replication(self, who: auth.Principal, projectName: str, buildID: str) -> dict:
        project = self._project(who, projectName)
        self._build(projectName, buildID)
        self._write_allowed(projectName, project)
        restarted = self.state.replication.restart(buildID, audit=audit.prepare(
            who.user, "replication.retry", projectName, buildID))
        if not restarted:
            raise ApiError(409, "nothing to retry", "no region of this build gave up on replication")
        return self._record(projectName, buildID)

    # --- deployments ------------------------------------------------------------------------

    def _deployable(self, project: str, build_id: str) -> dict:
        """A SUCCEEDED build, or a DEPLOYING one: a region deploys it once its replica lands."""
        rec, archived = self._find(project, build_id)
        if rec["buildStatus"] == BuildStatus.EXPIRED:
            raise ApiError(409, "build expired", f"retention let it go: {rec.get('expiredReason')}; build the commit again")
        if rec["buildStatus"] not in (BuildStatus.SUCCEEDED.value, BuildStatus.DEPLOYING.value):
            raise ApiError(409, "build is not deployable",
                           f"build is {rec['buildStatus']}; only SUCCEEDED or DEPLOYING builds deploy")
        if archived:
            raise ApiError(409, "build is archived", "archived builds are not deployed; build the commit again")
        return rec

    def _strategy(self, strategy: StrategyIn) -> StrategyIn:
        """The strategy with its region waves checked against the stack's regions and completed."""
        regions = [r.name for r in self.stack.regions]
        unknown = [r for wave in strategy.regionWaves or [] for r in wave if r not in regions]
        if unknown:
            raise ApiError(400, "unknown region in regionWaves", f"{', '.join(unknown)}; regions: {', '.join(regions)}")
        waves = region_waves(regions, strategy.regionWaves)
        limits = {"wave": len(strategy.steps) + 1, "regionWave": len(waves)}
        beyond = [g.before for g in strategy.approve or [] if int(g.before.split(":")[1]) > limits[g.before.split(":")[0]]]
        if beyond:
            raise ApiError(400, "approval gate beyond the last wave", f"{', '.join(beyond)}: this strategy has at most "
                           f"{limits['wave']} waves per datacenter and {limits['regionWave']} region waves")
        return strategy.model_copy(update={"regionWaves": waves})

    def _deploy(self, who: auth.Principal, project: str, build: dict, strategy: StrategyIn, action: str,
                analysis: dict | None = None, fields: dict | None = None,
                concurrency: Concurrency = Concurrency.PREEMPT) -> dict:
        """Create the deployment (with `fields`: what the freeze gate said), then predict it off
        the request path (a rollback: never)."""
        fields = fields or {}
        noted = ({"freezeOverride": json.loads(fields["freezeOverride"])} if "freezeOverride" in fields else
                 {"heldByFreeze": fields["reason"]} if "holdFreeze" in fields else {})
        regions, build_id = [r.name for r in self.stack.regions], build["buildID"]
        self.state.replication.backfill(build_id, regions)   # regions that joined since it published
        previous = self.state.deployments.last_completed_build(project)
        previous = previous if previous != build_id else None
        try:
            dep = self.state.deployments.create(project, build_id, previous, strategy.model_dump(), regions,
                                                who.user, audit=lambda dep_id: audit.prepare(
                who.user, action, project, dep_id, {"buildID": build_id, "previousBuildID": previous, **noted}),
                analysis=analysis, concurrency=concurrency, fields=fields)
        except DeployBusy as e:
            raise ApiError(409, "a deployment is under way", f"deployment {e} of {project}; its deploy.concurrency is "
                                                             "reject (queue or supersede would wait for it)")
        except BuildExpired:
            raise ApiError(409, "build expired", "retention let it go as this deployment was made; build the commit again")
        if action != "rollback":
            self.predictor.later(dep["deploymentID"], project, build, strategy.model_dump(), analysis)
        return {"deploymentID": dep["deploymentID"], "projectName": project, "buildID": build_id,
                "status": dep["status"], "queuePosition": dep["queuePosition"]}

    def _deployment(self, project: str, dep_id: str) -> dict:
        check_id(dep_id, "deploymentID")
        dep = self.state.deployments.get(dep_id)
        if dep is None or dep["projectName"] != project:
            raise ApiError(404, "deployment not found", dep_id)
        return dep

    def op_create_deployment(self, who: auth.Principal, projectName: str, body, dryRun: bool = False) -> dict:
        project = self._project(who, projectName)
        body = parse_body(DeploymentIn, body)
        rec = self._deployable(projectName, body.buildID)
        self._write_allowed(projectName, project)
        default = StrategyIn.model_validate_json(project["defaultStrategy"]) if project.get("defaultStrategy") else StrategyIn()
        strategy = self._strategy(body.strategy or default)
        analysis = self._analysis_for(project, body.analysis)
        if dryRun:
            out = prediction.predict(self.state, self.stack, projectName, rec, strategy.model_dump(), analysis)
            return {k: v for k, v in out.items() if k != "marks"}
        wait = body.waitForFreeze if body.waitForFreeze is not None else project.get("duringFreeze") == "wait"
        held = self._freeze_gate(who, projectName, body.overrideFreeze, body.reason, wait)
        concurrency = Concurrency(project.get("concurrency") or Concurrency.QUEUE)
        if body.waitForFreeze and concurrency == Concurrency.REJECT:   # continuous deployment: never dropped
            concurrency = Concurrency.QUEUE
        return self._deploy(who, projectName, rec, strategy, "deployment.create", analysis, held, concurrency)

    def op_list_deployments(self, who: auth.Principal, projectName: str, nextCursor: str | None = None,
                            limit: str | int | None = None) -> dict:
        self._project(who, projectName)
        n = _limit(limit)
        deps, cursor = self.state.deployments.page(projectName, n, _cursor(nextCursor))
        return {"deployments": [views.deployment_summary(d) for d in deps], "nextCursor": cursor, "limit": n}

    def op_get_deployment(self, who: auth.Principal, projectName: str, deploymentID: str) -> dict:
        self._project(who, projectName)
        return views.deployment_view(self.state, self.stack, self._deployment(projectName, deploymentID))

    def op_deployment_op(self, who: auth.Principal, projectName: str, deploymentID: str, op: str) -> dict:
        project = self._project(who, projectName)
        dep = self._deployment(projectName, deploymentID)
        if op not in DEPLOYMENT_OPS:
            raise ApiError(400, "unknown op", "supported: " + ", ".join(f"op={o}" for o in DEPLOYMENT_OPS))
        self._write_allowed(projectName, project)
        to = DEPLOYMENT_OPS[op]   # from where: statuses.DEPLOYMENT_FROM, checked by the script
        entry = audit.prepare(who.user, f"deployment.{op.lower()}", projectName, deploymentID)
        reason = "aborted by user" if to == DeploymentStatus.ABORTED else ""
        to, reason = self._at_analysis(who, dep, op) or (to, reason)
        if self.state.deployments.set_status(deploymentID, to, reason, entry, OP_ONLY_FROM.get(op, ())) is None:
            raise ApiError(409, f"deployment cannot {op.lower()}", f"deployment is {dep['status']}")
        return views.deployment_view(self.state, self.stack, self._deployment(projectName, deploymentID))

    def op_list_hosts(self, who: auth.Principal, projectName: str) -> list[dict]:
        self._project(who, projectName)
        return views.project_hosts(self.state, self.stack, projectName)

    def op_rollback(self, who: auth.Principal, projectName: str, body=None) -> dict:
        """Never frozen: a rollback is what a freeze is for."""
        project = self._project(who, projectName)
        body = parse_body(RollbackIn, body)
        if body.buildID:
            target = self._deployable(projectName, body.buildID)
        else:
            current = self.state.deployments.desired(projectName).get("buildID")
            live = [b for b in self.state.deployments.completed_builds(projectName) if b != current]
            target = next((rec for b in live if (rec := self.state.builds.get(b))
                           and rec["buildStatus"] in (BuildStatus.SUCCEEDED, BuildStatus.DEPLOYING)), None)
            if target is None:
                raise ApiError(409, "nothing to roll back to", "no earlier completed deployment of a build that "
                                                               "is still kept (see retention)")
        self._write_allowed(projectName, project)
        everywhere = [[r.name for r in self.stack.regions]]   # a rollback moves every region at once
        return self._deploy(who, projectName, target, StrategyIn(steps=[1.0], bakeS=0, regionWaves=everywhere),
                            "rollback")

    # --- audit (admins; retention and the archive: retention_ops.py) -------------------------------------------------------------

    def op_audit(self, who: auth.Principal, project: str | None = None, nextCursor: str | None = None,
                 limit: str | int | None = None) -> dict:
        self._admin(who, "reading the audit log")
        if project:
            check_name(project)
        n = _limit(limit)
        entries, cursor = self.state.audit.page(project or None, n, _cursor(nextCursor))
        return {"entries": entries, "nextCursor": cursor, "limit": n}
