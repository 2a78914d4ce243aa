"""The sample service of the canary-analysis tests: serves HTTP on its host's address
(GANTRY_HOST_IP) and exports a request counter by status code and a latency histogram with
prometheus-client (vendored beside it by its build) on the same port (/metrics). Its build decides how it behaves: app.conf holds
"<port> <one failed request in N (0: none)> <latency in ms> <stop file>". It sends itself about 25
requests a second, so its metrics move without a load generator. It stops when the stop file
appears (the tests are done with it) or its release is removed."""
import os
import random
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, "vendor")
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest  # noqa: E402

port, fail_every, latency_ms, stop = open("app.conf").read().split()
port, fail_every, latency_ms = int(port), int(fail_every), int(latency_ms)
REQUESTS = Counter("app_requests", "requests served, by status code", ["code"])
for code in ("200", "500"):
    REQUESTS.labels(code=code)   # exported as 0 from the start: "no errors yet" is a 0, not no data
# an edge at 15 ms between the good build's 8-12 ms and v1's 16-24 ms: without it both p99s
# interpolate inside (10, 25] ms to about 24.7 and 24.9 ms, and "good is faster" is noise
LATENCY = Histogram("app_request_seconds", "time to serve a request",
                    buckets=(0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 1.0))
served = 0
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        global served
        if self.path == "/metrics":
            return self._send(200, generate_latest(), CONTENT_TYPE_LATEST)
        if self.path == "/healthz":
            return self._send(200, b"ok\n")
        started = time.perf_counter()
        time.sleep(latency_ms / 1000 * random.uniform(0.8, 1.2))
        with lock:
            served += 1
            code = 500 if fail_every and served % fail_every == 0 else 200
        LATENCY.observe(time.perf_counter() - started)
        REQUESTS.labels(code=str(code)).inc()
        self._send(code, b"hello\n")

    def _send(self, code, body, kind="text/plain"):
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self):   # the next release binds the same port while this one still runs
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


def load(url):
    release = os.getcwd()
    while os.path.exists(release) and not os.path.exists(stop):
        try:
            urllib.request.urlopen(url, timeout=5).read()
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.02)
    os._exit(0)


server = Server((os.environ["GANTRY_HOST_IP"], port), Handler)
threading.Thread(target=load, args=(f"http://{os.environ['GANTRY_HOST_IP']}:{port}/",), daemon=True).start()
server.serve_forever()
