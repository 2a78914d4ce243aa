"""Retention's decisions, pure: which builds and caches a project keeps, and why."""
from gantry.retention import DAY_MS, BuildFacts, CacheFacts, RetentionIn, decide_builds, decide_caches

NOW = 1_800_000_000_000


def builds(n):
    return [BuildFacts(f"b{i}", NOW - (n - i) * 3_600_000) for i in range(n)]   # b{n-1} the newest


def test_keeps_the_newest_n_and_says_why_each_other_goes():
    v = decide_builds(RetentionIn(keepLast=2), builds(4), {}, {}, NOW)
    assert [b for b in v if v[b].keep] == ["b3", "b2"]
    assert v["b1"].reasons == ["successful build number 3 from the newest (keepLast 2), never deployed, "
                               "not pinned, not in use"]


def test_deployed_recently_pinned_and_in_use_are_kept_whatever_their_rank():
    facts = builds(6)
    facts[0] = BuildFacts("b0", facts[0].createdAt, pinned=True)
    deployed = {"b1": NOW - 29 * DAY_MS, "b2": NOW - 31 * DAY_MS}
    v = decide_builds(RetentionIn(keepLast=1), facts, deployed, {"b3": "host h1 in dc-a runs it"}, NOW)
    assert v["b0"].reasons == ["pinned"]
    assert v["b1"].reasons == ["deployed in the last 30 days"]
    assert not v["b2"].keep and "last deployed 31.0 days ago" in v["b2"].reasons[0]
    assert v["b3"].reasons == ["host h1 in dc-a runs it"]
    assert not v["b4"].keep and v["b5"].keep


def test_policy_bounds_are_checked():
    import pytest
    from pydantic import ValidationError
    for bad in ({"keepLast": 0}, {"keepDeployedDays": -1}, {"cacheMaxBytes": -1}, {"keepForever": True}):
        with pytest.raises(ValidationError):
            RetentionIn.model_validate(bad)
    assert RetentionIn().keepLast == 20 and RetentionIn().keepDeployedDays == 30


def test_caches_go_when_idle_then_least_recently_used_past_the_cap():
    caches = [CacheFacts("main", NOW - DAY_MS, 600), CacheFacts("dev", NOW - 2 * DAY_MS, 500),
              CacheFacts("old", NOW - 20 * DAY_MS, 1), CacheFacts("tiny", NOW - 3 * DAY_MS, 100)]
    v = decide_caches(RetentionIn(cacheUnusedDays=14, cacheMaxBytes=1000), caches, NOW)
    assert v["main"].keep and v["tiny"].keep
    assert not v["dev"].keep and "would pass cacheMaxBytes 1000" in v["dev"].reasons[0]
    assert not v["old"].keep and v["old"].reasons[0].startswith("unused for 20.0 days")
