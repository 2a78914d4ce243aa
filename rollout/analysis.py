"""Canary analysis, pure: a project's metrics, how each measurement is decided, how a wave's
metrics score together, and the limits over a bake's intervals. No Prometheus here: the caller
queries it and hands the values in.

- A **threshold** metric passes unless its value meets the failure condition or misses the
  success condition (Argo Rollouts' AnalysisRun conditions); no value is INCONCLUSIVE.
- A **compare** metric tests per-host samples of the canary hosts against the baseline hosts of
  the same datacenter with a Mann-Whitney U test (scipy), one-sided in the bad direction. It
  fails only when the difference is significant (p < alpha) and the medians differ by at least
  `minEffect` in that direction; too few samples is INCONCLUSIVE, never a silent pass.
- The metrics of one interval score as Kayenta does: the weight of the passing ones over the
  weight of the decided ones, 0 if a critical one failed. At or above `passScore` the interval
  passes, at or above `marginalScore` it is INCONCLUSIVE, below it FAILS.
- Over a bake, more than `failureLimit` failed intervals fail the wave, more than
  `inconclusiveLimit` inconclusive ones make it INCONCLUSIVE (the deployment pauses).

Query templates name `{{build}}`, `{{baseline}}`, `{{dc}}`, `{{region}}`, `{{project}}`,
`{{wave}}`, `{{hosts}}` and `{{baselineHosts}}` (host lists become a regex alternation). Each
must sit inside a double-quoted PromQL string, and its value is escaped for it, so no host or
build name can change the query. `{{interval}}`, the analysis interval as a PromQL duration
("30s", for a range selector), is the one placeholder outside quotes: gantry writes its value.
"""
from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gantry.statuses import AnalysisOutcome as O

PLACEHOLDERS = ("build", "baseline", "dc", "region", "project", "wave", "hosts", "baselineHosts", "interval")
LISTS = ("hosts", "baselineHosts")
UNQUOTED = ("interval",)
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


class Direction(StrEnum):
    INCREASE = "increase"   # an increase is bad (errors, latency)
    DECREASE = "decrease"   # a decrease is bad (throughput, success rate)
    EITHER = "either"


class Condition(BaseModel):
    model_config = ConfigDict(extra="forbid")
    op: Literal["<", "<=", ">", ">="]
    value: float

    def holds(self, x: float) -> bool:
        return {"<": x < self.value, "<=": x <= self.value, ">": x > self.value, ">=": x >= self.value}[self.op]

    def __str__(self) -> str:
        return f"{self.op} {self.value:g}"


class MetricIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    query: str = Field(min_length=1, max_length=4096, description="PromQL; {{placeholders}} inside quotes")
    kind: Literal["threshold", "compare"]
    success: Condition | None = Field(default=None, description="threshold: the value must meet it")
    failure: Condition | None = Field(default=None, description="threshold: the value must not meet it")
    direction: Direction = Direction.INCREASE
    minEffect: float = Field(0.1, ge=0, description="compare: the medians must differ by this fraction")
    alpha: float = Field(0.02, gt=0, lt=1, description="compare: the test's significance level (Kayenta: 98% confidence)")
    minSamples: int = Field(3, ge=2, le=10_000, description="compare: per side, else INCONCLUSIVE")
    critical: bool = Field(False, description="its failure fails the interval whatever the score")
    weight: float = Field(1.0, gt=0)

    @field_validator("query")
    @classmethod
    def _query(cls, v: str) -> str:
        check_template(v)
        return v

    @model_validator(mode="after")
    def _conditions(self):
        if self.kind == "threshold" and self.success is None and self.failure is None:
            raise ValueError(f"threshold metric {self.name!r} needs a success or a failure condition")
        return self


class AnalysisIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metrics: list[MetricIn] = Field(min_length=1, max_length=20)
    intervalS: float = Field(30, ge=1, le=3600)
    count: int | None = Field(None, ge=1, le=1000, description="intervals per bake (default: the bake's length)")
    failureLimit: int = Field(0, ge=0)
    inconclusiveLimit: int = Field(1, ge=0)
    passScore: float = Field(95, ge=0, le=100)
    marginalScore: float = Field(75, ge=0, le=100)

    @model_validator(mode="after")
    def _scores(self):
        if self.marginalScore > self.passScore:
            raise ValueError("marginalScore must not be above passScore")
        if len({m.name for m in self.metrics}) != len(self.metrics):
            raise ValueError("metric names must differ")
        return self


# --- templates --------------------------------------------------------------------------------

def check_template(template: str) -> None:
    """Every placeholder known and inside a double-quoted string (raises ValueError)."""
    for m in _PLACEHOLDER.finditer(template):
        if m[1] not in PLACEHOLDERS:
            raise ValueError(f"unknown placeholder {{{{{m[1]}}}}}; known: {', '.join(PLACEHOLDERS)}")
        if (m[1] in UNQUOTED) == _in_string(template, m.start()):
            if m[1] in UNQUOTED:
                raise ValueError(f"placeholder {m[0]} is a duration: it goes outside quotes, as in rate(x[{m[0]}])")
            raise ValueError(f"placeholder {m[0]} must be inside a double-quoted string, as a label value")


def _in_string(text: str, pos: int) -> bool:
    inside, i = False, 0
    while i < pos:
        c = text[i]
        if inside and c == "\\":
            i += 2
            continue
        if c == '"':
            inside = not inside
        i += 1
    return inside


def _quote(value: str) -> str:
    """A value as the content of a PromQL double-quoted string."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(template: str, values: dict[str, str | list[str]]) -> str:
    """The query with each placeholder's value escaped; a host list becomes ^(a|b)$-style alternation
    (each host's regex metacharacters escaped), an empty one a regex that matches nothing."""
    check_template(template)

    def one(m: re.Match) -> str:
        v = values.get(m[1], "")
        if m[1] in UNQUOTED:
            return f"{int(float(v or 0))}s"
        if m[1] in LISTS:
            v = "|".join(re.escape(h) for h in v) if v else "$^"
        return _quote(str(v))
    return _PLACEHOLDER.sub(one, template)


# --- measurements ------------------------------------------------------------------------------

@dataclass
class Measurement:
    metric: str
    outcome: O
    reason: str
    value: float | None = None               # threshold
    baselineValue: float | None = None       # threshold: the same query over the baseline hosts, for comparison
    canary: list[float] = field(default_factory=list)     # compare: per-host samples
    baseline: list[float] = field(default_factory=list)
    statistic: float | None = None           # Mann-Whitney U
    pValue: float | None = None
    effect: float | None = None              # relative difference of the medians, canary over baseline


def finite(xs) -> list[float]:
    """The samples that are numbers (Prometheus answers NaN for 0/0, +Inf for empty buckets)."""
    out = []
    for x in xs:
        try:
            x = float(x)
        except (TypeError, ValueError):
            continue
        if math.isfinite(x):
            out.append(x)
    return out


def threshold(m: MetricIn, value, baseline=None) -> Measurement:
    """`value` on the canary hosts decides; `baseline`, the same query on the baseline hosts, is
    only shown beside it."""
    clean, base = finite([value]), finite([baseline])
    b = base[0] if base else None
    if not clean:
        return Measurement(m.name, O.INCONCLUSIVE, f"{m.name}: no data (the query returned {value!r})", baselineValue=b)
    x = clean[0]
    shown = f"{m.name} = {x:.6g}" + (f" on the canary (baseline {b:.6g})" if b is not None else "")
    if m.failure is not None and m.failure.holds(x):
        return Measurement(m.name, O.FAIL, f"{shown}, which is {m.failure} (failure condition)", x, b)
    if m.success is not None and not m.success.holds(x):
        return Measurement(m.name, O.FAIL, f"{shown}, which is not {m.success} (success condition)", x, b)
    return Measurement(m.name, O.PASS, shown, x, b)


def compare(m: MetricIn, canary, baseline) -> Measurement:
    from scipy.stats import mannwhitneyu
    c, b = finite(canary), finite(baseline)
    out = Measurement(m.name, O.INCONCLUSIVE, "", canary=c, baseline=b)
    if len(c) < m.minSamples or len(b) < m.minSamples:
        out.reason = f"{m.name}: too few samples (canary {len(c)}, baseline {len(b)}; needs {m.minSamples} each)"
        return out
    mc, mb = statistics.median(c), statistics.median(b)
    out.effect = (mc - mb) / abs(mb) if mb else (0.0 if mc == mb else math.copysign(math.inf, mc - mb))
    if len(set(c) | set(b)) == 1:   # every sample equal: no difference to test
        out.statistic, out.pValue = len(c) * len(b) / 2, 1.0
    else:
        alternative = {Direction.INCREASE: "greater", Direction.DECREASE: "less", Direction.EITHER: "two-sided"}
        res = mannwhitneyu(c, b, alternative=alternative[m.direction], method="auto")
        out.statistic, out.pValue = float(res.statistic), float(res.pvalue)
    worse = {Direction.INCREASE: out.effect >= m.minEffect, Direction.DECREASE: out.effect <= -m.minEffect,
             Direction.EITHER: abs(out.effect) >= m.minEffect}[m.direction]
    both = f"canary median {mc:.6g} vs baseline {mb:.6g} ({_pct(out.effect)}), p={out.pValue:.3g}"
    if worse and out.pValue < m.alpha:
        out.outcome, out.reason = O.FAIL, f"{m.name}: {both} (alpha {m.alpha:g}, minEffect {m.minEffect:g})"
    else:
        out.outcome, out.reason = O.PASS, f"{m.name}: {both}"
    return out


def _pct(effect: float) -> str:
    return f"{effect * 100:+.1f}%" if math.isfinite(effect) else ("+inf" if effect > 0 else "-inf")


# --- scoring and limits ----------------------------------------------------------------------

@dataclass
class Verdict:
    outcome: O
    score: float | None
    reason: str
    measurements: list[Measurement] = field(default_factory=list)


def score(a: AnalysisIn, measured: list[Measurement]) -> Verdict:
    """One interval's metrics together."""
    weights = {m.name: m for m in a.metrics}
    if failed := [x for x in measured if x.outcome == O.FAIL and weights[x.metric].critical]:
        return Verdict(O.FAIL, 0.0, f"critical metric failed: {failed[0].reason}", measured)
    decided = [x for x in measured if x.outcome != O.INCONCLUSIVE]
    if not decided:
        return Verdict(O.INCONCLUSIVE, None, "; ".join(x.reason for x in measured), measured)
    total = sum(weights[x.metric].weight for x in decided)
    s = 100 * sum(weights[x.metric].weight for x in decided if x.outcome == O.PASS) / total
    unsure = [x.reason for x in measured if x.outcome == O.INCONCLUSIVE]
    failing = [x.reason for x in decided if x.outcome == O.FAIL]
    if s >= a.passScore and not unsure:
        return Verdict(O.PASS, s, f"score {s:.0f} (pass {a.passScore:g})", measured)
    if s >= a.marginalScore:
        why = "; ".join(unsure + failing) or "a marginal score"
        return Verdict(O.INCONCLUSIVE, s, f"score {s:.0f} (pass {a.passScore:g}, marginal {a.marginalScore:g}): {why}",
                       measured)
    return Verdict(O.FAIL, s, f"score {s:.0f} below marginal {a.marginalScore:g}: {'; '.join(failing)}", measured)


def intervals(a: AnalysisIn, bake_s: float) -> int:
    """How many intervals a wave's bake holds (at least one)."""
    return a.count or max(1, int(bake_s // a.intervalS))


def conclude(a: AnalysisIn, verdicts: list[Verdict], planned: int) -> Verdict | None:
    """The wave's outcome from its intervals so far, or None while it is undecided."""
    fails = [v for v in verdicts if v.outcome == O.FAIL]
    unsure = [v for v in verdicts if v.outcome == O.INCONCLUSIVE]
    if len(fails) > a.failureLimit:
        return Verdict(O.FAIL, fails[-1].score, f"{len(fails)} failed intervals (failureLimit {a.failureLimit}): "
                                                f"{fails[-1].reason}")
    if len(unsure) > a.inconclusiveLimit:
        return Verdict(O.INCONCLUSIVE, unsure[-1].score, f"analysis inconclusive: {unsure[-1].reason}")
    if len(verdicts) >= planned:
        return Verdict(O.PASS, verdicts[-1].score if verdicts else None, f"{len(verdicts)} intervals passed")
    return None
