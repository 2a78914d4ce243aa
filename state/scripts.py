"""The Lua scripts in `scripts/`, rendered and registered with a client.

Statuses are written in a script as `${BuildStatus.QUEUED}` and filled in from `gantry.statuses`
when it is loaded, so the enums stay the one spelling. A script that records audit entries
calls `audit(entry, k)`; the `audit.lua` function is put in front of it.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path

import redis

from gantry import statuses

DIR = Path(__file__).with_name("scripts")
_NAME = re.compile(r"\$\{(\w+)\.(\w+)\}")


@functools.cache
def source(name: str) -> str:
    text = (DIR / f"{name}.lua").read_text()
    if re.search(r"\baudit\(", text) and name != "audit":
        text = source("audit") + text
    return _NAME.sub(lambda m: getattr(getattr(statuses, m[1]), m[2]).value, text)


def register(r: redis.Redis, name: str):
    return r.register_script(source(name))
