"""Who may fetch chunks from a host's peer server: hosts of the same datacenter.

The coordinator gives each host of its datacenter the datacenter's peer key (derived from the
stack's secret, so every coordinator of that datacenter gives the same one). A request carries
`X-Gantry-Peer: <hostID>:<expiry>:<HMAC-SHA256(key, hostID:expiry)>`; a peer server answers 401
to a request without a valid, unexpired one. Hosts of another datacenter hold another key.
"""
from __future__ import annotations

import hashlib
import hmac
import time
from typing import Callable

HEADER = "X-Gantry-Peer"
MAX_TTL_S = 3600


class PeerDenied(Exception):
    pass


def dc_key(stack_secret: str, dc: str) -> str:
    return hmac.new(stack_secret.encode(), f"gantry-peer-key:{dc}".encode(), hashlib.sha256).hexdigest()


class PeerAuth:
    def __init__(self, key: str | None = None, ttl_s: float = 300, clock: Callable[[], float] = time.time):
        self.key, self.ttl_s, self.clock = key, ttl_s, clock

    def _mac(self, host_id: str, expiry: int) -> str:
        return hmac.new(bytes.fromhex(self.key), f"{host_id}:{expiry}".encode(), hashlib.sha256).hexdigest()

    def credential(self, host_id: str) -> str:
        if not self.key:
            return ""
        expiry = int(self.clock() + self.ttl_s)
        return f"{host_id}:{expiry}:{self._mac(host_id, expiry)}"

    def verify(self, header: str | None) -> str:
        """The requesting host's ID; raises PeerDenied."""
        if not self.key:
            raise PeerDenied("this host has no peer key yet")
        if not header:
            raise PeerDenied(f"missing {HEADER} header")
        try:
            host_id, expiry_s, mac = header.rsplit(":", 2)
            expiry = int(expiry_s)
        except ValueError:
            raise PeerDenied(f"malformed {HEADER} header") from None
        now = self.clock()
        if not now <= expiry <= now + MAX_TTL_S:
            raise PeerDenied("peer credential expired")
        if not hmac.compare_digest(self._mac(host_id, expiry).encode(), mac.encode("ascii", "replace")):
            raise PeerDenied("bad peer credential")
        return host_id
