"""Issue 24: TLS on every hop. Each listener of the stack speaks HTTPS only (plain HTTP gets no
answer), a client that trusts another CA fails, and a host's token is never sent over plain HTTP
(the agent refuses an http:// API or coordinator endpoint unless told --insecure-plain-http).
The peer server and the agent's checks need no stack; the stack's listeners are tested on the
shared stack."""
import os
import socket
import ssl
import subprocess
import sys
import time
from urllib.parse import urlsplit

import httpx
import pytest
import redis

from conftest import host_endpoint
from gantry.auth import issue_host
from gantry.cluster.certs import StackCA
from gantry.node_daemon.chunkcache import ChunkCache
from gantry.node_daemon.peer_server import PeerServer
from gantry.tls import client_context, server_context


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return StackCA(tmp_path_factory.mktemp("tls")).ensure()


def plain_request_is_refused(host: str, port: int) -> bool:
    """A plain HTTP request gets no HTTP answer but a refusal: the connection closed, or a TLS
    alert, or an HTTP 400 that says plain HTTP was sent to an HTTPS port (nothing is served)."""
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        got = b""
        try:
            while chunk := s.recv(4096):
                got += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    return not got.startswith(b"HTTP/") or (b" 400 " in got.split(b"\r\n")[0] and b"ok" not in got.split(b"\r\n\r\n")[-1])


def test_a_peer_server_with_tls_refuses_plain_http_and_serves_https(ca, tmp_path):
    cert, key = ca.issue("host-peer", ["127.0.0.1"])
    server = PeerServer(ChunkCache(tmp_path / "cache"), tls=server_context(str(cert), str(key)), idle_timeout_s=2).start()
    try:
        host, port = server.address.rsplit(":", 1)
        assert plain_request_is_refused(host, int(port))
        assert httpx.get(f"https://{server.address}/healthz", verify=client_context(str(ca.ca_file))).text == "ok"
        with pytest.raises(httpx.ConnectError):   # a peer that trusts another CA
            httpx.get(f"https://{server.address}/healthz", verify=client_context(str(StackCA(tmp_path / "x").ensure().ca_file)))
    finally:
        server.stop()


def test_a_stalled_handshake_holds_one_connection_not_the_peer_server(ca, tmp_path):
    cert, key = ca.issue("host-stall", ["127.0.0.1"])
    server = PeerServer(ChunkCache(tmp_path / "cache"), tls=server_context(str(cert), str(key)), idle_timeout_s=5).start()
    host, port = server.address.rsplit(":", 1)
    stalled = [socket.create_connection((host, int(port))) for _ in range(4)]   # connect, never say hello
    try:
        assert httpx.get(f"https://{server.address}/healthz", verify=client_context(str(ca.ca_file)), timeout=3).text == "ok"
    finally:
        for s in stalled:
            s.close()
        server.stop()


def agent(args: list[str], env_token="t") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gantry.node_daemon.cli", "--home", "/tmp/gantry-tls-never-used",
                           "--host-id", "h1", "--region", "r", "--dc", "r-a", *args],
                          env={**os.environ, "GANTRY_HOST_TOKEN": env_token}, capture_output=True,
                          text=True, timeout=60)


def test_the_agent_sends_its_token_to_no_plain_url_and_needs_its_tls_files(ca):
    cert, key = ca.issue("host-agent", ["127.0.0.1"])
    files = ["--ca", str(ca.ca_file), "--cert", str(cert), "--key", str(key)]
    r = agent(["--api", "http://127.0.0.1:9", *files])
    assert r.returncode == 2 and "plain HTTP" in r.stderr, r.stderr
    r = agent(["--api", "https://127.0.0.1:9"])
    assert r.returncode == 2 and "TLS needs --ca" in r.stderr, r.stderr
    r = agent(["--api", "https://127.0.0.1:9", "--ca", str(ca.ca_file), "--cert", str(ca.ca_file), "--key", str(cert)])
    assert r.returncode == 2 and "--ca/--cert/--key" in r.stderr, r.stderr   # a key that is not a key
    r = agent(["--api", "http://127.0.0.1:9", "--insecure-plain-http", *files])
    assert r.returncode == 2 and "takes no --ca" in r.stderr, r.stderr


# --- the shared stack's listeners ---------------------------------------------------------------

def listeners(stack) -> dict[str, tuple[str, int]]:
    cfg = stack.config()
    out = {"api": urlsplit(cfg.api_url), "prometheus": urlsplit(cfg.prometheus_url),
           **{f"s3-{r.name}": urlsplit(r.s3_endpoint) for r in cfg.regions}}
    out = {k: (u.hostname, u.port) for k, u in out.items()}
    out["redis"] = ("127.0.0.1", stack.pids()["redis"]["port"])
    return out


def test_every_listener_of_the_stack_speaks_tls_only(stack):
    cfg = stack.config()
    assert cfg.api_url.startswith("https://") and all(r.s3_endpoint.startswith("https://") for r in cfg.regions)
    assert cfg.prometheus_url.startswith("https://127.0.0.1:")
    found = listeners(stack)
    for dc in ("us-east-a", "eu-west-a"):
        with host_endpoint(stack, issue_host(cfg.jwt_secret(), f"probe-{dc}", dc), dc) as c:
            url = urlsplit(str(c.base_url))
        assert url.scheme == "https"
        found[f"endpoint-{dc}"] = (url.hostname, url.port)
    for name in stack.hosts():   # each host's peer server
        address = (stack.home / "hosts" / name / "address").read_text().strip()
        argv = stack.pids()[f"host-{name}"]["argv"]
        found[f"peer-{name}"] = (address, int(argv[argv.index("--listen") + 1].rsplit(":", 1)[1]))
    assert len(found) >= 9
    for name, (host, port) in found.items():
        if name != "redis":
            assert plain_request_is_refused(host, port), f"{name} answered plain HTTP"
    with pytest.raises(redis.ConnectionError):   # Redis: plain RESP is refused too
        redis.Redis(host="127.0.0.1", port=found["redis"][1], socket_timeout=3).ping()


def test_a_client_that_trusts_another_ca_reaches_no_listener(stack, tmp_path):
    wrong = client_context(str(StackCA(tmp_path / "other").ensure().ca_file))
    for name, (host, port) in listeners(stack).items():
        with pytest.raises(ssl.SSLCertVerificationError), socket.create_connection((host, port), timeout=10) as s:
            wrong.wrap_socket(s, server_hostname=host)
    right = client_context(stack.config().ca_file)
    for name, (host, port) in listeners(stack).items():
        with socket.create_connection((host, port), timeout=10) as s, right.wrap_socket(s, server_hostname=host):
            pass


def test_a_host_token_is_never_sent_in_the_clear(stack):
    """By construction: the API a stack's agent talks to is https, the endpoint it is told is
    https, and an agent told an http:// API refuses to start rather than send its token."""
    cfg = stack.config()
    for name in stack.hosts():
        argv = stack.pids()[f"host-{name}"]["argv"]
        assert argv[argv.index("--api") + 1].startswith("https://") and "--insecure-plain-http" not in argv
    token = issue_host(cfg.jwt_secret(), "sniffed", "us-east-a")
    r = agent(["--api", cfg.api_url.replace("https://", "http://"), "--ca", cfg.ca_file, "--cert", cfg.tls_cert_file,
               "--key", cfg.tls_key_file], env_token=token)
    assert r.returncode == 2 and "plain HTTP" in r.stderr
