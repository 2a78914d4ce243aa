"""The API's approvals, mixed into `service.Service`: a deployment at an approval gate
(WAITING_APPROVAL) goes on once enough people with the gate's role have approved it."""
from __future__ import annotations

from gantry import auth
from gantry.clock import iso_ms
from gantry.models import ApproveIn
from gantry.rollout import approvals as rules
from gantry.serve_app.errors import ApiError, parse_body
from gantry.state import audit
from gantry.statuses import DeploymentStatus


class ApprovalOps:
    def op_approve_deployment(self, who: auth.Principal, projectName: str, deploymentID: str, body=None) -> dict:
        """Approve the gate the deployment waits at; the deployment goes on once the gate has
        its count of approvals (the coordinators would also see it within a tick)."""
        project = self._project(who, projectName)
        body = parse_body(ApproveIn, body)
        dep = self._deployment(projectName, deploymentID)
        if dep["status"] != DeploymentStatus.WAITING_APPROVAL:
            raise ApiError(409, "nothing to approve", f"deployment is {dep['status']}, not {DeploymentStatus.WAITING_APPROVAL}")
        gate_name, gate = rules.awaited(dep)
        if gate is None:
            raise ApiError(409, "nothing to approve", f"the deployment's strategy has no gate {gate_name!r}")
        given = self.state.approvals.given(deploymentID).get(gate_name, [])
        refused = rules.refusal(gate, who.user, who.roles, who.admin, dep.get("createdBy") or "", given)
        if refused:
            raise ApiError(403, "forbidden", refused)
        self._write_allowed(projectName, project)
        approval = {"user": who.user, "at": iso_ms(self.state.clock()), "comment": body.comment or ""}
        given = self.state.approvals.add(deploymentID, gate_name, approval, audit.prepare(
            who.user, "deployment.approve", projectName, deploymentID, {"gate": gate_name, "comment": body.comment or ""}))
        if rules.satisfied(gate, given):
            self.state.deployments.set_status(deploymentID, DeploymentStatus.IN_PROGRESS,
                                              f"{gate_name} approved by {', '.join(rules.approvers(given))}",
                                              only_from=(DeploymentStatus.WAITING_APPROVAL,))
        return self.op_get_deployment(who, projectName, deploymentID)

