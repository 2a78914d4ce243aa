"""Issue 26's deploy queue on the real stack: one deployment of a project at a time. A second
waits its turn and then runs; `reject` refuses one while another is under way; a rollback goes
first, ahead of the queue."""
from helpers import wait_build, wait_until

SLOW = {"steps": [1, 1.0], "minHealthy": 0.9, "bakeS": 4}


def status(api, project, dep_id):
    return api.get(f"/projects/{project}/deployments/{dep_id}").json()


def test_a_second_deployment_waits_its_turn_reject_refuses_and_a_rollback_goes_first(api, new_project):
    project, sha, repo = new_project("mkdir -p dist && echo $N > dist/n")
    builds = [api.post(f"/projects/{project}/builds", json={"commitSHA": sha, "buildDetails": {"env": {"N": str(i)}}}
                       ).json()["buildID"] for i in range(3)]
    for b in builds:
        assert wait_build(api, project, b)["buildStatus"] == "SUCCEEDED"
    first = api.post(f"/projects/{project}/deployments", json={"buildID": builds[0], "strategy": SLOW}).json()
    second = api.post(f"/projects/{project}/deployments", json={"buildID": builds[1], "strategy": SLOW}).json()
    assert first["status"] == "IN_PROGRESS" and (second["status"], second["queuePosition"]) == ("QUEUED", 1)
    queued = status(api, project, second["deploymentID"])
    assert queued["queue"]["position"] == 1 and queued["queue"]["underWay"] == first["deploymentID"]
    wait_until(lambda: status(api, project, second["deploymentID"])["status"] == "COMPLETED", 120,
               "the second deployment to run after the first")
    done = [status(api, project, d["deploymentID"]) for d in (first, second)]
    assert done[0]["status"] == "COMPLETED" and done[1]["previousBuildID"] == builds[0]
    assert done[0]["updatedAt"] <= done[1]["updatedAt"]

    assert api.put(f"/projects/{project}", json={"repoURL": str(repo), "deploy": {"concurrency": "reject"}}).status_code == 200
    third = api.post(f"/projects/{project}/deployments", json={"buildID": builds[2], "strategy": SLOW}).json()
    refused = api.post(f"/projects/{project}/deployments", json={"buildID": builds[0], "strategy": SLOW})
    assert refused.status_code == 409 and third["deploymentID"] in refused.json()["detail"], refused.text
    back = api.post(f"/projects/{project}/rollback", json={"buildID": builds[1]})   # never refused, never queued
    assert back.status_code == 202 and back.json()["status"] == "IN_PROGRESS", back.text
    assert status(api, project, third["deploymentID"])["status"] == "SUPERSEDED"
    wait_until(lambda: status(api, project, back.json()["deploymentID"])["status"] == "COMPLETED", 120, "the rollback")
