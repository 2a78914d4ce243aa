"""Findings 10, 11 and 16: what another local user of a builder or the head machine can reach."""
import os
import re
import stat
import subprocess
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from gantry.actors.build.attempt import BuildRunner, InfraFault
from gantry.settings import Settings
from gantry.topology import StackConfig

NOBODY = 65534


def as_nobody(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", "nobody", "--", *argv], capture_output=True, text=True, timeout=30)


def runner_for(builds_dir: Path) -> BuildRunner:
    cfg = StackConfig(home="/nonexistent", redis_url="redis://127.0.0.1:1/0", regions=[], s3_access_key="",
                      s3_secret_key="", jwt_secret_file="", builds_dir=str(builds_dir))
    return BuildRunner(cfg, Settings(), state=object())


@pytest.mark.parametrize("plant", ["link", "foreign", "world-writable"])
def test_a_planted_builds_directory_is_refused(tmp_path, plant):
    """Another user pre-created the predictable /tmp build directory; through a symlink, root
    then ran chmod 0711 on a path of that user's choosing."""
    victim = tmp_path / "victim"
    victim.mkdir(mode=0o700)
    planted = tmp_path / "builds"
    if plant == "link":
        planted.symlink_to(victim)
    else:
        planted.mkdir(mode=0o777 if plant == "world-writable" else 0o755)
        os.chmod(planted, 0o777 if plant == "world-writable" else 0o755)
        if plant == "foreign":
            os.chown(planted, NOBODY, NOBODY)
    with pytest.raises(InfraFault, match="refusing to build there"):
        runner_for(planted)._workdir("b1")
    assert stat.S_IMODE(victim.stat().st_mode) == 0o700 and not list(victim.iterdir())
    if planted.is_dir() and not planted.is_symlink():
        assert not list(planted.iterdir())


def test_build_directories_live_under_the_home_made_fresh(stack):
    cfg = stack.config()
    builds = Path(cfg.builds_dir)
    st = builds.lstat()
    assert builds.parent == stack.home or builds.name.startswith("gantry-builds-")
    assert stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) == 0o711
    assert stat.S_IMODE(stack.home.stat().st_mode) == 0o711     # others pass through, list nothing
    assert as_nobody("ls", str(stack.home)).returncode != 0


def test_secrets_files_are_private(stack):
    for name in ("stack.json", "pids.json", "jwt.secret", "s3.credentials", "redis.password", "redis.conf",
                 "ray.token", "tls/ca.key", "tls/server.key"):
        path = stack.home / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
        r = as_nobody("cat", str(path))
        assert r.returncode != 0 and "Permission denied" in r.stderr, name


def test_redis_requires_the_password(stack):
    """User nobody read a project's webhook secret with redis-cli. Redis speaks TLS only: plain
    is reset, and inside TLS (nobody cannot read the CA, so it skips the check) the password is
    still asked for."""
    port = stack.pids()["redis"]["port"]
    r = as_nobody("redis-cli", "-h", "127.0.0.1", "-p", str(port), "keys", "*")
    assert r.returncode != 0 and "NOAUTH" not in r.stdout and "gantry" not in r.stdout, r
    r = as_nobody("redis-cli", "--tls", "--insecure", "-h", "127.0.0.1", "-p", str(port), "keys", "*")
    assert "NOAUTH" in r.stdout + r.stderr, r


def test_no_secret_on_any_command_line(stack):
    cfg = stack.config()
    redis_password = (stack.home / "redis.password").read_text().strip()
    secrets = {"s3 secret": cfg.s3_secret_key, "jwt secret": cfg.jwt_secret(), "redis password": redis_password}
    ps = as_nobody("ps", "-eo", "args").stdout
    for what, value in secrets.items():
        assert value not in ps, f"the {what} is on a command line any local user sees"


def test_the_blob_store_still_requires_its_key(stack):
    region = stack.config().primary
    s3 = boto3.client("s3", endpoint_url=region.s3_endpoint, aws_access_key_id="guess",
                      aws_secret_access_key="guess", region_name="us-east-1", verify=region.ca_file or None,
                      config=Config(retries={"max_attempts": 1}))
    with pytest.raises(ClientError):
        s3.list_objects_v2(Bucket=region.bucket)


def test_our_own_servers_listen_on_loopback_only(stack):
    """Ray's GCS, raylet and agents listen on every interface and Ray 2.60 has no option to stop
    it (see docs/SECURITY.md); everything gantry starts itself binds loopback."""
    ours = {p["pid"] for name, p in stack.pids().items() if not name.startswith("ray-")}
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True).stdout
    checked = 0
    for line in out.splitlines():
        pids = {int(x) for x in re.findall(r"pid=(\d+)", line)}
        if pids & ours or any(_ancestor_in(p, ours) for p in pids):
            local = line.split()[3]
            assert local.startswith("127."), line
            checked += 1
    assert checked >= 1 + len(stack.config().regions)   # redis and every S3 server at least


def _ancestor_in(pid: int, ours: set[int]) -> bool:
    for _ in range(10):
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            return False
        if pid in ours:
            return True
        if pid <= 1:
            return False
    return False
