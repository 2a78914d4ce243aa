"""The API's replica serves the API port itself (Ray Serve's direct ingress, see
`cluster/stack.py`). Serve binds that port without SO_REUSEADDR (ray.serve._private.http_util,
Ray 2.60), so after a restart the connections the last replica left in TIME_WAIT (60 s) refuse
the bind, and Serve then gives the port up for the node: `gantry up` after a lost head failed
so. This module, imported in the replica before it starts its server, makes the sockets that
function creates reuse the address, as uvicorn's own do. A live listener still refuses the bind.
"""
from __future__ import annotations

import socket


class _ReusingSockets:
    """`socket` as http_util sees it: the module, with sockets that reuse their address."""

    def __getattr__(self, name):
        return getattr(socket, name)

    @staticmethod
    def socket(*args, **kwargs) -> socket.socket:
        s = socket.socket(*args, **kwargs)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        return s


def reuse_address() -> None:
    from ray.serve._private import http_util
    if not isinstance(http_util.socket, _ReusingSockets):
        http_util.socket = _ReusingSockets()
