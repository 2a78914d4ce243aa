"""Which hosts a build's fetch step may reach: the project's `egressAllow` list.

An entry is `host` or `host:port` (`[v6addr]:port` for IPv6). A host without a port may be reached
on 80 and 443. Names match exactly, case-insensitively: no wildcards, so an entry says exactly
which server is trusted.

Loopback, link-local, private, unspecified, multicast and reserved addresses are refused, as
entries and as what a name resolves to when the proxy connects (a name whose DNS a project
controls could otherwise be pointed at Redis on the builder or a metadata service), unless the
entry ends in ` private`: an admin's explicit word that this server is inside the network.
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


PRIVATE = " private"


def internal(address: str) -> str | None:
    """What is wrong with connecting to `address` (an IP) from a build, or None if it is public."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    for kind in ("loopback", "link_local", "unspecified", "multicast", "private", "reserved"):
        if getattr(ip, f"is_{kind}"):
            return f"{ip} is a {kind.replace('_', '-')} address"
    return None


def _check_host(entry: str, host: str, private: bool) -> None:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        last = host.rsplit(".", 1)[-1]
        if not _NAME.match(host) or last.isdigit() or last.startswith("0x"):   # 2130706433 is 127.0.0.1
            raise BadEntry(f"{entry!r}: not a host name or IP address (no schemes, paths or wildcards)")
        return
    why = internal(str(ip))
    if why and not private:
        raise BadEntry(f"{entry!r}: {why}; only an entry ending in '{PRIVATE.strip()}' may name one")


def parse(entries: list[str]) -> list[tuple[str, int | None, bool]]:
    """(host, port or None, private allowed) for each entry."""
    if len(entries) > MAX_ENTRIES:
        raise BadEntry(f"at most {MAX_ENTRIES} entries")
    out = []
    for e in entries:
        if not isinstance(e, str):
            raise BadEntry(f"{e!r}: an entry is a string, host or host:port")
        text = e.strip()
        private = text.endswith(PRIVATE)
        host, port = split_host_port(text[: -len(PRIVATE)].strip() if private else text)
        _check_host(e, host, private)
        out.append((host, port, private))
    return out


class Allow:
    def __init__(self, entries: list[str]):
        self.entries = parse(entries)

    def permits(self, host: str, port: int) -> tuple[str, int | None, bool] | None:
        """The entry that lets a build reach host:port, if one does."""
        host = host.lower().strip("[]")
        return next((e for e in self.entries if e[0] == host and (
            port == e[1] if e[1] is not None else port in DEFAULT_PORTS)), None)

    def __str__(self) -> str:
        return ", ".join((f"{h}:{p}" if p else h) + (PRIVATE if private else "")
                         for h, p, private in self.entries) or "nothing"
