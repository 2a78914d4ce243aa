"""The API's freeze windows, mixed into `service.Service`: the stack's windows (admins set them;
a project's are its `freeze` setting), and the gate a new deployment passes: refused with 409
while a window is open, naming it and when it ends, or queued until it ends (the project's
`deploy.duringFreeze` "wait", and every automatic deployment), unless an admin or deployer
overrides it with a reason. Rollbacks never pass this gate."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from pydantic import ValidationError

from gantry import auth
from gantry.rollout.freeze import FreezeWindows, frozen
from gantry.serve_app.errors import ApiError
from gantry.state import audit
from gantry.state.projects import WINDOWS, describe


class FreezeOps:
    def op_get_freeze(self, who: auth.Principal) -> dict:
        """The stack-wide freeze windows, and the one open now, if any."""
        windows = WINDOWS.validate_python(self.state.projects.stack_freeze())
        now = frozen({"stack": windows}, datetime.now(timezone.utc))
        return {"windows": [w.model_dump(mode="json") for w in windows],
                "openNow": {"reason": now[1].reason, "until": now[2].isoformat()} if now else None}

    def op_put_freeze(self, who: auth.Principal, body=None) -> dict:
        """Replace the stack-wide windows (admins)."""
        self._admin(who, "setting the stack's freeze windows")
        try:
            windows = body if isinstance(body, FreezeWindows) else FreezeWindows.model_validate(body)
        except ValidationError as e:
            raise ApiError(422, "invalid freeze windows", json.loads(e.json(include_url=False, include_input=False)))
        dumped = [w.model_dump(mode="json") for w in windows.windows]
        self.state.projects.set_stack_freeze(dumped, audit.prepare(who.user, "freeze.set", None, None, {"windows": dumped}))
        return self.op_get_freeze(who)

    def _freeze_gate(self, who: auth.Principal, projectName: str, override: bool, reason: str | None,
                     wait: bool = False) -> dict:
        """Pass ({}); or 409 naming the open window; or, with `wait`, the deployment's fields that
        make it wait in the queue until the window ends. An admin's or deployer's override passes
        with a reason: the fields returned record it on the deployment (which announces it)."""
        now = self.state.projects.frozen(projectName)
        if now is None:
            return {}
        scope, window, until = now
        named = describe(now)
        if not override and wait:
            return {"holdFreeze": "1", "reason": f"waits for the {named}"}
        if not override:
            raise ApiError(409, "deploys are frozen", f"{named}; a rollback is not frozen, and an admin or deployer "
                                                      "may override with overrideFreeze and a reason")
        if not who.has_role("deployer"):
            raise ApiError(403, "forbidden", f"overriding the {named} needs an admin or deployer token")
        if not (reason or "").strip():
            raise ApiError(400, "override needs a reason", f"say why the {named} does not apply")
        return {"freezeOverride": json.dumps({"window": window.reason, "scope": scope, "until": until.isoformat(),
                                              "reason": reason.strip()})}
