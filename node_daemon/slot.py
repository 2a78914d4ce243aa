"""What a host does for one project: its releases (`projects/<project>/`), its state, and the
report that state makes. A host runs each of its projects' builds side by side."""
from __future__ import annotations

from pathlib import Path

from gantry.artifacts.manifest import Manifest
from gantry.node_daemon.installer import Installer
from gantry.statuses import HostState, allowed


def report_about(state: str, active: str | None, moving_to: str | None, failed: str | None) -> str | None:
    """The build a report's state is about: a rollout counts a report only for that build. A
    host that failed an older target while it was told a newer one reports the older one, so
    the newer deployment does not see a failure that is not its own."""
    return {HostState.DOWNLOADING: moving_to, HostState.STAGED: moving_to, HostState.FAILED: failed,
            HostState.ACTIVE: active}.get(state)


class Slot:
    def __init__(self, home: Path, project: str, hook_user: tuple[int, int] | None = None, group: str = ""):
        self.project = project
        self.installer = Installer(home / "projects" / project, hook_user=hook_user, group=group)
        self.state = HostState.ACTIVE if self.installer.active() else HostState.IDLE
        self.error = ""
        self.failed_target: str | None = None
        self.moving_to: str | None = None          # the build being downloaded and installed
        self.manifest: Manifest | None = None      # of the build being fetched or run
        self.seed_until = 0.0                      # announced to the tracker until then (monotonic)

    def become(self, to: HostState) -> None:
        if self.state != to and not allowed(self.state, to):
            raise RuntimeError(f"host state {self.state} cannot become {to}")   # a bug, not a fault
        self.state = to

    def report(self) -> dict:
        active = self.installer.active()
        return {"state": self.state, "activeBuildID": active, "error": self.error,
                "about": report_about(self.state, active, self.moving_to, self.failed_target)}

    def wants(self, target: str | None) -> bool:
        """Whether `target` is a build to move to now (not the one it runs, nor one that failed)."""
        return bool(target) and target != self.failed_target and target != self.installer.active()

    def wants_staged(self, stage: str | None) -> bool:
        """Whether `stage` is a build to download and unpack now, beside the one it runs."""
        return (bool(stage) and stage != self.failed_target and stage != self.installer.active()
                and not (self.state == HostState.STAGED and self.moving_to == stage))

    def back_on(self, target: str | None, stage: str | None) -> bool:
        """Told to run the build it runs while it shows a failure, a move that is over or a
        staged build no longer wanted: it is active again. A failure to stage the build still
        to be staged stays (it counts against the host's wave when the wave comes), and so
        does a failure of that very build."""
        if not target or target != self.installer.active():
            return False
        return {HostState.DOWNLOADING: True, HostState.FAILED: self.failed_target not in (stage, target),
                HostState.STAGED: self.moving_to != stage}.get(self.state, False)
