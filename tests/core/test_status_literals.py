"""No status is spelled outside `core/statuses.py`: not in Python, Lua, the dashboard, the
simulator or the benches. (Tests spell them on purpose: they check against their own spec.)"""
import re
from pathlib import Path

from gantry import statuses

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("core", "state", "actors", "rollout", "serve_app", "cluster", "node_daemon", "sim", "artifacts", "bench")
KINDS = (statuses.BuildStatus, statuses.ReplicationStatus, statuses.DeploymentStatus, statuses.HostState,
         statuses.DcPhase, statuses.AttemptEnd, statuses.DeploymentOp, statuses.AnalysisOutcome)
VALUES = {m.value for kind in KINDS for m in kind} | {statuses.TIMED_OUT}
UPPER = sorted((v for v in VALUES if v.isupper()), key=len, reverse=True)
LOWER = sorted((v for v in VALUES if not v.isupper()), key=len, reverse=True)
# Upper-case names are statuses wherever they are quoted; lower-case host states ("active",
# "failed") are also ordinary words and field names, so they count where a status would be
# compared or assigned.
ANYWHERE = re.compile(r"""(['"])(%s)\1""" % "|".join(UPPER))
COMPARED = re.compile(r"""(==|!=|:|\bin\s*[(\[{][^)\]}]*)\s*(['"])(%s)\2|(['"])(%s)\4\s*(==|!=)"""
                      % ("|".join(LOWER), "|".join(LOWER)))


def offences() -> list[str]:
    out = []
    for folder in SOURCES:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix not in (".py", ".lua", ".html") or path.name == "statuses.py":
                continue
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if ANYWHERE.search(line) or COMPARED.search(line):
                    out.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    return out


def test_no_status_literal_outside_statuses():
    assert offences() == []


def test_the_check_finds_a_literal():
    assert ANYWHERE.search('if rec["buildStatus"] == "SUCCEEDED":')
    assert COMPARED.search('if h["state"] != "lost":') and COMPARED.search('{"state": "active"}')
    assert not COMPARED.search('"failed": sorted(peers)') and not ANYWHERE.search("QUEUED_AT = 1")
