"""Stage, then activate, and region waves, as plain decisions: the coordinator applies them to
what Redis holds; the fleet simulator (`gantry.sim`) to its simulated fleet.

Hosts are `records.HostView`s.
"""
from __future__ import annotations

from typing import Callable

from gantry.records import HostView
from gantry.rollout.waves import earlier_regions
from gantry.statuses import DcPhase, HostState


def staging(build: str, views) -> tuple[list[str], list[HostView], bool]:
    """Where `build` is to be staged in a datacenter (its region holds the replica): (hosts to
    tell to stage it, live hosts that run it already, whether every live host has staged it or
    failed to)."""
    tell, running, done = [], [], True
    for h in views:
        if h.state == HostState.LOST:
            continue
        if h.active_build == build:
            running.append(h)
            continue
        if build not in (h.stage_build, h.target_build):
            tell.append(h.host_id)
        if not (h.acked_target == build and h.state in (HostState.STAGED, HostState.FAILED)):
            done = False
    return tell, running, done


def stragglers(build: str, views) -> list[HostView]:
    """Live hosts that have neither staged `build`, nor failed to, nor run it."""
    return [h for h in views if h.state != HostState.LOST and h.active_build != build
            and not (h.acked_target == build and h.state in (HostState.STAGED, HostState.FAILED))]


def to_unstage(keep: str, views) -> list[str]:
    """Live hosts told to stage a build other than `keep` (a host shows `staged` only for a
    build still coming)."""
    return [h.host_id for h in views if h.stage_build not in (None, "", keep) and h.state != HostState.LOST]


def may_activate(region: str, region_waves: list[list[str]], dcs_by_region: dict[str, list[str]],
                 holds: Callable[[str], bool], stage_all: bool, staged_dcs: set[str] | Callable[[], set[str]],
                 outcomes: dict[str, str] | Callable[[], dict[str, str]]) -> bool:
    """Whether a datacenter of `region` may start activating: with stage "all", once every
    datacenter of the regions that hold the replica has staged; and once every datacenter of
    the earlier region waves (that hold it: one still waiting for its replica holds up no one)
    is DONE. `staged_dcs` and `outcomes` may be given as functions, read only when needed."""
    earlier = earlier_regions(region_waves, region)
    if earlier is None:
        return False
    if stage_all:
        staged = staged_dcs() if callable(staged_dcs) else staged_dcs
        if not all(dc in staged for r, dcs in dcs_by_region.items() if holds(r) for dc in dcs):
            return False
    done = outcomes() if callable(outcomes) else outcomes
    return all(done.get(dc) == DcPhase.DONE for r in earlier if holds(r) for dc in dcs_by_region.get(r, []))
