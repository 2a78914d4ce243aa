"""One real local stack for the integration and security tests: redis-server, rclone S3 servers,
a Ray head plus region and builder nodes, the actors and the Serve API. Started only when a test
asks for it: unit tests never do."""
from __future__ import annotations

import fcntl
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # helpers shared by every kind of test

from gantry.cluster.services import plain_redis  # noqa: E402
from gantry.cluster.stack import Stack, free_port  # noqa: E402
from gantry.auth import issue  # noqa: E402
from helpers import make_repo  # noqa: E402

TEST_ENV = {
    "GANTRY_HEARTBEAT_S": "1",
    "GANTRY_HEARTBEAT_MISSES": "5",   # 5 s: a check-in thread starved by a loaded CI machine is not a lost worker
    "GANTRY_WORKER_START_S": "20",   # a worker process starting on a loaded machine is not lost
    "GANTRY_RETRY_BACKOFF_S": "0.5",
    "GANTRY_BUILD_MEMORY_BYTES": str(256 << 20),
    "GANTRY_BUILD_PIDS": "128",
    "GANTRY_CHUNK_AVG_BYTES": str(256 << 10),   # many chunks from small test artifacts
    "GANTRY_REPLICATION_BACKOFF_S": "0.5",
    "GANTRY_REPLICATION_WINDOW": "2",
    "GANTRY_REPLICATION_BACKOFF_MAX_S": "3",   # eight retries (the store outage test) in 19 s
    "GANTRY_HOST_LOST_S": "10",
    "GANTRY_PEER_BUSY_BUDGET_S": "3",     # a lying peer (tests/chaos/test_lying_host.py) costs 3 s, not 10
    "GANTRY_HOST_IDLE_REPORT_S": "3",      # idle hosts report every 3 s, so a silent one is lost after 10 s
    "GANTRY_MAX_ARTIFACT_BYTES": str(256 << 20),   # the security tests reach these caps
    "GANTRY_MAX_ARTIFACT_FILES": "5000",
    "GANTRY_RATE_USER_PER_S": "100",       # the suite's admin polls a lot; the limit tests set their own
    "GANTRY_RATE_USER_BURST": "1000",
    "GANTRY_PROMETHEUS_SCRAPE_S": "1",     # canary analysis over seconds, not minutes
    "GANTRY_NOTIFY_BACKOFF_MAX_S": "4",    # a subscriber back up hears within seconds
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0",
}


@pytest.fixture(scope="session")
def stack(request):
    """GANTRY_TEST_HOME=<dir> keeps the stack running between runs (for working on tests). After
    a failure its logs and Ray's are kept in test-artifacts/ (CI removes the stack)."""
    os.environ.update(TEST_ENV)
    keep = os.environ.get("GANTRY_TEST_HOME")
    # Not under pytest's tmp dir (0700): the sandbox and hook users must pass through the home.
    parent = None if keep else Path(tempfile.mkdtemp(prefix="gantry-test-"))
    if parent:
        parent.chmod(0o711)
    s = Stack(keep or parent / "home")
    # `make test` runs two workers, a stack each: one starts at a time (two Ray clusters starting
    # at once on two cores timed out a driver waiting for its GCS)
    with open(Path(tempfile.gettempdir()) / "gantry-test-stack-start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        s.up(api_port=free_port(), regions=("us-east", "eu-west"), builders=2, hosts_per_dc=2)
    if os.environ.get("GANTRY_TEST_STACK_UP_FILE"):   # tests/tiers.sh starts the fast tier now
        Path(os.environ["GANTRY_TEST_STACK_UP_FILE"]).touch()
    yield s
    if request.session.testsfailed:
        try:
            keep_logs(s)
        except Exception as e:   # what is kept helps; the stack stops regardless
            print(f"could not keep the stack's logs: {e}")
    if parent:
        s.down()
        shutil.rmtree(parent, ignore_errors=True)


def keep_logs(s: Stack) -> None:
    dest = Path(os.environ.get("GANTRY_TEST_ARTIFACTS", Path(__file__).parents[1] / "test-artifacts"))
    dest = dest / f"stack-logs-{time.strftime('%Y%m%dT%H%M%S')}"
    shutil.copytree(s.logs, dest / "stack", dirs_exist_ok=True, ignore_dangling_symlinks=True)
    ray_logs = Path(s._ray_temp_dir()) / "session_latest" / "logs"
    if ray_logs.exists():
        shutil.copytree(ray_logs, dest / "ray", dirs_exist_ok=True, ignore_dangling_symlinks=True,
                        ignore=shutil.ignore_patterns("*.sock"))
    print(f"\nthe stack's logs are kept in {dest}")


@pytest.fixture(scope="session")
def admin_token(stack):
    return issue(stack.config().jwt_secret(), "admin", admin=True)


def client(stack, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=stack.config().api_url, headers=headers, timeout=30, verify=stack.config().http_verify())


def host_endpoint(stack, token: str, dc: str) -> httpx.Client:
    """A client of the datacenter's coordinator endpoint, found the way a node daemon finds it."""
    with client(stack, token) as c:
        r = c.get(f"/dc/{dc}/endpoint")
        r.raise_for_status()
    return httpx.Client(base_url=r.json()["url"], headers={"Authorization": f"Bearer {token}"}, timeout=30,
                        verify=stack.config().http_verify())


@pytest.fixture(scope="session")
def api(stack, admin_token):
    with client(stack, admin_token) as c:
        yield c


@pytest.fixture
def new_project(api, tmp_path):
    """Register a fresh project for a repository whose build runs `command`; returns
    (project name, commit SHA, repo path)."""
    def make(command: str, **kw):
        name = f"p-{uuid.uuid4().hex[:10]}"
        repo, sha = make_repo(tmp_path / name, command, **kw)
        r = api.put(f"/projects/{name}", json={"repoURL": str(repo)})
        assert r.status_code == 201, r.text
        return name, sha, repo
    return make


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    """A real redis-server of our own, for store tests that need no Ray."""
    proc, url = plain_redis(str(tmp_path_factory.mktemp("redis")))
    yield url
    proc.terminate()
    proc.wait(10)


def spki_hash(cert_file: str) -> str:
    """base64(sha256(the certificate's public key)): how Chromium pins a certificate."""
    import base64
    import hashlib
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    key = x509.load_pem_x509_certificate(Path(cert_file).read_bytes()).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def pytest_collection_modifyitems(items):
    """A test that needs the stack (Ray, rclone, bubblewrap...) is marked `stack`, whatever folder
    it is in: `make fast` runs the others (no Ray; a redis-server at most). Fault and chaos
    tests kill parts of the shared stack; they run after everything else, and the restarts of the
    whole stack and of its Ray head last of all."""
    for item in items:
        if "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.stack)
    restarts = ("test_whole_stack_restart", "test_head_loss")   # last, one to each worker (tests/tiers.sh)
    items.sort(key=lambda item: (any(r in item.nodeid for r in restarts), "test_faults" in item.nodeid,
                                 "/chaos/" in item.nodeid))


@pytest.fixture
def browser(stack):
    """Real headless Chromium (Debian's chromium and chromedriver) driven by Selenium. It trusts
    the API's certificate by its public key: the stack's CA is not in Chromium's store."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, "make test installs Debian's chromium and chromium-driver"
    opts = Options()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        opts.add_argument(arg)
    if stack.config().tls_cert_file:
        opts.add_argument(f"--ignore-certificate-errors-spki-list={spki_hash(stack.config().tls_cert_file)}")
    d = webdriver.Chrome(service=Service(driver), options=opts)
    yield d
    d.quit()
