"""The API port is bound again at once after a restart: Serve's direct-ingress sockets reuse the
address (serve_app/direct_ingress.py). A port with a connection in TIME_WAIT refuses a plain bind."""
import socket

from ray.serve._private import http_util

from gantry.serve_app.direct_ingress import reuse_address


def time_wait_port() -> int:
    """A listening port whose server closed an accepted connection first (TIME_WAIT), then stopped."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = server.accept()
    conn.close()            # the server's side closes first: it is left in TIME_WAIT
    client.recv(1)
    client.close()
    server.close()
    return port


def test_servers_sockets_bind_over_time_wait():
    port = time_wait_port()
    plain = socket.socket()
    try:
        plain.bind(("127.0.0.1", port))
        refused = False
    except OSError:
        refused = True
    finally:
        plain.close()
    assert refused, "the kernel let a plain socket bind over TIME_WAIT: this test shows nothing here"
    reuse_address()
    s = http_util.socket.socket(http_util.socket.AF_INET, http_util.socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))   # what Serve's start_asgi_http_server does
    finally:
        s.close()
