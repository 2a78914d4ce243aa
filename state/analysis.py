"""Canary analyses: each wave's measurements in each datacenter (what the API shows) and its
verdict (what the rollout waits for), kept apart so a coordinator's tick reads only verdicts."""
from __future__ import annotations

import json

import redis

from gantry.state import keys
from gantry.statuses import AnalysisOutcome as O


def field(dc: str, wave: int) -> str:
    return f"{dc}/{wave}"


class Analyses:
    def __init__(self, r: redis.Redis):
        self.r = r

    def save(self, dep_id: str, dc: str, wave: int, record: dict) -> None:
        self.r.hset(keys.analysis(dep_id), field(dc, wave), json.dumps(record))

    def get(self, dep_id: str, dc: str, wave: int) -> dict | None:
        raw = self.r.hget(keys.analysis(dep_id), field(dc, wave))
        return json.loads(raw) if raw else None

    def records(self, dep_id: str) -> list[dict]:
        """Every wave's record, in datacenter then wave order."""
        raw = self.r.hgetall(keys.analysis(dep_id))
        return [json.loads(raw[k]) for k in sorted(raw, key=lambda k: (k.rsplit("/", 1)[0], int(k.rsplit("/", 1)[1])))]

    def conclude(self, dep_id: str, dc: str, wave: int, outcome: O, reason: str) -> bool:
        """Record the wave's verdict, once (False if it had one); wakes the coordinators."""
        if not self.r.hsetnx(keys.analysis_verdicts(dep_id), field(dc, wave), json.dumps([outcome.value, reason])):
            return False
        self.r.publish(keys.desired_channel(), dep_id)
        return True

    def verdicts(self, dep_id: str, dc: str | None = None) -> dict:
        """(dc, wave) -> (outcome, reason); with `dc`, wave -> (outcome, reason) of that datacenter."""
        out = {}
        for k, v in self.r.hgetall(keys.analysis_verdicts(dep_id)).items():
            where, wave = k.rsplit("/", 1)
            if dc is None or where == dc:
                out[int(wave) if dc else (where, int(wave))] = tuple(json.loads(v))
        return out

    def waive(self, dep_id: str, user: str) -> list[str]:
        """A person resumed the deployment: every inconclusive verdict becomes a pass, saying who
        and why. Returns the waves waived ("<dc>/<wave>")."""
        waived = []
        for k, v in self.r.hgetall(keys.analysis_verdicts(dep_id)).items():
            outcome, reason = json.loads(v)
            if outcome == O.INCONCLUSIVE:
                self.r.hset(keys.analysis_verdicts(dep_id), k, json.dumps([O.PASS.value, f"resumed by {user} after: {reason}"]))
                waived.append(k)
        return waived
