"""Where a bench's CPU went: a thread samples every process's CPU time (/proc) a few times a
second, and `between(t0, t1)` gives each kind of process's CPU seconds (processes grouped by
their name) and the machine's idle share over that span of wall time (time.time())."""
from __future__ import annotations

import os
import threading
import time
from bisect import bisect_left
from collections import defaultdict

TICK = os.sysconf("SC_CLK_TCK")


def _processes() -> dict[int, tuple[str, int]]:
    """pid -> (name, user + system clock ticks so far)."""
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                raw = f.read()
        except OSError:
            continue   # gone meanwhile
        name = raw[raw.index("(") + 1: raw.rindex(")")]
        if name.startswith("kworker"):   # a kernel worker's name changes with the work it does
            name = "kworker"
        fields = raw[raw.rindex(")") + 2:].split()
        out[int(pid)] = (name, int(fields[11]) + int(fields[12]))
    return out


def machine_times() -> tuple[int, int]:
    """(idle, total) CPU time of the whole machine so far, in clock ticks (/proc/stat)."""
    ticks = [int(x) for x in open("/proc/stat").readline().split()[1:9]]
    return ticks[3] + ticks[4], sum(ticks)   # idle + iowait


class CpuSampler:
    def __init__(self, every_s: float = 0.25):
        self.every_s = every_s
        self.samples: list[tuple[float, tuple[int, int], dict]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="cpu-sampler")

    def start(self) -> "CpuSampler":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            self.samples.append((time.time(), machine_times(), _processes()))
            if self._stop.wait(self.every_s):
                return

    def _at(self, t: float):
        i = min(bisect_left([s[0] for s in self.samples], t), len(self.samples) - 1)
        return self.samples[i]

    def between(self, t0: float, t1: float) -> dict:
        """{"seconds": wall, "machineIdle": share, "cpuSeconds": {name: CPU seconds}} over [t0, t1],
        from the samples nearest after each end. A process that started within the span counts
        from zero."""
        (a_t, a_m, a_p), (b_t, b_m, b_p) = self._at(t0), self._at(t1)
        by_name: dict[str, float] = defaultdict(float)
        for pid, (name, ticks) in b_p.items():
            before = a_p.get(pid)
            used = ticks - (before[1] if before else 0)
            if used > 0:
                by_name[name] += used / TICK
        return {"seconds": round(b_t - a_t, 2),
                "machineIdle": round((b_m[0] - a_m[0]) / max(1, b_m[1] - a_m[1]), 3),
                "cpuSeconds": {k: round(v, 2) for k, v in sorted(by_name.items(), key=lambda kv: -kv[1])}}
