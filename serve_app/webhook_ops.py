"""The API's GitHub push webhook, mixed into `service.Service`: a signed delivery (JSON or
GitHub's default form encoding) of a push to the default branch queues a build of its head, once
per delivery."""
from __future__ import annotations

import hashlib

from gantry import builds as rules
from gantry import webhook
from gantry.serve_app.errors import ApiError, check_name
from gantry.state import audit

WEBHOOK_USER = "github-webhook"


class WebhookOps:
    def github_push(self, projectName: str, headers: dict, body: bytes) -> tuple[dict, int]:
        """A GitHub push webhook delivery: (answer, HTTP status)."""
        check_name(projectName)
        project = self.state.projects.get(projectName)
        if project is None:
            raise ApiError(404, "project not found", projectName)
        secret = project.get("webhookSecret")
        if not secret:
            raise ApiError(409, "webhook not configured", "set webhookSecret with PUT /projects/{projectName}")
        if not webhook.signature_ok(secret, body, headers.get("x-hub-signature-256")):
            raise ApiError(401, "bad signature", "X-Hub-Signature-256 does not match the body under this project's secret")
        delivery = headers.get("x-github-delivery")
        if delivery is not None and not webhook.DELIVERY_RE.match(delivery):
            raise ApiError(400, "invalid X-GitHub-Delivery", "a delivery ID of letters, digits and '-'")
        try:
            decision = webhook.decide(headers.get("x-github-event"), body, project.get("defaultBranch") or "main", headers.get("content-type"))
        except ValueError as e:
            raise ApiError(400, "invalid push payload", str(e))
        if not decision.build:
            return {"delivery": delivery, "queued": False, "reason": decision.reason}, 200
        if not delivery:
            raise ApiError(400, "missing X-GitHub-Delivery", "needed to build each push once")
        self._write_allowed(projectName, project)
        details = {"branch": decision.branch, "source": "github-webhook", "delivery": delivery,
                   "pusher": decision.pusher}
        rec, created = self.state.builds.for_delivery(
            projectName, delivery, lambda build_id: self._queue_build(
                WEBHOOK_USER, projectName, decision.sha, details, rules.DEFAULT_PRIORITY, build_id),
            push=(decision.sha, hashlib.sha256(body).hexdigest()))
        superseded = []
        if created and project.get("coalesce") == "1":
            superseded = self.state.builds.supersede_queued(projectName, rec, decision.branch, audit=lambda old: audit.prepare(
                WEBHOOK_USER, "build.supersede", projectName, old, {"by": rec["buildID"]}))
        out = {"delivery": delivery, "queued": True, "duplicate": not created, "reason": decision.reason,
               "buildID": rec["buildID"], "superseded": superseded}
        return out, 202 if created else 200
