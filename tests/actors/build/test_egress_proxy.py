"""The fetch step's forward proxy and its allow-list, on real sockets (no sandbox, no Ray)."""
import socket

import pytest

from gantry.actors.build.sandbox.egress import Allow, BadEntry, parse
from gantry.actors.build.sandbox.proxy import MAX_HEAD, EgressProxy
from helpers import HTTPStub, ask_unix


@pytest.fixture
def origin():
    server = HTTPStub(lambda request: (f"path={request.path} host={request.headers['Host']} "
                                       f"proxyauth={request.headers['Proxy-Authorization']}").encode())
    yield server.port
    server.stop()


@pytest.fixture
def proxy(tmp_path, origin):
    lines = []
    p = EgressProxy(Allow([f"127.0.0.1:{origin} private", "pypi.org"]), lines.append)
    path = tmp_path / "proxy.sock"
    p.start(str(path))
    p.path, p.lines = str(path), lines
    yield p
    p.stop()


ask = ask_unix


def test_plain_http_to_an_allowed_host_goes_through_without_proxy_headers(proxy, origin):
    out = ask(proxy.path, f"GET http://127.0.0.1:{origin}/simple/x?y=1 HTTP/1.1\r\nHost: 127.0.0.1:{origin}\r\n"
                          f"Proxy-Authorization: Basic c2VjcmV0\r\n\r\n".encode())
    assert out.startswith(b"HTTP/1.0 200") and b"path=/simple/x?y=1" in out and b"proxyauth=None" in out
    assert proxy.allowed == 1 and proxy.refused == 0


def test_connect_to_an_allowed_host_opens_a_tunnel(proxy, origin):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(proxy.path)
    s.sendall(f"CONNECT 127.0.0.1:{origin} HTTP/1.1\r\nHost: 127.0.0.1:{origin}\r\n\r\n".encode())
    assert s.recv(4096).startswith(b"HTTP/1.1 200 Connection established")
    s.sendall(b"GET /through HTTP/1.0\r\n\r\n")
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    assert b"path=/through" in out


@pytest.mark.parametrize("request_line,why", [
    ("CONNECT evil.example:443", "evil.example:443 is not in the project's egressAllow"),
    ("CONNECT 127.0.0.1:22", "127.0.0.1:22 is not in the project's egressAllow"),
    ("GET http://127.0.0.2:80/", "127.0.0.2:80 is not in the project's egressAllow"),
    ("GET http://pypi.org:8080/", "pypi.org:8080 is not in the project's egressAllow"),
    ("GET /relative", "a proxy request names an http:// URL"),
    ("GET ftp://pypi.org/", "a proxy request names an http:// URL"),
    ("CONNECT pypi.org:https", "not host:port"),
])
def test_anything_else_is_refused_with_a_reason_in_the_answer_and_the_log(proxy, request_line, why):
    out = ask(proxy.path, f"{request_line} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert out.split(b"\r\n", 1)[0] in (b"HTTP/1.1 403 Refused", b"HTTP/1.1 400 Refused"), out
    assert why.encode() in out and any(why in line for line in proxy.lines)
    assert proxy.allowed == 0


def test_an_oversized_or_garbage_head_gets_nothing(proxy):
    assert ask(proxy.path, b"GET http://pypi.org/" + b"x" * (MAX_HEAD + 10)) == b""
    assert ask(proxy.path, b"\xff\xfe garbage\r\n\r\n").startswith(b"HTTP/1.1 400")
    assert proxy.allowed == 0


def test_allow_entries_parse_and_match_exactly():
    allow = Allow(["PyPI.org", "127.0.0.1:8080 private", "[::1]:9000 private"])
    assert allow.permits("pypi.org", 443) and allow.permits("pypi.org", 80) and not allow.permits("pypi.org", 22)
    assert not allow.permits("files.pypi.org", 443) and not allow.permits("pypi.org.evil", 443)
    assert allow.permits("127.0.0.1", 8080) and not allow.permits("127.0.0.1", 80)
    assert allow.permits("::1", 9000) and allow.permits("[::1]", 9000)
    for bad in ("http://pypi.org", "*.pypi.org", "pypi.org/simple", "host:0", "host:99999", "[::1", "a b", "",
                "127.0.0.1:8080", "[::1]:9000"):
        with pytest.raises(BadEntry):
            parse([bad])


def test_a_socket_path_too_long_fails_at_start_and_leaves_nothing_running(tmp_path):
    p = EgressProxy(Allow([]), lambda line: None)
    with pytest.raises(OSError):
        p.start(str(tmp_path / ("x" * 120)))
    assert not p.thread.is_alive()
