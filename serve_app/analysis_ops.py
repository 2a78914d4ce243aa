"""The API's canary-analysis operations, mixed into `service.Service`: which analysis a new
deployment gets, a deployment's measurements, and what resume and abort mean at an inconclusive
analysis (resume: the person lets the wave go on; abort: the person rolls it back)."""
from __future__ import annotations

import json

from gantry import auth
from gantry.rollout.analysis import AnalysisIn
from gantry.serve_app.errors import ApiError
from gantry.statuses import AnalysisOutcome, DeploymentOp, DeploymentStatus


class AnalysisOps:
    _analysis_check_now = None   # (project, runs) -> the A/A report: the analyst actor's, set by the app

    def _analysis_for(self, project: dict, asked) -> dict | None:
        """The deployment's analysis: the one it asks for, none ("off"), or the project's."""
        if asked == "off":
            return None
        if isinstance(asked, AnalysisIn):
            return asked.model_dump()
        return json.loads(project.get("analysis") or "null")

    def op_get_analysis(self, who: auth.Principal, projectName: str, deploymentID: str) -> dict:
        """Every wave's analysis in every datacenter: each interval's measurements with their
        queries, window, samples, statistic, p-value, score and decision."""
        self._project(who, projectName)
        dep = self._deployment(projectName, deploymentID)
        verdicts = self.state.analyses.verdicts(deploymentID)
        waves = []
        for rec in self.state.analyses.records(deploymentID):
            outcome, reason = verdicts.get((rec["dc"], rec["wave"] - 1), (rec.get("outcome"), rec.get("reason")))
            waves.append({**rec, "outcome": outcome, "reason": reason})
        return {"deploymentID": deploymentID, "status": dep["status"], "reason": dep.get("reason") or None,
                "analysis": json.loads(dep.get("analysis") or "null"), "waves": waves}

    def op_analysis_check(self, who: auth.Principal, projectName: str, runs: int = 20) -> dict:
        """Calibration: the project's analysis, A/A on its fleet (`analyst.Analyst.check`)."""
        project = self._project(who, projectName)
        if not project.get("analysis"):
            raise ApiError(409, "no analysis", f"project {projectName} has no analysis; set one with PUT /projects/{projectName}")
        if not isinstance(runs, int) or not 1 <= runs <= 200:
            raise ApiError(400, "invalid runs", "a whole number from 1 to 200")
        if self._analysis_check_now is None:
            raise ApiError(503, "analysis unavailable", "no analyst in this process")
        return self._analysis_check_now(projectName, runs)

    def _at_analysis(self, who: auth.Principal, dep: dict, op: str) -> tuple[DeploymentStatus, str] | None:
        """At a pause for an inconclusive analysis: resume waives it (the wave goes on) and abort
        rolls the deployment back. None elsewhere: the op means what it always does."""
        if dep["status"] != DeploymentStatus.PAUSED or not dep.get("analysis"):
            return None
        unsure = {k: why for k, (o, why) in self.state.analyses.verdicts(dep["deploymentID"]).items()
                  if o == AnalysisOutcome.INCONCLUSIVE}
        if not unsure:
            return None
        if op == DeploymentOp.RESUME:
            self.state.analyses.waive(dep["deploymentID"], who.user)   # before the status: no tick pauses it again
            return None
        if op == DeploymentOp.ABORT:
            (dc, wave), why = next(iter(sorted(unsure.items())))
            return DeploymentStatus.ROLLED_BACK, f"aborted by {who.user} at an inconclusive analysis ({dc}, wave {wave + 1}): {why}"
        return None
