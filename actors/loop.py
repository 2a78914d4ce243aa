"""The loop every actor runs its plain class's step in."""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

log = logging.getLogger("gantry.actors")
MIN_REST_S = 0.05


def run_forever(step: Callable[[], None], period: Callable[[], float], wakeup: threading.Event) -> None:
    """Call `step` every `period()` seconds, or sooner once `wakeup` is set; a failing step
    (Redis restarting) is logged and retried. Between two steps the loop rests at least as long
    as the last step took, so a storm of wake-ups costs at most half of a core."""
    while True:
        wakeup.clear()   # news that comes while the step runs wakes the next one
        began = time.monotonic()
        try:
            step()
        except Exception:
            log.exception("step failed; retrying")
        rest = max(MIN_REST_S, time.monotonic() - began)
        time.sleep(rest)
        wakeup.wait(max(0.0, period() - rest))


def start_loop(step: Callable[[], None], period: Callable[[], float], wakeup: threading.Event | None = None) -> None:
    """Run `step` on a daemon thread: every `period()` seconds, or sooner when `wakeup` is set."""
    threading.Thread(target=run_forever, args=(step, period, wakeup or threading.Event()), daemon=True).start()
