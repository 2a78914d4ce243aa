"""Every Lua script is handed every key it touches in KEYS (so it stays valid for Redis Cluster),
spells no key or status of its own, and renders with the status names of gantry.statuses."""
import re

import pytest

from gantry.state import scripts

NAMES = sorted(p.stem for p in scripts.DIR.glob("*.lua"))
KEYLESS = {"TIME", "PUBLISH"}   # PUBLISH's first argument is a channel, not a key
CALL = re.compile(r"redis\.call\('([A-Z]+)'(?:,\s*([^,)]+))?")


@pytest.mark.parametrize("name", NAMES)
def test_every_key_comes_from_KEYS(name):
    text = scripts.source(name)
    from_keys = set(re.findall(r"local (\w+), (\w+) = KEYS\[[^\]]+\], KEYS", text))
    aliases = {v for pair in from_keys for v in pair} | set(re.findall(r"local (\w+) = KEYS\[", text))
    calls = CALL.findall(text)
    assert calls or name in ("audit", "statuses"), name   # functions put in front of other scripts
    for command, first in calls:
        if command in KEYLESS:
            continue
        first = first.strip()
        assert first.startswith("KEYS[") or first in aliases, f"{name}: {command} on {first}"
    assert "gantry:" not in text, name   # the key prefix lives in state/keys.py alone


def test_statuses_are_rendered_from_the_enums():
    for name in NAMES:
        assert "${" not in scripts.source(name)
    assert "'BUILDING'" in scripts.source("claim_build")
    raw = (scripts.DIR / "claim_build.lua").read_text()
    assert "'BUILDING'" not in raw and "${BuildStatus.BUILDING}" in raw
