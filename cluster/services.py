"""The local stack's own servers beside Ray: Redis and one S3 server (rclone) per region, each on
a free loopback port, TLS-only when given the stack's certificate (see `cluster/certs.py`)."""
from __future__ import annotations

import shutil
import socket
import subprocess
import urllib.parse

from gantry.cluster.processes import HOST, bin_path, free_port, wait_for
from gantry.topology import Region, write_private


def start_redis(stack, password: str, ca: str, cert: str, key: str) -> str:
    """Redis for `stack` (TLS only, with a CA); returns its URL."""
    port = free_port()
    (stack.home / "redis").mkdir(mode=0o700, exist_ok=True)
    conf = stack.home / "redis.conf"   # the password goes in a 0600 file, not on the command line
    listen = [f"port {port}"] if not ca else [
        "port 0", f"tls-port {port}", f"tls-cert-file {cert}", f"tls-key-file {key}", f"tls-ca-cert-file {ca}",
        "tls-auth-clients no"]   # clients prove themselves with the password, inside TLS
    write_private(conf, "\n".join([
        f"bind {HOST}", *listen, f"dir {stack.home / 'redis'}", "appendonly yes",
        "appendfsync always", 'save ""', "protected-mode yes", "daemonize no",
        f"requirepass {password}"]).encode() + b"\n")
    stack._spawn("redis", [shutil.which("redis-server") or "/usr/bin/redis-server", str(conf)], port=port)
    url = (f"rediss://:{password}@{HOST}:{port}/0?ssl_ca_certs={urllib.parse.quote(ca)}" if ca
           else f"redis://:{password}@{HOST}:{port}/0")
    wait_for(lambda: redis_ping(url), 30, "redis")
    return url


def plain_redis(directory: str, appendonly: bool = False) -> tuple[subprocess.Popen, str]:
    """A redis-server of one's own on loopback, no TLS or password (benches and tests that need no
    stack), once it answers: (the process, its URL). The caller stops it."""
    port = free_port()
    proc = subprocess.Popen([shutil.which("redis-server") or "/usr/bin/redis-server", "--bind", HOST,
                             "--port", str(port), "--dir", directory, "--save", "",
                             "--appendonly", "yes" if appendonly else "no"], stdout=subprocess.DEVNULL)
    url = f"redis://{HOST}:{port}/0"
    wait_for(lambda: redis_ping(url), 30, "redis", 0.05)
    return proc, url


def redis_ping(url: str) -> bool:
    import redis
    return redis.Redis.from_url(url, socket_timeout=1).ping()


def start_s3(stack, region: str, access_key: str, secret_key: str, bwlimit_mbps: float = 0,
             ca: str = "", cert: str = "", key: str = "") -> Region:
    """One region's S3 server for `stack`, its bucket a directory under <home>/s3/<region>."""
    port = free_port()
    root = stack.home / "s3" / region
    bucket = f"gantry-{region}"
    (root / bucket).mkdir(parents=True, exist_ok=True)  # rclone: a top-level directory is a bucket
    # the key goes through rclone's environment (RCLONE_AUTH_KEY), never on its command line
    stack._spawn(f"s3-{region}", [bin_path("rclone"), "serve", "s3", "--addr", f"{HOST}:{port}", "--config", "/dev/null"]
                 + ([f"--bwlimit={int(bwlimit_mbps * 1e6 / 1024)}k"] if bwlimit_mbps else [])
                 + (["--cert", cert, "--key", key, "--min-tls-version", "tls1.2"] if cert else []) + [str(root)],
                 {"RCLONE_AUTH_KEY": f'"{access_key},{secret_key}"'}, port=port,   # a CSV list of one pair
                 bwlimit_mbps=bwlimit_mbps)
    wait_for(lambda: socket.create_connection((HOST, port), timeout=1).close() or True, 30, f"S3 for {region}")
    return Region(name=region, s3_endpoint=f"{'https' if cert else 'http'}://{HOST}:{port}", bucket=bucket, ca_file=ca)
