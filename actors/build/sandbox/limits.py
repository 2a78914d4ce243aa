"""What a sandboxed command may use, and how it ended."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Limits:
    memory_bytes: int
    pids: int
    cpus: float
    timeout_s: float
    file_bytes: int


@dataclass
class Result:
    exit_code: int | None = None     # the command's own exit status; None if it never ran
    timed_out: bool = False
    oom_killed: bool = False
    cancelled: bool = False
    setup_error: str = ""            # set when bubblewrap failed before the command ran

    @property
    def sandbox_failed(self) -> bool:
        return self.exit_code is None and not (self.timed_out or self.cancelled)

    def reason(self, timeout_s: float) -> str:
        if self.cancelled:
            return "cancelled"
        if self.timed_out:
            return f"timed out after {timeout_s:g}s"
        if self.oom_killed:
            return "killed: memory limit exceeded"
        if self.sandbox_failed:
            return f"sandbox failed: {self.setup_error}"
        if self.exit_code and self.exit_code > 128:
            return f"killed by signal {self.exit_code - 128}"
        return f"build command exited with code {self.exit_code}"
