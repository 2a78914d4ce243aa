"""Which hosts a build's fetch step may reach: the project's `egressAllow` list.

An entry is `host` or `host:port` (`[v6addr]:port` for IPv6). A host without a port may be reached
on 80 and 443. Names match exactly, case-insensitively: no wildcards, so an entry says exactly
which server is trusted.
"""
from __future__ import annotations

import ipaddress
import re

MAX_ENTRIES = 64
DEFAULT_PORTS = (80, 443)
_NAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


class BadEntry(ValueError):
    pass


def split_host_port(text: str) -> tuple[str, int | None]:
    """("host", port or None) from "host", "host:port", "[v6]" or "[v6]:port"."""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise BadEntry(f"{text!r}: an IPv6 address goes in brackets, as [::1]:8080")
        port = rest[1:] if rest else None
    else:
        host, sep, port = text.rpartition(":")
        if not sep:
            host, port = text, None
    if port is not None and (not port.isdigit() or not 0 < int(port) < 65536):
        raise BadEntry(f"{text!r}: the port must be a number from 1 to 65535")
    return host.lower(), (int(port) if port is not None else None)


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_NAME.match(host))


def parse(entries: list[str]) -> list[tuple[str, int | None]]:
    if len(entries) > MAX_ENTRIES:
        raise BadEntry(f"at most {MAX_ENTRIES} entries")
    out = []
    for e in entries:
        if not isinstance(e, str):
            raise BadEntry(f"{e!r}: an entry is a string, host or host:port")
        host, port = split_host_port(e.strip())
        if not _valid_host(host):
            raise BadEntry(f"{e!r}: not a host name or IP address (no schemes, paths or wildcards)")
        out.append((host, port))
    return out


class Allow:
    def __init__(self, entries: list[str]):
        self.entries = parse(entries)

    def permits(self, host: str, port: int) -> bool:
        host = host.lower().strip("[]")
        return any(h == host and (port == p if p is not None else port in DEFAULT_PORTS) for h, p in self.entries)

    def __str__(self) -> str:
        return ", ".join(f"{h}:{p}" if p else h for h, p in self.entries) or "nothing"
