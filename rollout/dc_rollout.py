"""One datacenter's part of a deployment: waves, bake, health gate and automatic rollback.

Plain logic: `DcRollout.step(hosts, now)` looks at a snapshot of the datacenter's hosts and
returns the targets to set (host -> buildID); the coordinator applies them and persists the
rollout (`to_dict`/`from_dict`) so a restarted coordinator resumes where it was.

Phases: ROLLING (a wave's hosts are moving to the build) -> BAKING (the wave is healthy; wait
`bake_s`, then re-check) -> next wave ... -> DONE. A wave below the gate (`min_healthy`) starts
ROLLING_BACK: every host this rollout moved goes back to the previous build -> ROLLED_BACK.
PAUSED holds everything where it is.

With canary analysis (`analyze`), a wave's bake ends only when the analysis of that wave has
passed too (`verdict`: the analysis's (outcome, reason) for the wave, None while it runs); a
failed analysis rolls back at once; an inconclusive one holds the wave (`held`: why), and the
reconcile pauses the deployment for a person.

With approval gates (`gates`: the waves that wait for one), the wave before a gate ends its bake
and holds (`awaiting`: the gate, "wave:N") until the gate is among those `approved`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from gantry.records import HostView
from gantry.rollout.waves import Strategy, gate_failed_already, gate_passes, plan_waves
from gantry.statuses import AnalysisOutcome, DcPhase, HostState

ROLLING, BAKING, DONE = DcPhase.ROLLING, DcPhase.BAKING, DcPhase.DONE
ROLLING_BACK, ROLLED_BACK, PAUSED = DcPhase.ROLLING_BACK, DcPhase.ROLLED_BACK, DcPhase.PAUSED
FINISHED = {DONE, ROLLED_BACK}


@dataclass
class DcRollout:
    build_id: str
    previous_build: str | None
    steps: tuple
    min_healthy: float
    bake_s: float
    waves: list[list[str]] = field(default_factory=list)
    wave: int = 0
    phase: str = ROLLING
    paused_from: str = ""
    bake_until: float = 0.0
    reason: str = ""
    analyze: bool = False       # each wave's bake waits for its canary analysis to pass
    bake_began: float = 0.0     # when the wave became healthy (the analysis's window starts here)
    held: str = ""              # the wave waits for a person: its analysis was inconclusive
    gates: tuple = ()           # waves (0-based) that start only once approved
    awaiting: str = ""          # the approval gate it holds at ("wave:N")

    @classmethod
    def start(cls, build_id: str, previous_build: str | None, hosts: list[str], strategy: Strategy,
              analyze: bool = False, gates: tuple = ()) -> "DcRollout":
        return cls(build_id, previous_build, tuple(strategy.steps), strategy.min_healthy, strategy.bake_s,
                   waves=plan_waves(sorted(hosts), strategy.steps), analyze=analyze, gates=tuple(gates))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DcRollout":
        return cls(**{**d, "steps": tuple(d["steps"]), "gates": tuple(d.get("gates", ()))})

    @property
    def moved(self) -> list[str]:
        return [h for w in self.waves[: self.wave + 1] for h in w]

    def pause(self) -> None:
        if self.phase not in FINISHED and self.phase != PAUSED:
            self.paused_from, self.phase = self.phase, PAUSED

    def resume(self) -> None:
        if self.phase == PAUSED:
            self.phase, self.paused_from = self.paused_from, ""

    def roll_back(self, reason: str) -> None:
        """Another datacenter failed the deployment: take this one back too."""
        if self.phase not in (ROLLING_BACK, ROLLED_BACK):
            self.reason = reason
            self.phase = ROLLING_BACK if self.previous_build is not None else ROLLED_BACK

    def baseline(self, hosts) -> list[str]:
        """The hosts this rollout has not moved yet (the current wave's baseline)."""
        moved = set(self.moved)
        return sorted(h for h in hosts if h not in moved)

    def step(self, hosts: dict[str, HostView], now: float, verdict: tuple[str, str] | None = None,
             approved=()) -> dict[str, str]:
        """Advance as far as the snapshot allows; returns {host: build} targets to set."""
        self.held = self.awaiting = ""
        if self.phase == PAUSED or self.phase == ROLLED_BACK:
            return {}
        if self.phase == ROLLING_BACK:
            return self._rolling_back(hosts)
        if self.phase == DONE:  # converge hosts that joined after the plan
            return {h: self.build_id for h, v in hosts.items() if v.state != HostState.LOST and v.target_build != self.build_id}
        if not self.waves:
            self.phase = DONE
            return {}
        if self.wave == 0 and self.phase == ROLLING and not self._may_start(0, approved):
            return {}
        wave = [h for h in self.waves[self.wave] if h in hosts]
        targets = {h: self.build_id for h in self.moved if h in hosts and hosts[h].target_build != self.build_id}
        healthy = sum(1 for h in wave if hosts[h].runs(self.build_id))
        failed = sum(1 for h in wave if hosts[h].failed_on(self.build_id))
        if gate_failed_already(failed, len(wave), self.min_healthy):
            return self._start_rollback(hosts, f"wave {self.wave + 1}: {failed} of {len(wave)} hosts failed "
                                               f"(gate {self.min_healthy:.0%} healthy)")
        if self.phase == ROLLING and healthy + failed == len(wave) and gate_passes(healthy, failed, len(wave), self.min_healthy):
            self.phase, self.bake_until, self.bake_began = BAKING, now + self.bake_s, now
        if self.phase == BAKING and self.analyze:
            outcome, why = verdict or ("", "")
            if outcome == AnalysisOutcome.FAIL:
                return self._start_rollback(hosts, f"wave {self.wave + 1}: canary analysis failed: {why}")
            if outcome == AnalysisOutcome.INCONCLUSIVE:
                self.held = why
            if outcome != AnalysisOutcome.PASS:
                return targets
        if self.phase == BAKING and now >= self.bake_until:
            if not gate_passes(healthy, failed, len(wave), self.min_healthy):
                return self._start_rollback(hosts, f"wave {self.wave + 1} became unhealthy while baking")
            if self.wave + 1 >= len(self.waves):
                self.phase = DONE
            elif not self._may_start(self.wave + 1, approved):
                return targets
            else:
                self.wave += 1
                self.phase = ROLLING
                return self.step(hosts, now, None, approved)   # the next wave has no verdict yet
        return targets

    def _may_start(self, wave: int, approved) -> bool:
        """Whether wave `wave` (0-based) may start; if not, it awaits its gate."""
        if wave in self.gates and f"wave:{wave + 1}" not in approved:
            self.awaiting = f"wave:{wave + 1}"
            return False
        return True

    def _start_rollback(self, hosts: dict[str, HostView], reason: str) -> dict[str, str]:
        self.reason = reason
        if self.previous_build is None:  # nothing to go back to: hold, and say so
            self.phase = ROLLED_BACK
            self.reason += "; no previous build to roll back to"
            return {}
        self.phase = ROLLING_BACK
        return self._rolling_back(hosts)

    def _rolling_back(self, hosts: dict[str, HostView]) -> dict[str, str]:
        back = [h for h in self.moved if h in hosts and hosts[h].state != HostState.LOST]
        targets = {h: self.previous_build for h in back if hosts[h].target_build != self.previous_build}
        if not targets and all(hosts[h].runs(self.previous_build) or hosts[h].state_for(self.build_id) == HostState.FAILED
                                for h in back):
            self.phase = ROLLED_BACK
        return targets
