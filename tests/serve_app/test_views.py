from gantry.serve_app.views import build_summary, host_counts, public_record


def test_host_counts_count_a_host_only_for_the_build_it_is_on():
    hosts = [{"state": "lost"}, {"state": "failed", "targetBuildID": "b"}, {"state": "failed", "targetBuildID": "x"},
             {"state": "active", "activeBuildID": "b"}, {"state": "active", "activeBuildID": "x", "targetBuildID": "b"},
             {"state": "downloading", "targetBuildID": "b"}, {"state": "idle"}, {},
             # staged: its report is about b (it runs x); one staging b while told x; one staged on another build
             {"state": "staged", "activeBuildID": "x", "targetBuildID": "x", "ackedTargetBuildID": "b"},
             {"state": "downloading", "activeBuildID": "x", "targetBuildID": "x", "ackedTargetBuildID": "b"},
             {"state": "staged", "activeBuildID": "x", "ackedTargetBuildID": "y"},
             {"state": "staged", "activeBuildID": "b", "ackedTargetBuildID": "y"}]   # runs b, staged y
    assert host_counts(hosts, "b") == {"total": 12, "pending": 5, "downloading": 2, "staged": 1, "active": 2,
                                       "failed": 1, "lost": 1}


def test_records_show_times_as_rfc3339_and_absent_values_as_null():
    rec = public_record({"buildID": "b" * 32, "projectName": "web", "commitSHA": "c" * 40, "buildStatus": "QUEUED",
                         "createdAt": "1764170000123", "retries": "0", "error": ""})
    assert rec["createdAt"] == "2025-11-26T15:13:20.123Z" and rec["startedAt"] is None
    assert rec["error"] is None and rec["artifact"] is None and rec["replication"] == []
    assert build_summary({"buildID": "b", "createdAt": 0})["createdAt"] == "1970-01-01T00:00:00.000Z"
