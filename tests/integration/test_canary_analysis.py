"""Issue 25: canary analysis on the real stack. A sample app (tests/apps/canary_app.py) runs on
every host and exports its requests and latency with prometheus-client; the stack's real
Prometheus scrapes it through the targets gantry writes; each wave's bake waits for the analysis.
One project, deployed build after build: a good build passes every wave, a bad one (5% errors)
and a slow one (p99 twice the baseline) are rolled back at the canary wave by the analysis, and
a metric without data pauses the deployment for a person to resume or abort."""
import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from gantry.auth import issue
from helpers import wait_build, wait_until

GANTRY = str(Path(sys.executable).parent / "gantry")
PORT = random.randint(20000, 29999)   # on every host's own address
PY = "python3"                        # the host's; prometheus-client comes with the build (vendor/)
APP = (Path(__file__).parent.parent / "apps" / "canary_app.py").read_text()
HEALTH = f"""import os, time, urllib.request
for _ in range(100):
    try:
        urllib.request.urlopen("http://" + os.environ["GANTRY_HOST_IP"] + ":{PORT}/healthz", timeout=2)
        break
    except OSError:
        time.sleep(0.1)
else:
    raise SystemExit("the app does not answer")
"""
TOML = f'''[build]
command = "mkdir -p dist && cp -r app.py health.py vendor dist/ && echo {PORT} $FAIL_EVERY $LATENCY_MS $STOP_FILE > dist/app.conf"
output = "dist"
[deploy]
start = "exec {PY} app.py"
health = "{PY} health.py"
'''
HOSTS = 'gantry_project="{{project}}",gantry_host=~"{{hosts}}"'
ERRORS = {"name": "error-rate", "kind": "threshold", "critical": True, "failure": {"op": ">", "value": 0.02},
          "query": f'sum(rate(app_requests_total{{code="500",{HOSTS}}}[{{{{interval}}}}])) / '
                   f'sum(rate(app_requests_total{{{HOSTS}}}[{{{{interval}}}}]))'}
LATENCY = {"name": "p99-latency", "kind": "compare", "direction": "increase", "minEffect": 0.2, "minSamples": 4,
           # irate: each sample is the last scrape's second alone, so neighbouring samples share no requests
           "query": f'histogram_quantile(0.99, sum by (le, gantry_host) (irate(app_request_seconds_bucket{{{HOSTS}}}[3s])))'}
ANALYSIS = {"intervalS": 4, "count": 2, "failureLimit": 0, "inconclusiveLimit": 0, "metrics": [ERRORS, LATENCY]}
NO_DATA = {"intervalS": 2, "count": 1, "inconclusiveLimit": 0, "metrics": [
    {"name": "ghost", "kind": "threshold", "failure": {"op": ">", "value": 1},
     "query": f'sum(rate(no_such_metric_total{{{HOSTS}}}[{{{{interval}}}}]))'}]}
BUILDS = {"v1": ("1000", "20"), "good": ("1000", "10"), "bad": ("20", "20"), "slow": ("1000", "40"),
          "quiet": ("1000", "20"), "quiet2": ("1000", "20")}


@pytest.fixture(scope="module")
def sample(api, stack, tmp_path_factory):
    """The project, and one build per behaviour (fail one request in N, latency in ms)."""
    import prometheus_client
    from helpers import commit, make_repo
    name = f"canary-{random.randint(0, 1 << 30):x}"
    repo, _ = make_repo(tmp_path_factory.mktemp("canary") / name, "true",
                        files={"gantry.toml": TOML, "app.py": APP, "health.py": HEALTH})
    shutil.copytree(Path(prometheus_client.__file__).parent, repo / "vendor" / "prometheus_client",
                    ignore=shutil.ignore_patterns("__pycache__"))   # the app ships its dependency, as a service would
    sha = commit(repo, {})
    r = api.put(f"/projects/{name}", json={"repoURL": str(repo), "deploy": {"metricsPort": PORT}, "analysis": ANALYSIS})
    assert r.status_code == 201, r.text
    assert r.json()["analysis"]["metrics"][0]["name"] == "error-rate" and r.json()["deploy"]["metricsPort"] == PORT
    stop = Path(tempfile.mkdtemp(prefix="gantry-canary-")) / "stop"   # the apps' uid can look; the suite says when
    stop.parent.chmod(0o755)
    builds = {k: api.post(f"/projects/{name}/builds", json={"commitSHA": sha, "buildDetails": {"env": {
        "FAIL_EVERY": every, "LATENCY_MS": ms, "STOP_FILE": str(stop)}}}).json()["buildID"] for k, (every, ms) in BUILDS.items()}
    for b in builds.values():
        assert wait_build(api, name, b, timeout_s=300)["buildStatus"] == "SUCCEEDED"
    regions = [r.name for r in stack.config().regions]
    yield name, builds, {"steps": [1, 1.0], "minHealthy": 1.0, "bakeS": 1, "regionWaves": [regions]}
    stop.touch()   # the apps send themselves requests: not for the rest of the suite


def deploy(api, project, build, strategy, **kw):
    r = api.post(f"/projects/{project}/deployments", json={"buildID": build, "strategy": strategy, **kw})
    assert r.status_code == 202, r.text
    return r.json()["deploymentID"]


def wait_status(api, project, dep, want, timeout_s=240):
    url = f"/projects/{project}/deployments/{dep}"
    wait_until(lambda: api.get(url).json()["status"] in want, timeout_s, f"deployment {dep} to be {want}")
    return api.get(url).json()


def hosts_run(api, project, build):
    return all(h["activeBuildID"] == build for h in api.get(f"/projects/{project}/hosts").json() if h["state"] != "lost")


def dashboard_draws_the_analysis(stack, browser, project, build):
    """In real headless Chromium: the build's rollout shows each metric's chart, canary against
    baseline, with a link to the query in the stack's Prometheus."""
    from selenium.webdriver.support.ui import WebDriverWait
    token = issue(stack.config().jwt_secret(), "dana", [project])
    browser.get(f"{stack.config().api_url}/ui#token={token}")
    browser.get(f"{stack.config().api_url}/ui#/p/{project}/b/{build}")
    seen = """const c = document.querySelector("[data-testid=analysis-chart-p99-latency]");
      if (!c) return null;
      const pts = (id) => (c.querySelector(`polyline[data-testid=${id}]`) || {getAttribute: () => ""}).getAttribute("points") || "";
      const link = document.querySelector("[data-testid=prometheus-link]");
      return {canary: pts("canary"), baseline: pts("baseline"), dots: c.querySelectorAll("circle").length,
              errors: !!document.querySelector("[data-testid=analysis-chart-error-rate]"), link: link && link.href,
              error: document.querySelector("[data-testid=error]").textContent};"""   # at once: the page re-renders

    def drawn(driver):
        page = driver.execute_script(seen)
        return page if page and page["canary"].count(",") >= 2 and page["baseline"].count(",") >= 1 else None
    page = WebDriverWait(browser, 60, poll_frequency=0.5).until(drawn)
    assert page["dots"] and page["errors"] and page["error"] == "", page   # the samples, as dots
    assert page["link"].startswith(stack.config().prometheus_url + "/graph?"), page


def test_good_passes_every_wave_bad_and_slow_roll_back_at_the_canary(api, stack, browser, sample):
    project, builds, strategy = sample
    first = deploy(api, project, builds["v1"], strategy, analysis="off")
    assert wait_status(api, project, first, {"COMPLETED", "ROLLED_BACK"})["status"] == "COMPLETED"

    good = deploy(api, project, builds["good"], strategy)
    done = wait_status(api, project, good, {"COMPLETED", "ROLLED_BACK", "PAUSED"})
    assert done["status"] == "COMPLETED", done["reason"]
    report = api.get(f"/projects/{project}/deployments/{good}/analysis").json()
    waves = report["waves"]
    dcs = {w["dc"] for w in waves}
    assert len(dcs) >= 2 and all(w["outcome"] == "PASS" for w in waves), waves
    canary = next(w for w in waves if w["wave"] == 1)
    assert canary["canaryHosts"] and canary["baselineHosts"] and len(canary["intervals"]) == 2
    latency = next(m for m in canary["intervals"][0]["measurements"] if m["metric"] == "p99-latency")
    assert latency["outcome"] == "PASS" and len(latency["canary"]) >= 4 and len(latency["baseline"]) >= 4
    assert latency["pValue"] is not None and latency["effect"] < 0   # faster: better, not worse
    quoted = re.escape(canary["canaryHosts"][0]).replace("\\", "\\\\")   # a regex, in a PromQL string
    assert f'gantry_host=~"{quoted}"' in latency["query"], latency["query"]
    errors = next(m for m in canary["intervals"][0]["measurements"] if m["metric"] == "error-rate")
    assert errors["value"] < 0.02 and errors["baselineValue"] is not None and errors["link"].startswith("http")
    last = next(w for w in waves if w["wave"] == 2)
    assert not last["baselineHosts"] and any(m["outcome"] == "SKIPPED" for m in last["intervals"][0]["measurements"])

    path = stack.home / "prometheus" / "targets" / f"apps-{project}.json"
    canaries = {h for w in waves for h in w["canaryHosts"]}

    def settled():   # the analyst rewrites the targets every 2 s
        targets = json.loads(path.read_text())
        labels = {t["labels"]["gantry_host"]: t["labels"] for t in targets}
        return targets if set(labels) == canaries and all(
            lb["gantry_build"] == builds["good"] and lb["gantry_project"] == project and lb["gantry_dc"] in dcs
            and lb["gantry_region"] and lb["gantry_wave"] == "none" for lb in labels.values()) else None   # none under way
    wait_until(settled, 30, "the targets to label every host with the good build")
    targets = settled()
    assert all(t["targets"][0].endswith(f":{PORT}") for t in targets)
    shown = subprocess.run([GANTRY, "deploy", "watch", project, good, "--home", str(stack.home)],
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "canary analysis" in shown.stdout and "p99-latency" in shown.stdout, shown
    dashboard_draws_the_analysis(stack, browser, project, builds["good"])

    bad = deploy(api, project, builds["bad"], strategy)
    out = wait_status(api, project, bad, {"COMPLETED", "ROLLED_BACK", "PAUSED"})
    assert out["status"] == "ROLLED_BACK" and "wave 1: canary analysis failed" in out["reason"], out["reason"]
    assert "error-rate = 0.0" in out["reason"] and "baseline 0" in out["reason"] and "> 0.02" in out["reason"]
    wait_until(lambda: hosts_run(api, project, builds["good"]), 120, "every host back on the good build")

    slow = deploy(api, project, builds["slow"], strategy)
    out = wait_status(api, project, slow, {"COMPLETED", "ROLLED_BACK", "PAUSED"})
    assert out["status"] == "ROLLED_BACK" and "p99-latency: canary median" in out["reason"], out["reason"]
    assert "p=" in out["reason"] and "vs baseline" in out["reason"]
    wait_until(lambda: hosts_run(api, project, builds["good"]), 120, "every host back on the good build")


def test_no_data_pauses_resume_goes_on_abort_rolls_back(api, sample):
    project, builds, strategy = sample
    dep = deploy(api, project, builds["quiet"], strategy, analysis=NO_DATA)
    out = wait_status(api, project, dep, {"PAUSED", "COMPLETED", "ROLLED_BACK"})
    assert out["status"] == "PAUSED" and out["reason"].startswith("analysis inconclusive: ghost: no data"), out["reason"]
    for _ in range(6):   # each datacenter's waves: a person resumes each one
        r = api.post(f"/projects/{project}/deployments/{dep}", params={"op": "RESUME"})
        assert r.status_code == 200, r.text
        out = wait_status(api, project, dep, {"PAUSED", "COMPLETED", "ROLLED_BACK"})
        if out["status"] != "PAUSED":
            break
    assert out["status"] == "COMPLETED", out
    waived = [w for w in api.get(f"/projects/{project}/deployments/{dep}/analysis").json()["waves"]]
    assert waived and all(w["outcome"] == "PASS" and w["reason"].startswith("resumed by") for w in waived), waived

    dep = deploy(api, project, builds["quiet2"], strategy, analysis=NO_DATA)
    assert wait_status(api, project, dep, {"PAUSED", "COMPLETED", "ROLLED_BACK"})["status"] == "PAUSED"
    r = api.post(f"/projects/{project}/deployments/{dep}", params={"op": "ABORT"})
    assert r.status_code == 200 and r.json()["status"] == "ROLLED_BACK", r.text
    assert "aborted by" in r.json()["reason"] and "inconclusive" in r.json()["reason"]
    wait_until(lambda: hosts_run(api, project, builds["quiet"]), 120, "every host back on the previous build")


def test_an_aa_check_of_a_fleet_on_one_build_reports_few_false_failures(api, stack, sample):
    """Calibration: the project's analysis with the default statistics, judged A/A over the
    intervals since the last deployment ended (the fleet runs one build)."""
    project, _, _ = sample
    # The app fails one request in 1000, about one a host every 40 s: an interval of 3 s that holds it has one
    # error in 30 to 80 requests (fewer on a loaded machine), 1-3%, so a 2% limit fails an unchanged build
    # about one interval in 15 (a CI run saw 1 of 20). A limit is the user's choice, and `analysis check` is
    # how they learn it is too tight; here the limit is 5% (the bad build's rate), and the check is on the
    # default statistics of the comparison.
    errors = {**ERRORS, "failure": {"op": ">", "value": 0.05}}
    defaults = {**ANALYSIS, "intervalS": 3, "metrics": [errors, {k: LATENCY[k] for k in ("name", "kind", "query")}]}
    assert api.put(f"/projects/{project}", json={"repoURL": api.get(f"/projects/{project}").json()["repoURL"],
                                                 "analysis": defaults}).status_code == 200
    # 40 splits in 2 datacenters: with 20, one false failure was already the 5% bound (two CI runs saw
    # 1 of 20 on p99 latency), too coarse to test a rate under 5%; with 40 it is one failure at most
    runs = 20
    check = lambda: api.post(f"/projects/{project}/analysis/check", params={"runs": runs}).json()  # noqa: E731
    wait_until(lambda: check()["runs"] >= 2 * runs, 120, f"{runs} intervals of history in each datacenter")
    out = subprocess.run([GANTRY, "analysis", "check", project, "--runs", str(runs), "--home", str(stack.home)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out
    rate = float(re.search(r"false-failure rate ([\d.]+)%", out.stdout)[1])
    assert rate < 5, out.stdout
    report = check()
    assert report["runs"] >= 2 * runs and all(len(r["canaryHosts"]) == 1 for r in report["results"])
    assert any(m["metric"] == "p99-latency" and m["pValue"] is not None
               for r in report["results"] for m in r["measurements"]), report["results"][0]
