"""Build logs: one capped string per build, appended by the attempt and read by byte offset."""
from __future__ import annotations

import time

import redis

from gantry.state import keys, scripts


def stamped(line: str) -> str:
    """A line from gantry itself, as it stands among a build's output."""
    return f"[gantry {time.strftime('%H:%M:%S')}] {line}\n"


class Logs:
    def __init__(self, r: redis.Redis, raw: redis.Redis):
        self.raw = raw   # logs are read by byte offset, so without decoding
        self._append = scripts.register(r, "append_log")

    def append(self, build_id: str, text: str, cap: int) -> None:
        if text:
            self._append(keys=[keys.log(build_id)], args=[text, cap])

    def read(self, build_id: str, offset: int = 0, max_bytes: int = 1 << 20) -> bytes:
        return self.raw.getrange(keys.log(build_id), offset, offset + max_bytes - 1)

    def tail(self, build_id: str, n: int = 4096) -> str:
        return self.raw.getrange(keys.log(build_id), -n, -1).decode(errors="replace")
