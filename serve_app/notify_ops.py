"""The API's notifications, mixed into `service.Service`: what was sent to whom, and how it went."""
from __future__ import annotations

import json

from gantry import auth
from gantry.clock import iso_ms
from gantry.notify.subscriptions import public, sub_id
from gantry.serve_app.errors import ApiError


class NotifyOps:
    def op_list_notifications(self, who: auth.Principal, projectName: str, limit: int = 100) -> dict:
        """The project's newest notices: event, destination, status (pending, delivered, failed),
        attempts and the last error."""
        project = self._project(who, projectName)
        if not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise ApiError(400, "invalid limit", "a whole number from 1 to 1000")
        subs = {sub_id(s): public(s) for s in json.loads(project.get("notifications") or "[]")}
        out = []
        for n in self.state.notices.listed(projectName, limit):
            sub = n["dest"].split("/", 1)[1]
            out.append({"noticeID": n["id"], "event": n["event"], "kind": n["kind"],
                        "destination": subs.get(sub) or {"id": sub}, "status": n["status"],
                        "attempts": int(n.get("attempts") or 0), "error": n.get("error") or None,
                        "createdAt": iso_ms(int(n["createdAt"])),
                        "finishedAt": iso_ms(int(n["finishedAt"])) if n.get("finishedAt") else None,
                        "nextAttemptAt": iso_ms(int(n["nextAt"])) if n["status"] == "pending" and int(n.get("nextAt") or 0) else None,
                        "payload": json.loads(n["payload"])})
        return {"projectName": projectName, "notices": out}
