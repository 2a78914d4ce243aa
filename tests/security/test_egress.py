"""Issue 22, points 5 and 10: the fetch step's proxy against names, addresses and Host headers
that lead inside, and against local users who find its socket. Real sockets, a real HTTP server."""
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from gantry.actors.build.sandbox.egress import Allow, BadEntry, parse
from gantry.actors.build.sandbox.proxy import EgressProxy
from helpers import HTTPStub, ask_unix

BUILD_UID = 600_999


@pytest.fixture
def inside():
    """A service on loopback, where the builder's Redis or a metadata service would be."""
    server = HTTPStub(lambda request: f"inside host={request.headers['Host']}".encode())
    yield server.port
    server.stop()


def serve(tmp_path, entries, uid=None):
    lines = []
    p = EgressProxy(Allow(entries), lines.append, uid)
    d = Path(tempfile.mkdtemp(prefix="gantry-proxy-test-"))   # in /tmp, as a build's is: others may pass /tmp
    if uid is not None:
        os.chown(d, uid, uid)
        os.chmod(d, 0o700)
    p.start(str(d / "proxy.sock"))
    p.path, p.lines = str(d / "proxy.sock"), lines
    return p


@pytest.mark.parametrize("entry", ["127.0.0.1:6379", "0.0.0.0:8000", "[::1]:6379", "169.254.169.254",
                                   "10.1.2.3:80", "192.168.0.1", "2130706433", "0x7f000001", "[::ffff:127.0.0.1]:6379",
                                   "224.0.0.1"])
def test_internal_addresses_are_refused_as_entries_unless_marked_private(entry):
    with pytest.raises(BadEntry):
        parse([entry])
    if not entry.startswith(("2130706433", "0x")):
        assert parse([entry + " private"])[0][2] is True


def test_a_name_that_resolves_inside_is_refused_when_the_proxy_connects(tmp_path, inside):
    """With `localhost:<port>` allowed, a build reached a 127.0.0.1 service."""
    p = serve(tmp_path, [f"localhost:{inside}"])
    try:
        out = ask_unix(p.path, f"GET http://localhost:{inside}/ HTTP/1.1\r\nHost: localhost:{inside}\r\n\r\n".encode())
        assert out.startswith(b"HTTP/1.1 403") and b"resolves to 127.0.0.1 is a loopback address" in out, out
        assert b"inside" not in out.split(b"\r\n\r\n", 1)[1]
        out = ask_unix(p.path, f"CONNECT localhost:{inside} HTTP/1.1\r\n\r\n".encode())
        assert out.startswith(b"HTTP/1.1 403") and b"loopback" in out
        assert p.allowed == 0
    finally:
        p.stop()


def test_the_host_header_must_be_the_urls_authority(tmp_path, inside):
    """A request for an allowed URL carried `Host: attacker.example.net` to the service unchanged."""
    p = serve(tmp_path, [f"127.0.0.1:{inside} private"])
    try:
        out = ask_unix(p.path, f"GET http://127.0.0.1:{inside}/ HTTP/1.1\r\nHost: attacker.example.net\r\n\r\n".encode())
        assert out.startswith(b"HTTP/1.1 403") and b"must be the URL's authority" in out, out
        out = ask_unix(p.path, f"GET http://127.0.0.1:{inside}/ HTTP/1.1\r\nHost: 127.0.0.1:{inside}\r\n"
                          f"Host: attacker.example.net\r\n\r\n".encode())
        assert out.startswith(b"HTTP/1.1 403")
        out = ask_unix(p.path, f"GET http://127.0.0.1:{inside}/ HTTP/1.1\r\nHost: 127.0.0.1:{inside}\r\n\r\n".encode())
        assert b"inside host=127.0.0.1:" in out   # an admin marked it private: allowed, as asked
        assert any(f"-> 127.0.0.1" in line for line in p.lines), p.lines   # the address it went to is logged
    finally:
        p.stop()


def test_only_the_builds_uid_can_use_the_socket(tmp_path, inside):
    """uid 65534 found the socket in /proc/net/unix and got 200 OK through it."""
    p = serve(tmp_path, [f"127.0.0.1:{inside} private"], uid=BUILD_UID)
    request = f"GET http://127.0.0.1:{inside}/ HTTP/1.1\r\nHost: 127.0.0.1:{inside}\r\n\r\n".encode()

    def through(uid):
        return subprocess.run(["socat", "-t", "5", "-", f"UNIX-CONNECT:{p.path}"], input=request, user=uid,
                              group=uid, extra_groups=[], capture_output=True, timeout=30)
    try:
        st = os.stat(p.path)
        assert (st.st_uid, st.st_mode & 0o777) == (BUILD_UID, 0o600)
        assert os.stat(os.path.dirname(p.path)).st_mode & 0o777 == 0o700
        for stranger in (65534, 600_001):
            r = through(stranger)
            assert r.returncode != 0 and b"inside" not in r.stdout and b"Permission denied" in r.stderr, r
        assert ask_unix(p.path, request) == b""   # root passes the modes, not SO_PEERCRED: unanswered
        assert any("refused a connection from uid 0" in line for line in p.lines)
        assert b"inside host=" in through(BUILD_UID).stdout
    finally:
        p.stop()
        shutil.rmtree(os.path.dirname(p.path), ignore_errors=True)
