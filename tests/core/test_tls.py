"""TLS pieces without a stack: the stack CA's certificates, the contexts built from them, and the
rule that a token never goes to a plain http:// URL unless plain HTTP was asked for."""
import socket
import ssl
import threading

import httpx
import pytest
from cryptography import x509

from gantry.cluster.certs import StackCA
from gantry.tls import HostTLS, PlainRefused, check_url, client_context, server_context


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return StackCA(tmp_path_factory.mktemp("tls")).ensure()


def serve_once(ctx: ssl.SSLContext) -> int:
    """A one-shot HTTPS server on loopback answering 'ok'; returns its port."""
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]

    def run():
        with srv:
            conn, _ = srv.accept()
            try:
                with ctx.wrap_socket(conn, server_side=True) as s:
                    s.recv(4096)
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            except (ssl.SSLError, OSError):
                pass
    threading.Thread(target=run, daemon=True).start()
    return port


def test_the_ca_is_made_once_and_kept(ca):
    first = ca.ca_file.read_bytes()
    assert StackCA(ca.dir).ensure().ca_file.read_bytes() == first
    assert oct(ca.ca_key_file.stat().st_mode & 0o777) == "0o600"


def test_an_issued_certificate_names_its_addresses_and_its_key_is_private(ca):
    cert_file, key_file = ca.issue("server", ["127.0.0.1", "localhost"])
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    with pytest.raises(ValueError):
        ca.issue("../escape", ["127.0.0.1"])


def test_a_client_of_the_ca_reaches_its_server_and_one_of_another_ca_fails(ca, tmp_path):
    port = serve_once(server_context(*map(str, ca.issue("srv", ["127.0.0.1"]))))
    assert httpx.get(f"https://127.0.0.1:{port}/", verify=client_context(str(ca.ca_file))).text == "ok"
    other = StackCA(tmp_path / "other").ensure()
    port = serve_once(server_context(*map(str, ca.issue("srv2", ["127.0.0.1"]))))
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"https://127.0.0.1:{port}/", verify=client_context(str(other.ca_file)))


def test_a_certificate_for_another_address_fails_the_hostname_check(ca):
    port = serve_once(server_context(*map(str, ca.issue("elsewhere", ["127.0.0.9"]))))
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED|match"):
        httpx.get(f"https://127.0.0.1:{port}/", verify=client_context(str(ca.ca_file)))


def test_a_token_goes_to_https_only_unless_plain_http_was_asked_for():
    assert check_url("https://api:8000", "--api", plain_ok=False) == "https://api:8000"
    with pytest.raises(PlainRefused, match="plain HTTP"):
        check_url("http://api:8000", "--api", plain_ok=False)
    assert check_url("http://api:8000", "--api", plain_ok=True) == "http://api:8000"
    with pytest.raises(PlainRefused):
        check_url("ftp://api", "--api", plain_ok=True)


def test_a_hosts_tls_files(ca):
    cert, key = ca.issue("host-a", ["127.0.1.1"])
    tls = HostTLS(str(ca.ca_file), str(cert), str(key))
    assert tls.scheme == "https" and isinstance(tls.client(), ssl.SSLContext) and tls.server() is not None
    assert HostTLS().scheme == "http" and HostTLS().client() is True and HostTLS().server() is None


def test_a_real_clusters_stack_file_names_the_operators_certificates():
    from pathlib import Path
    from gantry.topology import StackConfig
    cfg = StackConfig.load(Path(__file__).parents[2] / "deploy" / "gantry-stack.example.json")
    assert not cfg.plain_http and cfg.api_url.startswith("https://") and cfg.redis_url.startswith("rediss://")
    assert cfg.tls_cert_file and cfg.tls_key_file and "ssl_ca_certs=" + cfg.ca_file in cfg.redis_url
