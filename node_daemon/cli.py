"""`gantry-node`'s command line: the agent's settings, checked before it starts."""
from __future__ import annotations

import argparse
import logging
import os
import pwd
import signal
import ssl
import sys
from pathlib import Path

from gantry.node_daemon.daemon import MB, NodeDaemon, split_address
from gantry.settings import Settings
from gantry.tls import HostTLS, check_url
from gantry.uids import PROJECT_UIDS, reserved


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv == ["--print-unit"]:   # the systemd unit for a real host
        print((Path(__file__).parent / "gantry-node.service").read_text(), end="")
        return 0
    ap = argparse.ArgumentParser(prog="gantry-node", description="the gantry host agent (--print-unit: its systemd unit)")
    ap.add_argument("--home", required=True)
    ap.add_argument("--host-id", required=True)
    ap.add_argument("--region", required=True)
    ap.add_argument("--dc", required=True)
    ap.add_argument("--api", "--coordinator", dest="api", required=True,
                    help="the gantry API's URL (it tells the daemon where its host gateway is); --coordinator is its old name")
    ap.add_argument("--listen", default="127.0.0.1:0", help="peer server ADDR:PORT (port 0: any free port)")
    ap.add_argument("--advertise", help="ADDR:PORT other hosts reach the peer server at (default: --listen's)")
    ap.add_argument("--rack", default="", help="this host's rack: peers in the same rack are preferred")
    ap.add_argument("--project", action="append", dest="projects",
                    help="a project this host serves (repeatable; none: every project)")
    ap.add_argument("--max-up", type=float, default=0, help="upload cap in MB/s (0: none)")
    ap.add_argument("--max-down", type=float, default=0, help="download cap in MB/s (0: none)")
    ap.add_argument("--no-peers", action="store_true", help="fetch only from the regional blob store")
    ap.add_argument("--cache-max-mb", type=float, default=0,
                    help="cap on the chunk cache; it always keeps the active release (0: keep every kept release's chunks)")
    ap.add_argument("--ca", help="the stack's CA certificate: the API, the coordinator and peers must present one it signed")
    ap.add_argument("--cert", help="this host's certificate for its peer server (signed by the stack's CA)")
    ap.add_argument("--key", help="the private key of --cert")
    ap.add_argument("--insecure-plain-http", action="store_true",
                    help="talk plain HTTP to the API, the coordinator and peers (tokens readable on the path)")
    ap.add_argument("--hook-user",
                    help="run every project's [deploy] hooks as this one user (default, as root: a uid and "
                         f"gid per project from {PROJECT_UIDS}, kept in <home>/project-uids.json)")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)   # not a line per report and long-poll
    token = os.environ.get("GANTRY_HOST_TOKEN", "")
    if not token:
        print("GANTRY_HOST_TOKEN is required (gantry token --host)", file=sys.stderr)
        return 2
    try:
        tls = _tls(a)
    except ValueError as e:
        print(str(e), file=sys.stderr)
        return 2
    hook_user = None
    if a.hook_user:
        try:
            pw = pwd.getpwnam(a.hook_user)
        except KeyError:
            print(f"--hook-user: no user named {a.hook_user!r}", file=sys.stderr)
            return 2
        whose = reserved(pw.pw_uid, pw.pw_gid, Settings().build_uids)
        if whose:
            print(f"--hook-user: {a.hook_user} is in the uids reserved for {whose}", file=sys.stderr)
            return 2
        hook_user = (pw.pw_uid, pw.pw_gid)
    home = Path(a.home)
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o711)   # the hook user passes through to its release, lists nothing
    try:
        host, _ = split_address(a.listen)
        if a.advertise:
            split_address(a.advertise)
    except ValueError as e:
        print(f"--listen/--advertise: {e}", file=sys.stderr)
        return 2
    if host in ("0.0.0.0", "::") and not a.advertise:
        print("--listen on every interface needs --advertise ADDR:PORT (the address peers use)", file=sys.stderr)
        return 2
    d = NodeDaemon(home, a.host_id, a.region, a.dc, a.api, token, a.listen, a.max_up, a.max_down,
                   use_peers=not a.no_peers, hook_user=hook_user, cache_max_bytes=int(a.cache_max_mb * MB),
                   advertise=a.advertise, projects=a.projects, rack=a.rack,
                   busy_budget_s=Settings().peer_busy_budget_s, tls=tls)
    def terminate(*_):
        d.stop.set()
        raise SystemExit(0)   # now, even in the middle of a long-poll; what is on disk survives a stop anywhere
    signal.signal(signal.SIGTERM, terminate)
    d.run()
    return 0


def _tls(a) -> HostTLS:
    """TLS files checked to exist and load, and an API URL a token may be sent to."""
    if a.insecure_plain_http:
        if a.ca or a.cert or a.key:
            raise ValueError("--insecure-plain-http takes no --ca, --cert or --key")
        logging.getLogger("gantry.node").warning("plain HTTP (--insecure-plain-http): this host's token and its "
                                                 "peer credential cross the network readable by anyone on the path")
        check_url(a.api, "--api", plain_ok=True)
        return HostTLS()
    if not (a.ca and a.cert and a.key):
        raise ValueError("TLS needs --ca, and for the peer server --cert and --key (gantry host add --print "
                         "gives them); --insecure-plain-http turns TLS off")
    check_url(a.api, "--api", plain_ok=False)
    tls = HostTLS(a.ca, a.cert, a.key)
    try:
        tls.client()
        tls.server()
    except (OSError, ssl.SSLError) as e:
        raise ValueError(f"--ca/--cert/--key: {e}")
    return tls


if __name__ == "__main__":
    sys.exit(main())
