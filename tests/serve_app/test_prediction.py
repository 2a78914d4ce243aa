"""Predictions are bounded: a large fleet is simulated as a sample of it, scaled, and says so;
the Predictor runs after the deployment exists, off the request path."""
import json
import random
import threading
import time

import redis

from gantry.serve_app.prediction import Predictor, predict, sample
from gantry.settings import Settings
from gantry.state import State, keys
from gantry.topology import Region, StackConfig

STRATEGY = {"steps": [1, 0.1, 0.5, 1.0], "minHealthy": 0.9, "bakeS": 30, "stage": "all", "regionWaves": [["us"], ["eu"]]}


def test_a_sample_keeps_every_datacenter_in_proportion():
    fleet = [{"hostID": f"{dc}-{i}", "dc": dc} for dc, n in (("a", 900), ("b", 90), ("c", 10)) for i in range(n)]
    got = sample(fleet, 100, random.Random(0))
    counts = {dc: sum(h["dc"] == dc for h in got) for dc in "abc"}
    assert counts == {"a": 90, "b": 9, "c": 1}
    assert sample(fleet[:50], 100, random.Random(0)) == fleet[:50]


def fleet_of(redis_url, n):
    redis.Redis.from_url(redis_url).flushdb()
    state = State(redis_url)
    stack = StackConfig(home="/nonexistent", redis_url=redis_url, s3_access_key="", s3_secret_key="",
                        jwt_secret_file="", regions=[Region("us", "", "", ("us-a", "us-b")), Region("eu", "", "", ("eu-a",))])
    dcs = ["us-a", "us-b", "eu-a"]
    with state.r.pipeline(transaction=False) as p:   # the host records, as reports write them
        for i in range(n):
            dc = dcs[i % 3]
            p.sadd(keys.hosts(dc), f"h{i}")
            p.hset(keys.host(dc, f"h{i}"), mapping={"hostID": f"h{i}", "dc": dc, "serves": "*", "updatedAt": 1})
        p.execute()
    assert len(state.hosts.for_project("us-a", "web")) == (n + 2) // 3
    return state, stack


def test_ten_thousand_hosts_are_predicted_from_a_sample_and_the_answer_says_so(redis_url, monkeypatch):
    # what is asked is the sample, not the speed: `make test` runs this tier at the lowest CPU priority
    monkeypatch.setenv("GANTRY_PREDICTION_WALL_S", "300")
    state, stack = fleet_of(redis_url, 10_000)
    build = {"buildID": "b1", "artifactSize": 1 << 30}
    out = predict(state, stack, "web", build, STRATEGY)
    sampled = out["assumptions"]["sampled"]
    assert out["assumptions"]["hosts"] == 10_000
    assert sampled["of"] == 10_000 and 0 < sampled["hosts"] <= Settings().prediction_max_hosts + 3
    assert out["status"] == "COMPLETED" and out["predictedSeconds"] > 30   # at least the bakes
    small_state, small_stack = fleet_of(redis_url, 150)
    assert predict(small_state, small_stack, "web", build, STRATEGY)["assumptions"]["sampled"] is None


def test_hosts_activate_as_long_as_the_projects_last_activations_took(redis_url):
    """A fixed 1 s activation per host made a small deployment's prediction twice what it took."""
    state, stack = fleet_of(redis_url, 6)
    build = {"buildID": "b1", "artifactSize": 1 << 20}
    state.r.hset(keys.build("b1"), mapping={"buildID": "b1", "buildStatus": "SUCCEEDED"})
    assert predict(state, stack, "web", build, STRATEGY)["assumptions"]["activateSeconds"] == 0.1   # no hooks: a switch
    state.r.hset(keys.build("b1"), "deployHealth", "curl -f localhost:8080/health")
    assert predict(state, stack, "web", build, STRATEGY)["assumptions"]["activateSeconds"] == 1.0   # none on record
    took = {"h0": ("web", 4.0), "h1": ("web", 6.0), "h2": ("web", 5.0), "h3": ("shop", 60.0), "h4": ("web", "soon")}
    for h, (project, seconds) in took.items():
        state.r.hset(keys.host(f"{['us-a', 'us-b', 'eu-a'][int(h[1:]) % 3]}", h), "lastActivation",
                     json.dumps({"project": project, "buildID": "b0", "seconds": seconds}))
    out = predict(state, stack, "web", build, STRATEGY)
    assert out["assumptions"]["activateSeconds"] == 5.0 and out["assumptions"]["hostsWithMeasuredActivation"] == 3
    assert out["predictedSeconds"] > 2 * 5.0   # two waves at least, each waits for its hosts to activate


def test_the_predictor_works_after_the_request_and_stores_what_it_found(redis_url):
    state, stack = fleet_of(redis_url, 30)
    fields = state.deployments.create("web", "b1", None, STRATEGY, ["us", "eu"], "u")
    finished = threading.Event()
    started = time.monotonic()
    Predictor(stack).later(fields["deploymentID"], "web", {"buildID": "b1", "artifactSize": 1 << 20},
                           STRATEGY, done=finished.set)
    assert time.monotonic() - started < 0.5 or finished.is_set()   # later() only queues it
    assert finished.wait(60)
    assert state.deployments.get(fields["deploymentID"])["prediction"]


def test_a_predictor_whose_process_died_starts_another(redis_url):
    import os
    import signal
    state, stack = fleet_of(redis_url, 9)
    predictor = Predictor(stack)
    ids = [state.deployments.create("web", "b1", None, STRATEGY, ["us", "eu"], "u")["deploymentID"] for _ in range(2)]
    first = threading.Event()
    predictor.later(ids[0], "web", {"buildID": "b1", "artifactSize": 1 << 20}, STRATEGY, done=first.set)
    assert first.wait(60) and state.deployments.get(ids[0])["prediction"]
    for pid in list(predictor._pool._processes):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while not state.deployments.get(ids[1]).get("prediction"):
        again = threading.Event()
        predictor.later(ids[1], "web", {"buildID": "b1", "artifactSize": 1 << 20}, STRATEGY, done=again.set)
        assert again.wait(60) and time.monotonic() < deadline


def test_a_canary_analysis_longer_than_the_bake_lengthens_the_prediction(redis_url):
    state, stack = fleet_of(redis_url, 6)
    build = {"buildID": "b1", "artifactSize": 1 << 20}
    analysis = {"intervalS": 60, "count": 2, "metrics": [{"name": "e", "kind": "threshold", "query": 'x{h=~"{{hosts}}"}',
                                                          "failure": {"op": ">", "value": 1}}]}
    plain, analysed = predict(state, stack, "web", build, STRATEGY), predict(state, stack, "web", build, STRATEGY, analysis)
    per_wave = analysed["assumptions"]["analysisSecondsPerWave"]
    assert per_wave >= 120 and plain["assumptions"]["analysisSecondsPerWave"] == 0
    # two hosts a datacenter make 2 waves (1 host, then the other) in each of 2 region waves: each
    # waits 120 s or more rather than its 30 s bake
    assert analysed["predictedSeconds"] - plain["predictedSeconds"] >= 4 * (120 - 30)
