"""The Lua scripts in `scripts/`, rendered and registered with a client.

Statuses are written in a script as `${BuildStatus.QUEUED}` and filled in from `gantry.statuses`
when it is loaded, so the enums stay the one spelling. `${FROM.BuildStatus}` is that kind's
transition table (`statuses.TABLES`) as a Lua table, to-status -> {from-status = true}: a
script changes a status only if `FROM[to][current]` (see `may` in `statuses.lua`, put in front
of every script that uses a table). A script that records audit entries calls `audit(entry, k)`;
the `audit.lua` function is put in front of it likewise, and `events.lua`'s `emit(...)` in front of
a script that tells of a status change (its caller hands the events stream as the last key), and
`touch_host.lua`'s `touch(...)` in front of a script that writes a host's records.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path

import redis

from gantry import statuses

DIR = Path(__file__).with_name("scripts")
_NAME = re.compile(r"\$\{(\w+)\.(\w+)\}")
_TABLE = re.compile(r"\$\{FROM\.(\w+)\}")


def lua_table(kind: str) -> str:
    """A transition table as a Lua table literal: {["TO"]={["FROM"]=true, ...}, ...}."""
    table = statuses.TABLES[getattr(statuses, kind)]
    rows = (f'["{to.value}"]={{{", ".join(f"[{chr(34)}{f.value}{chr(34)}]=true" for f in sorted(froms))}}}'
            for to, froms in table.items())
    return "{" + ", ".join(rows) + "}"


@functools.cache
def source(name: str) -> str:
    text = (DIR / f"{name}.lua").read_text()
    if re.search(r"\bmay\(", text) and name != "statuses":
        text = source("statuses") + text
    if re.search(r"\baudit\(", text) and name != "audit":
        text = source("audit") + text
    if re.search(r"\bemit\(", text) and name != "events":
        text = source("events") + text
    if re.search(r"\btouch\(", text) and name != "touch_host":
        text = source("touch_host") + text
    text = _TABLE.sub(lambda m: lua_table(m[1]), text)
    return _NAME.sub(lambda m: getattr(getattr(statuses, m[1]), m[2]).value, text)


def register(r: redis.Redis, name: str):
    return r.register_script(source(name))
