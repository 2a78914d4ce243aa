"""What an operator runs on a real host to install the agent (`gantry host add --print`): a venv
with `gantry[node]` only (no Ray), the host's settings and token in a root-only file, the stack's
CA and the host's own certificate (its peer server's), and the systemd unit that ships with the
agent (`gantry-node --print-unit`)."""
from __future__ import annotations

import shlex
from pathlib import Path

VENV = "/opt/gantry-node"
ENV_FILE = "/etc/gantry/node.env"
CA, CERT, KEY = "/etc/gantry/ca.pem", "/etc/gantry/node.pem", "/etc/gantry/node.key"   # as the unit names them


def default_source() -> str:
    """This checkout, as a pip requirement's URL (a host fetches it however the operator ships it)."""
    root = Path(__file__).resolve().parent.parent
    return root.as_uri() if (root / "pyproject.toml").exists() else "gantry"


def install_commands(host_id: str, region: str, dc: str, api_url: str, token: str, listen: str,
                     advertise: str, source: str, ca_pem: str, cert_pem: str, key_pem: str) -> str:
    env = {"GANTRY_HOST_TOKEN": token, "GANTRY_HOST_ID": host_id, "GANTRY_REGION": region, "GANTRY_DC": dc,
           "GANTRY_API": api_url, "GANTRY_LISTEN": listen, "GANTRY_ADVERTISE": advertise}
    for k, v in env.items():
        if any(c in v for c in "\n\r\\\"'$` "):
            raise ValueError(f"{k} may not hold quotes, spaces, '$', '`' or line breaks: {v!r}")
    requirement = "gantry[node]" if source == "gantry" else f"gantry[node] @ {source}"
    lines = [
        f"# On host {host_id}, as root (Python 3.11; the agent needs no Ray):",
        f"python3.11 -m venv {VENV}",
        f"{VENV}/bin/pip install {shlex.quote(requirement)}",
        f"install -d -m 0700 {Path(ENV_FILE).parent}",
        f"(umask 077; cat > {ENV_FILE} <<'GANTRY_ENV'",
        *(f"{k}={v}" for k, v in env.items()),   # systemd's EnvironmentFile: no quoting
        "GANTRY_ENV",
        ")",
        *_file(CA, ca_pem, "0644"), *_file(CERT, cert_pem, "0644"), *_file(KEY, key_pem, "0600"),
        f"{VENV}/bin/gantry-node --print-unit > /etc/systemd/system/gantry-node.service",
        "systemctl daemon-reload && systemctl enable --now gantry-node",
        "journalctl -u gantry-node -f   # it reports to its coordinator within seconds",
    ]
    return "\n".join(lines) + "\n"


def _file(path: str, pem: str, mode: str) -> list[str]:
    if "GANTRY_PEM" in pem:
        raise ValueError(f"{path}: not a PEM file")
    return [f"(umask 077; cat > {path} <<'GANTRY_PEM'", *pem.strip().splitlines(), "GANTRY_PEM", ")",
            f"chmod {mode} {path}"]
