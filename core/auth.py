"""Bearer JWTs (HS256): who the caller is and which projects they may act on."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import jwt

HOST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass(frozen=True)
class Principal:
    user: str
    projects: frozenset[str]
    admin: bool
    host: bool = False   # a node daemon's credential: may only report to coordinators...
    rate: tuple[float, float] | None = None   # this caller's own (requests/s, burst), if not the default
    host_id: str | None = None   # ...as this host...
    dc: str | None = None        # ...to this datacenter's coordinator...
    serves: frozenset[str] | None = frozenset()   # ...for these projects (None: every one)
    roles: frozenset[str] = frozenset()   # e.g. "deployer": may approve gates and override freezes
    # (project, its record or None) read with the request's rate-limit token (serve_app.service)
    read: tuple[str, dict | None] | None = field(default=None, compare=False, repr=False)

    def may_access(self, project: str) -> bool:
        return self.admin or project in self.projects

    def has_role(self, role: str) -> bool:
        return self.admin or role in self.roles


def issue(secret: str, user: str, projects: list[str] = (), admin: bool = False,
          ttl_s: int = 30 * 24 * 3600, rate: tuple[float, float] | None = None, roles: list[str] = ()) -> str:
    now = int(time.time())
    claims = {"sub": user, "projects": sorted(projects), "admin": admin, "iat": now, "exp": now + ttl_s}
    if roles:
        claims["roles"] = sorted(roles)
    if rate:
        claims["rate"] = [float(rate[0]), float(rate[1])]
    return jwt.encode(claims, secret, algorithm="HS256")


def issue_host(secret: str, host_id: str, dc: str, projects: list[str] | None = None,
               ttl_s: int = 365 * 24 * 3600) -> str:
    """A node daemon's token: it may report as `host_id` to `dc`'s coordinator for `projects`
    (None: every project), and nothing else."""
    if not HOST_ID_RE.match(host_id) or not HOST_ID_RE.match(dc):
        raise ValueError("a host ID and a datacenter are letters, digits, '.', '_' and '-', at most 64")
    now = int(time.time())
    return jwt.encode({"sub": f"host:{host_id}", "projects": [], "admin": False, "host": True, "hostID": host_id,
                       "dc": dc, "serves": "*" if projects is None else sorted(projects),
                       "iat": now, "exp": now + ttl_s}, secret, algorithm="HS256")


def verify(secret: str, authorization: str | None) -> Principal:
    """Raises ValueError with a reason a user can act on."""
    if not authorization or not authorization.startswith("Bearer "):
        raise ValueError("missing 'Authorization: Bearer <token>' header")
    try:
        claims = jwt.decode(authorization[7:].strip(), secret, algorithms=["HS256"],
                            options={"require": ["sub", "exp"]})
    except jwt.ExpiredSignatureError:
        raise ValueError("token expired")
    except jwt.InvalidTokenError as e:
        raise ValueError(f"invalid token: {e}")
    projects = claims.get("projects") or []
    if not isinstance(projects, list) or not all(isinstance(p, str) for p in projects):
        raise ValueError("invalid token: 'projects' must be a list of names")
    for flag in ("admin", "host"):
        if not isinstance(claims.get(flag, False), bool):
            raise ValueError(f"invalid token: '{flag}' must be a JSON boolean")
    rate = claims.get("rate")
    if rate is not None and not (isinstance(rate, list) and len(rate) == 2
                                 and all(isinstance(x, (int, float)) and x > 0 for x in rate)):
        raise ValueError("invalid token: 'rate' must be [requests per second, burst]")
    roles = claims.get("roles", [])
    if not (isinstance(roles, list) and all(isinstance(x, str) for x in roles)):
        raise ValueError("invalid token: 'roles' must be a list of role names")
    host = claims.get("host", False) is True
    host_id, dc = claims.get("hostID"), claims.get("dc")
    if host and not (isinstance(host_id, str) and HOST_ID_RE.match(host_id) and isinstance(dc, str)
                     and HOST_ID_RE.match(dc)):
        raise ValueError("invalid token: a host token names its hostID and dc")
    serves = claims.get("serves", [])   # a host token without the claim serves no project
    if serves != "*" and not (isinstance(serves, list) and all(isinstance(p, str) for p in serves)):
        raise ValueError("invalid token: 'serves' must be \"*\" or a list of project names")
    return Principal(str(claims["sub"]), frozenset(projects), claims.get("admin", False) is True and not host,
                     host, tuple(rate) if rate else None, host_id if host else None, dc if host else None,
                     None if serves == "*" else frozenset(serves), frozenset(roles) if not host else frozenset())
