"""`gantry freeze`: the stack-wide deploy freeze windows (a project's are its `freeze` setting)."""
from __future__ import annotations

import json

from gantry.cluster.commands import client_for


def add_commands(cmd) -> None:
    fz = cmd("freeze", "the stack-wide deploy freeze windows; --set FILE.json replaces them (admin)", freeze,
             json_out=True)
    fz.add_argument("--set", metavar="FILE.json", help='[{"reason": ..., "cron": "0 16 * * FRI", "durationS": 230400, '
                                                       '"timeZone": "Europe/Berlin"} or {"reason", "start", "end"}, ...]')


def freeze(a) -> int:
    c = client_for(a)
    r = c.set_freeze(json.loads(open(a.set).read())) if a.set else c.freeze()
    if getattr(a, "json", False):
        print(json.dumps(r, indent=2))
        return 0
    for w in r["windows"]:
        when = f"{w['cron']!r} for {w['durationS']:g} s ({w['timeZone']})" if w.get("cron") else f"{w['start']} to {w['end']}"
        print(f"{w['reason']}: {when}")
    print(f"frozen now: {r['openNow']['reason']} until {r['openNow']['until']}" if r["openNow"] else "not frozen now")
    return 0
