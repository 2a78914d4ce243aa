"""Where a node daemon finds its datacenter's host gateway: hosts report, ask for peers and
long-poll at the gateway of their datacenter's coordinator, on that coordinator's node in its
region (`actors.rollout.host_gateway`), never through the head node. The API only tells a host
where that gateway is. Only host tokens get an answer. (No `from __future__ import annotations`: FastAPI
must see real types.)"""

import ray
from fastapi import Request

from gantry.constants import NAMESPACE, coordinator_name
from gantry.serve_app.errors import ApiError
from gantry.serve_app.http import app


class DcEndpoints:
    """Routes mixed into the API deployment; it provides `service`, `stack` and `_coordinators`."""

    @app.get("/dc/{dc}/endpoint")
    def host_endpoint(self, dc: str, request: Request):
        """The URL of the datacenter's coordinator endpoint, for a host token of that datacenter."""
        who = self.service.who(request.headers.get("authorization"))
        if not who.host:
            raise ApiError(403, "forbidden", "a host token is required")
        if dc not in {d for r in self.stack.regions for d in r.datacenters}:
            raise ApiError(404, "datacenter not found", dc)
        if who.dc != dc:
            raise ApiError(403, "forbidden", f"this token speaks for host {who.host_id} in {who.dc} only")
        if dc not in self._coordinators:
            self._coordinators[dc] = ray.get_actor(coordinator_name(dc), namespace=NAMESPACE)
        try:
            return {"url": ray.get(self._coordinators[dc].endpoint_url.remote(), timeout=30)}
        except ray.exceptions.RayError:
            self._coordinators.pop(dc, None)
            raise ApiError(503, "coordinator unavailable", f"{dc}'s coordinator is restarting; try again",
                           headers={"Retry-After": "2"})
