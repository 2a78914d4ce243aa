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


def wake_on_messages(subscribe: Callable[[], object], wakeup: threading.Event, what: str,
                     retry_s: float = 1.0) -> None:
    """Set `wakeup` on every message of the pub/sub subscription `subscribe()` returns, from a
    daemon thread; a lost subscription (Redis restarting) is made again `retry_s` later."""
    def listen():
        while True:
            try:
                for _ in subscribe().listen():
                    wakeup.set()
            except Exception:
                log.exception("%s subscription lost; re-subscribing", what)
                time.sleep(retry_s)
    threading.Thread(target=listen, daemon=True).start()


def start_loop(step: Callable[[], None], period: Callable[[], float], wakeup: threading.Event | None = None) -> None:
    """Run `step` on a daemon thread: every `period()` seconds, or sooner when `wakeup` is set."""
    threading.Thread(target=run_forever, args=(step, period, wakeup or threading.Event()), daemon=True).start()
