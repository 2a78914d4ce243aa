"""The loop every actor runs its plain class's step in."""
from __future__ import annotations

import logging
import threading
from typing import Callable

log = logging.getLogger("gantry.actors")


def run_forever(step: Callable[[], None], period: Callable[[], float], wakeup: threading.Event) -> None:
    """Call `step` forever; a failing step (Redis restarting) is logged and retried."""
    while True:
        try:
            step()
        except Exception:
            log.exception("step failed; retrying")
        wakeup.wait(period())
        wakeup.clear()


def start_loop(step: Callable[[], None], period: Callable[[], float], wakeup: threading.Event | None = None) -> None:
    """Run `step` on a daemon thread: every `period()` seconds, or sooner when `wakeup` is set."""
    threading.Thread(target=run_forever, args=(step, period, wakeup or threading.Event()), daemon=True).start()
