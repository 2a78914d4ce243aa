"""Where a region's replica copies from: replication as a tree.

Copying every region's replica from the primary store (a star) makes the primary's egress the
limit: n regions share it, and the last replica lands after n copies' time. Here any region
whose replica has landed serves regions that lack it, and a store serves at most `fanout` copies
at once (1 when the store's egress is no faster than a link between regions: two copies at half
speed land no sooner than one after the other, and a landed copy serves the next). The holders
double each round, so 10 regions take about 4 copies' time instead of 9. The replicators
(actors/replication) and the simulator (sim/run.py) both choose with `pick`.
"""
from __future__ import annotations

from collections import Counter


def pick(holders: list[str], serving: Counter, fanout: int, primary: str) -> str | None:
    """The holder a new copy comes from: the one serving the fewest copies, below `fanout`, a
    replica before the primary (the primary also serves its region's hosts); None when every
    holder serves `fanout` copies already (the copy waits for one to finish)."""
    free = [h for h in holders if serving[h] < max(1, fanout)]
    return min(free, key=lambda h: (serving[h], h == primary, h)) if free else None


def fanout_for(egress_bps: float, link_bps: float) -> int:
    """Copies a store serves at once: as many as its egress fills links between regions."""
    return max(1, int(egress_bps // link_bps)) if link_bps > 0 else 1
