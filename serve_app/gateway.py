"""The gateway for node daemons: a host's heartbeat, peer lookups and store repairs, passed to
its datacenter's coordinator actor. Only host tokens get through. (No `from __future__ import
annotations`: FastAPI must see real types.)"""

import ray
import redis
from fastapi import Request

from gantry.constants import NAMESPACE, coordinator_name
from gantry.models import HeartbeatIn, OriginIn, PeersIn, RepairIn
from gantry.serve_app.errors import ApiError
from gantry.serve_app.http import app


def actor_get(ref, timeout_s: float = 30):
    """An actor call's result; a Redis outage inside the actor surfaces as the API's 503."""
    try:
        return ray.get(ref, timeout=timeout_s)
    except ray.exceptions.RayTaskError as e:
        if isinstance(e.cause, (redis.ConnectionError, redis.TimeoutError)):
            raise e.cause from None
        raise


class HostGateway:
    """Routes mixed into the API deployment; it provides `service`, `stack` and `_coordinators`."""

    def _coordinator(self, request: Request, dc: str, host_id: str):
        """The datacenter's coordinator, for a host token bound to this host and datacenter."""
        who = self.service.who(request.headers.get("authorization"))
        if not who.host:
            raise ApiError(403, "forbidden", "a host token is required")
        if dc not in {d for r in self.stack.regions for d in r.datacenters}:
            raise ApiError(404, "datacenter not found", dc)
        if who.dc != dc or who.host_id != host_id:
            raise ApiError(403, "forbidden", f"this token speaks for host {who.host_id} in {who.dc} only")
        if dc not in self._coordinators:
            self._coordinators[dc] = ray.get_actor(coordinator_name(dc), namespace=NAMESPACE)
        return self._coordinators[dc]

    @app.post("/dc/{dc}/heartbeat")
    def host_heartbeat(self, dc: str, body: HeartbeatIn, request: Request):
        return actor_get(self._coordinator(request, dc, body.hostID).heartbeat.remote(body.model_dump()))

    @app.post("/dc/{dc}/peers")
    def host_peers(self, dc: str, body: PeersIn, request: Request):
        coord = self._coordinator(request, dc, body.hostID)
        return {"peers": actor_get(coord.peers.remote(body.hostID, body.artifact, body.wanted))}

    @app.post("/dc/{dc}/origin")
    def host_origin(self, dc: str, body: OriginIn, request: Request):
        """Short-lived GET URLs in the region's blob store for chunks of the host's target build."""
        coord = self._coordinator(request, dc, body.hostID)
        urls = actor_get(coord.origin_urls.remote(body.hostID, body.artifact, body.digests))
        if urls is None:
            raise ApiError(403, "forbidden", "only chunks of the build this host is told to install")
        return {"urls": urls}

    @app.post("/dc/{dc}/repair")
    def host_repair(self, dc: str, body: RepairIn, request: Request):
        """The region's copy of a chunk failed verification on a host: copy it again from the primary."""
        return {"repaired": actor_get(self._coordinator(request, dc, body.hostID).repair.remote(body.hostID, body.digest),
                                      120)}
