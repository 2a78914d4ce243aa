"""Rollout waves and the health gate, as plain arithmetic.

Default strategy: one canary host, then 10%, 50% and 100% of a datacenter. Regions activate in
region waves: by default the first region alone, then every other region together. A wave passes
its gate when the fraction of its hosts that became healthy is at least `min_healthy` (default 0.9).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_STEPS = (1, 0.10, 0.50, 1.0)   # an int is a host count, a float a fraction of the DC


@dataclass(frozen=True)
class Strategy:
    steps: tuple = DEFAULT_STEPS
    min_healthy: float = 0.9
    bake_s: float = 30.0

    @classmethod
    def immediate(cls) -> "Strategy":
        """One wave, no bake: for rollbacks."""
        return cls(steps=(1.0,), bake_s=0.0)


def plan_waves(hosts: list[str], steps=DEFAULT_STEPS) -> list[list[str]]:
    """Split a datacenter's hosts (in a stable order) into waves: each step gives the cumulative
    number of hosts updated after it; empty waves are dropped; every host is in exactly one."""
    waves, done = [], 0
    for step in steps:
        target = step if isinstance(step, int) else math.ceil(step * len(hosts))
        target = min(len(hosts), max(target, done))
        if target > done:
            waves.append(hosts[done:target])
            done = target
    if done < len(hosts):
        waves.append(hosts[done:])
    return waves


def region_waves(regions: list[str], given: list[list[str]] | None = None) -> list[list[str]]:
    """The regions grouped into waves that activate one after another: `given` as it is, with
    any region it leaves out in a last wave together; by default the first region alone, then
    the rest together."""
    if given is None:
        return [w for w in (regions[:1], regions[1:]) if w]
    named = {r for wave in given for r in wave}
    rest = [r for r in regions if r not in named]
    return [list(w) for w in given if w] + ([rest] if rest else [])


def earlier_regions(waves: list[list[str]], region: str) -> list[str] | None:
    """The regions of the waves before `region`'s; None if `region` is in none."""
    for i, wave in enumerate(waves):
        if region in wave:
            return [r for w in waves[:i] for r in w]
    return None


def gate_passes(healthy: int, failed: int, total: int, min_healthy: float) -> bool:
    """A wave of `total` hosts passes when healthy / total >= min_healthy."""
    return total == 0 or healthy / total >= min_healthy


def gate_failed_already(failed: int, total: int, min_healthy: float) -> bool:
    """True as soon as so many hosts failed that the gate can no longer pass."""
    return total > 0 and (total - failed) / total < min_healthy
