"""`gantry host add --print`: the commands that install the agent on a real host."""
import subprocess
import sys

import pytest

from gantry.cluster.hostinstall import install_commands

ARGS = dict(host_id="web-17", region="us-east", dc="us-east-a", api_url="https://gantry.example:8443",
            token="eyJ.abc.def", listen="0.0.0.0:7070", advertise="10.1.2.3:7070", source="gantry",
            ca_pem="-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n",
            cert_pem="-----BEGIN CERTIFICATE-----\nHOST\n-----END CERTIFICATE-----\n",
            key_pem="-----BEGIN PRIVATE KEY-----\nSECRET\n-----END PRIVATE KEY-----\n")


def test_the_commands_install_the_agent_alone_with_its_token_in_a_root_only_file():
    out = install_commands(**ARGS)
    assert "pip install 'gantry[node]'" in out and "[stack]" not in out
    env_block = out.split("<<'GANTRY_ENV'\n")[1].split("GANTRY_ENV")[0]
    assert "GANTRY_HOST_TOKEN=eyJ.abc.def\n" in env_block and "GANTRY_ADVERTISE=10.1.2.3:7070\n" in env_block
    assert "(umask 077; cat > /etc/gantry/node.env" in out   # never world-readable, not even for a moment
    assert "gantry-node --print-unit > /etc/systemd/system/gantry-node.service" in out
    assert "pip install 'gantry[node] @ file:///src/gantry'" in install_commands(**{**ARGS, "source": "file:///src/gantry"})


def test_the_commands_install_the_ca_and_the_hosts_certificate_with_its_key_root_only():
    out = install_commands(**ARGS)
    key_block = out.split("cat > /etc/gantry/node.key <<'GANTRY_PEM'\n")[1].split("GANTRY_PEM")[0]
    assert "SECRET" in key_block and "(umask 077; cat > /etc/gantry/node.key" in out
    assert "chmod 0600 /etc/gantry/node.key" in out and "chmod 0644 /etc/gantry/ca.pem" in out
    unit = subprocess.run([sys.executable, "-m", "gantry.node_daemon.cli", "--print-unit"],
                          capture_output=True, text=True, check=True).stdout
    for path in ("/etc/gantry/ca.pem", "/etc/gantry/node.pem", "/etc/gantry/node.key"):
        assert path in out and path in unit   # the unit runs the agent with the files the commands wrote


@pytest.mark.parametrize("field,bad", [("host_id", "a b"), ("api_url", "http://x/$(id)"), ("advertise", "h:1\nX=1")])
def test_a_value_that_would_break_the_env_file_is_refused(field, bad):
    with pytest.raises(ValueError):
        install_commands(**{**ARGS, field: bad})


def test_the_agent_prints_its_systemd_unit():
    out = subprocess.run([sys.executable, "-m", "gantry.node_daemon.cli", "--print-unit"],
                         capture_output=True, text=True, check=True).stdout
    assert "EnvironmentFile=/etc/gantry/node.env" in out and "KillMode=process" in out
    assert "ExecStart=/opt/gantry-node/bin/gantry-node" in out
