"""Approval gates, pure: where a deployment waits for people, and whether they have said go.

A strategy may hold gates (`approve`), each before a wave of every datacenter ("wave:2": after
the canary wave has baked) or before a region wave ("regionWave:2": before the second group of
regions activates). A datacenter that reaches a gate holds there; the deployment shows
WAITING_APPROVAL with the gate, and goes on once `count` different people with the gate's role
have approved it (with `notRequester`, not the one who asked for the deployment). An approval
covers the gate in every datacenter; approvals are never taken back.
"""
from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

GATE_PATTERN = r"^(wave|regionWave):[1-9][0-9]{0,2}$"


class ApprovalGate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    before: str = Field(pattern=GATE_PATTERN, description='"wave:N" (each datacenter\'s Nth wave) or "regionWave:N"')
    role: Literal["deployer", "admin"] = Field(default="deployer", description="who may approve: a token with this "
                                                                              "role (admins have every role)")
    count: int = Field(default=1, ge=1, le=5, description="how many different people must approve")
    notRequester: bool = Field(default=False, description="the one who asked for the deployment may not approve it")


def awaited(dep: dict) -> tuple[str, dict | None]:
    """The gate a deployment record (as Redis holds it) waits at: its name, and the gate if the
    deployment's strategy has it."""
    name = dep.get("awaiting") or ""
    return name, gates(json.loads(dep.get("strategy") or "{}")).get(name)


def gates(strategy: dict) -> dict[str, dict]:
    """The strategy's gates, by where they stand ("wave:2" -> the gate)."""
    return {g["before"]: g for g in strategy.get("approve") or []}


def wave_gates(strategy: dict) -> tuple[int, ...]:
    """The waves (0-based) that wait for an approval before they start."""
    return tuple(sorted(int(b.split(":")[1]) - 1 for b in gates(strategy) if b.startswith("wave:")))


def region_gate(strategy: dict, region_waves: list[list[str]], region: str) -> str | None:
    """The gate before `region`'s region wave, if the strategy has one."""
    for i, wave in enumerate(region_waves):
        if region in wave:
            gate = f"regionWave:{i + 1}"
            return gate if gate in gates(strategy) else None
    return None


def approvers(approvals: list[dict]) -> list[str]:
    """The different people who approved, first first."""
    return list(dict.fromkeys(a["user"] for a in approvals))


def satisfied(gate: dict, approvals: list[dict]) -> bool:
    return len(approvers(approvals)) >= gate["count"]


def approved(strategy: dict, given: dict[str, list[dict]]) -> set[str]:
    """The strategy's gates that enough people have approved."""
    return {b for b, g in gates(strategy).items() if satisfied(g, given.get(b, []))}


def refusal(gate: dict, user: str, roles: frozenset[str], admin: bool, requester: str,
            approvals: list[dict]) -> str | None:
    """Why `user` may not approve the gate, or None if they may."""
    if not (admin or gate["role"] in roles):
        return f"approving needs the {gate['role']} role"
    if gate.get("notRequester") and user == requester:
        return f"{user} asked for this deployment; another person must approve it"
    if user in approvers(approvals):
        return f"{user} has approved this gate already; it needs {gate['count']} different people"
    return None


def describe(gate: dict) -> str:
    """Who may approve, in words."""
    who = f"{gate['count']} {'person' if gate['count'] == 1 else 'different people'} with the {gate['role']} role"
    return who + (", not the requester" if gate.get("notRequester") else "")
