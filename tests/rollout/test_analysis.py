"""Canary analysis, pure (rollout/analysis.py): the statistics, the scoring and the limits, and
template escaping that no host or build name can break out of."""
import math
import re

import pytest
from pydantic import ValidationError

from gantry.rollout.analysis import (AnalysisIn, MetricIn, Verdict, check_template, compare, conclude, finite,
                                     intervals, render, score, threshold)
from gantry.statuses import AnalysisOutcome as O

LATENCY = MetricIn(name="p99", kind="compare", query='x{build="{{build}}"}', direction="increase", minEffect=0.1)
ERRORS = MetricIn(name="errors", kind="threshold", query='y{build="{{build}}"}', failure={"op": ">", "value": 0.01})


def test_a_clear_increase_fails_with_both_medians_and_the_p_value():
    m = compare(LATENCY, [0.20, 0.21, 0.22, 0.19, 0.20, 0.23], [0.10, 0.11, 0.10, 0.09, 0.10, 0.12])
    assert m.outcome == O.FAIL and m.pValue < 0.05 and m.effect == pytest.approx(1.05, rel=0.01)
    assert "canary median 0.205 vs baseline 0.1 (+105.0%)" in m.reason and "p=" in m.reason


def test_faster_passes_an_increase_is_bad_metric_and_fails_a_decrease_is_bad_one():
    canary, baseline = [0.05, 0.06, 0.05, 0.04, 0.05], [0.10, 0.11, 0.10, 0.09, 0.10]
    assert compare(LATENCY, canary, baseline).outcome == O.PASS
    throughput = LATENCY.model_copy(update={"direction": "decrease"})
    assert compare(throughput, canary, baseline).outcome == O.FAIL
    either = LATENCY.model_copy(update={"direction": "either"})
    assert compare(either, canary, baseline).outcome == O.FAIL


def test_a_significant_difference_below_the_effect_floor_passes():
    m = compare(LATENCY, [1.05, 1.06, 1.05, 1.07, 1.06, 1.05, 1.06], [1.0, 1.01, 1.0, 1.02, 1.0, 1.01, 1.0])
    assert m.pValue < 0.05 and m.effect < 0.1 and m.outcome == O.PASS


def test_ties_all_equal_and_tiny_samples():
    tied = compare(LATENCY, [2, 2, 2, 3, 3, 3], [1, 1, 1, 2, 2, 2])       # many ties, shifted up
    assert tied.outcome == O.FAIL and 0 < tied.pValue < 0.05
    same = compare(LATENCY, [5, 5, 5, 5], [5, 5, 5, 5])
    assert same.outcome == O.PASS and same.pValue == 1.0 and same.effect == 0
    tiny = compare(LATENCY, [9, 9], [1, 1, 1])
    assert tiny.outcome == O.INCONCLUSIVE and "too few samples (canary 2, baseline 3; needs 3 each)" in tiny.reason
    zero = compare(LATENCY, [1, 1, 2, 1], [0, 0, 0, 0])                   # from nothing to something
    assert zero.outcome == O.FAIL and zero.effect == math.inf


def test_nan_and_infinities_from_prometheus_are_dropped_not_counted():
    assert finite([1, "NaN", float("nan"), float("inf"), None, "2.5", "x"]) == [1.0, 2.5]
    m = compare(LATENCY, [float("nan")] * 6 + [0.2, 0.2], [0.1] * 6)
    assert m.outcome == O.INCONCLUSIVE and m.canary == [0.2, 0.2]
    assert threshold(ERRORS, float("nan")).outcome == O.INCONCLUSIVE
    assert "no data" in threshold(ERRORS, None).reason


def test_thresholds_fail_on_the_failure_condition_or_a_missed_success_condition():
    assert threshold(ERRORS, 0.001).outcome == O.PASS
    bad = threshold(ERRORS, 0.05)
    assert bad.outcome == O.FAIL and bad.reason == "errors = 0.05, which is > 0.01 (failure condition)"
    ok_rate = MetricIn(name="ok", kind="threshold", query="z", success={"op": ">=", "value": 0.99})
    assert threshold(ok_rate, 0.95).outcome == O.FAIL and threshold(ok_rate, 0.999).outcome == O.PASS
    with pytest.raises(ValidationError):
        MetricIn(name="none", kind="threshold", query="z")


def analysis(**kw):
    return AnalysisIn(metrics=[LATENCY, ERRORS, MetricIn(name="cpu", kind="compare", query="c", weight=2,
                                                          critical=kw.pop("critical", False))], **kw)


def m(name, outcome):
    from gantry.rollout.analysis import Measurement
    return Measurement(name, outcome, f"{name} {outcome}")


def test_scores_weigh_the_decided_metrics_and_a_critical_failure_scores_zero():
    a = analysis(passScore=95, marginalScore=50)
    assert score(a, [m("p99", O.PASS), m("errors", O.PASS), m("cpu", O.PASS)]).outcome == O.PASS
    v = score(a, [m("p99", O.FAIL), m("errors", O.PASS), m("cpu", O.PASS)])      # 3 of 4 by weight
    assert (v.outcome, v.score) == (O.INCONCLUSIVE, 75.0) and "p99 FAIL" in v.reason
    v = score(a, [m("p99", O.PASS), m("errors", O.FAIL), m("cpu", O.FAIL)])
    assert (v.outcome, v.score) == (O.FAIL, 25.0)
    crit = analysis(critical=True)
    v = score(crit, [m("p99", O.PASS), m("errors", O.PASS), m("cpu", O.FAIL)])
    assert (v.outcome, v.score) == (O.FAIL, 0.0) and v.reason.startswith("critical metric failed")
    assert score(a, [m("p99", O.INCONCLUSIVE)] * 1).outcome == O.INCONCLUSIVE
    v = score(a, [m("p99", O.PASS), m("errors", O.INCONCLUSIVE), m("cpu", O.PASS)])
    assert v.outcome == O.INCONCLUSIVE and "errors INCONCLUSIVE" in v.reason   # never a silent pass


def test_limits_over_a_bakes_intervals():
    a = analysis(failureLimit=1, inconclusiveLimit=0, intervalS=10)
    assert intervals(a, 35) == 3 and intervals(a, 0) == 1 and intervals(analysis(count=7), 35) == 7
    ok, bad, unsure = Verdict(O.PASS, 100, "ok"), Verdict(O.FAIL, 0, "bad"), Verdict(O.INCONCLUSIVE, None, "?")
    assert conclude(a, [ok, bad], 3) is None                    # one failure is within the limit
    assert conclude(a, [ok, bad, bad], 3).outcome == O.FAIL
    assert conclude(a, [unsure], 3).reason == "analysis inconclusive: ?"
    assert conclude(a, [ok, bad, ok], 3).outcome == O.PASS


HOSTILE = ['a"} or vector(1) #', "b\\", "c}}{{build}}", 'd\n"', "e.*|f"]


def unquoted(query: str) -> str:
    """The query outside its string literals: what a value could have changed."""
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', query)


def test_hostile_names_stay_inside_their_strings():
    template = 'sum(rate(http_requests_total{gantry_build="{{build}}", gantry_host=~"{{hosts}}"}[1m]))'
    q = render(template, {"build": 'x"} or on() vector(1) #\\', "hosts": HOSTILE})
    assert unquoted(q) == unquoted(template)
    hosts = re.search(r'gantry_host=~"((?:[^"\\]|\\.)*)"', q)[1]
    regex = hosts.encode().decode("unicode_escape")              # PromQL unescapes the string first
    assert [h for h in HOSTILE if re.fullmatch(regex, h)] == HOSTILE and not re.fullmatch(regex, "ef")
    assert render('x{h=~"{{hosts}}"}', {"hosts": []}) == 'x{h=~"$^"}'   # no host: matches nothing


def test_templates_are_checked_when_a_project_sets_them():
    for bad, why in (('x{b={{build}}}', "inside a double-quoted string"), ('x{b="{{nope}}"}', "unknown placeholder"),
                     ('x{b="\\"{{build}}"} + {{dc}}', "inside a double-quoted string")):
        with pytest.raises(ValueError, match=why):
            check_template(bad)
        with pytest.raises(ValidationError):
            MetricIn(name="q", kind="compare", query=bad)
    check_template('x{b="a\\"{{build}}"}')    # an escaped quote does not end the string


def test_the_interval_is_the_one_placeholder_outside_quotes_and_gantry_writes_it():
    q = render('rate(x{h=~"{{hosts}}"}[{{interval}}])', {"hosts": ["a"], "interval": 30.0})
    assert q == 'rate(x{h=~"a"}[30s])'
    with pytest.raises(ValueError, match="goes outside quotes"):
        check_template('x{b="{{interval}}"}')


def test_a_threshold_shows_the_baseline_beside_the_canary_and_decides_on_the_canary():
    bad = threshold(ERRORS, 0.05, baseline=0.001)
    assert bad.outcome == O.FAIL and bad.baselineValue == 0.001
    assert bad.reason == "errors = 0.05 on the canary (baseline 0.001), which is > 0.01 (failure condition)"
    assert threshold(ERRORS, 0.001, baseline=0.5).outcome == O.PASS
    assert threshold(ERRORS, None, baseline=0.001).outcome == O.INCONCLUSIVE
