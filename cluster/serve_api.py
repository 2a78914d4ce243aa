"""The detached actors and the Serve API on a Ray cluster, and the environment Ray's nodes need
for that API: Serve's proxy limits bodies too, and the API's replica serves the API port itself
(Serve's direct ingress, docs/OPERATIONS.md "The API's one process")."""
from __future__ import annotations

import os
import urllib.parse

from gantry.cluster.processes import HOST, free_port
from gantry.topology import StackConfig

PROXY_MIDDLEWARES = "gantry.serve_app.body_limit:proxy_middlewares"


def api_env(api_url: str) -> dict[str, str]:
    """What every Ray node's environment holds for the API at `api_url`."""
    port = urllib.parse.urlsplit(api_url).port
    return {"RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH": PROXY_MIDDLEWARES,
            "RAY_SERVE_ENABLE_DIRECT_INGRESS": "1", "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(port),
            "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": str(port + 1),   # a range, its end excluded
            "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0"}


def deploy_services(stack_file: str, api_port: int, host: str = HOST) -> None:
    """Start the detached actors and the Serve API on the Ray cluster this driver is connected
    to (idempotent), then disconnect. Used by `gantry up` and, on a real cluster, `gantry serve`."""
    import ray
    from ray import serve

    from gantry.actors.start import start_actors
    from gantry.serve_app.app import build_app
    start_actors(stack_file)
    cfg = StackConfig.load(stack_file)
    tls = {"ssl_certfile": cfg.tls_cert_file, "ssl_keyfile": cfg.tls_key_file} if cfg.tls_cert_file else {}
    # With direct ingress the API's replica serves `api_port` itself and Serve's proxy, a hop
    # that tripled a request's latency, listens where nobody calls it.
    direct = os.environ.get("RAY_SERVE_ENABLE_DIRECT_INGRESS") == "1"
    serve.start(proxy_location="HeadOnly", http_options={"host": host, "port": free_port() if direct else api_port, **tls})
    serve.run(build_app(stack_file), name="gantry", route_prefix="/", blocking=False)
    ray.shutdown()
