"""Transfers as flows over capped resources: host NICs (up and down), rack uplinks, each region's
blob store egress and the links between regions.

Rates are max-min fair to one level: on each of its resources a flow gets a water-filling share,
in which flows held lower elsewhere (their other resources' equal share) take only that much and
leave the rest to the others, and its rate is the smallest of those shares. (TCP behind the
daemon's token buckets behaves so: one slow flow of four does not idle the rest of a NIC.) When a
flow starts or ends, the flows of its small resources (the two NICs, a store) are re-rated; a big
shared link (a rack uplink, a region link) gives each flow its equal share when the flow is rated,
and re-rates no one when it changes. A resource that more than 256 flows cross (a store that many
hosts fetch from at once) gives a newcomer its equal share and re-rates them all only when their
number has moved by a tenth; and a flow whose share moves by less than 10% keeps its rate.
That bounds an event's cost, and the events, at 100,000 hosts.

A resource marked `ps` (a host's NIC, which only carries flows that cross nothing else: one leg
of a peer transfer, see `swarm.Transfer`) is a processor-sharing queue: its flows split it
equally, so they advance together, and one event (its next finish) serves them all. A flow
starting or ending there costs one event, not a re-rating of every other flow on it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from gantry.sim.events import Events

INF = float("inf")
CROWD = 256              # past this many flows, a resource re-rates its flows only in steps of a tenth
RERATE_TOLERANCE = 0.1   # a flow keeps its rate until its share moves more than this (bounds the events)
PS_SLACK = 1.0           # bytes: a processor-sharing flow this close to its finish is done (rounding)


@dataclass(eq=False)
class Resource:
    name: str
    capacity: float                 # bytes per second; INF for no limit
    shared: bool = False            # a big link: others' flows are not re-rated on every change
    flows: dict = field(default_factory=dict)   # flow -> None, in the order they came (deterministic)
    up: bool = True                 # a store can go down for a while
    rated_n: int = 0                # how many flows crossed it when they were last all re-rated
    ps: bool = False                # processor sharing: only flows that cross nothing else
    given: float = 0.0              # ps: bytes each of its flows has been given so far
    given_at: float = 0.0
    version: int = 0                # ps: its scheduled finish

    def share(self) -> float:
        if not self.up:
            return 0.0
        return self.capacity / max(1, len(self.flows))


@dataclass(eq=False)
class Flow:
    size: float
    resources: list
    done: Callable                  # called with the flow when its last byte arrives
    left: float = 0.0
    rate: float = 0.0
    since: float = 0.0
    version: int = 0
    live: bool = True
    tag: object = None              # the caller's (which piece, from whom)
    seq: int = 0
    finish: float = 0.0             # on a ps resource: done when the resource has given this much

    def __post_init__(self):
        self.left = self.size


class Network:
    def __init__(self, events: Events, latency: Callable[[Flow], float] = lambda f: 0.0):
        self.events = events
        self.latency = latency      # a flow's first byte waits a round trip
        self._seq = 0

    def start(self, size: float, resources: list, done: Callable, tag=None) -> Flow:
        self._seq += 1
        rs = [r for r in resources if r is not None and r.capacity != INF]
        flow = Flow(size, rs, done, tag=tag, seq=self._seq)
        if rs and rs[0].ps:   # a processor-sharing resource carries only flows that cross nothing else
            assert len(rs) == 1, rs
            r = rs[0]
            self._give(r)
            r.flows[flow] = None
            flow.finish = r.given + size + self.latency(flow) * r.share()   # the first byte's wait, in bytes
            self._next_finish(r)
            return flow
        flow.since = self.events.now + self.latency(flow)
        for r in flow.resources:
            r.flows[flow] = None
        self._rerate_around(flow)
        return flow

    def cancel(self, flow: Flow) -> None:
        if flow.live:
            self._end(flow)

    def _end(self, flow: Flow) -> None:
        flow.live = False
        if flow.resources and flow.resources[0].ps:
            r = flow.resources[0]
            self._give(r)
            r.flows.pop(flow, None)
            self._next_finish(r)
            return
        for r in flow.resources:
            r.flows.pop(flow, None)
        self._rerate_around(flow, include_self=False)

    # --- processor sharing ----------------------------------------------------------------------

    def _give(self, r: Resource) -> None:
        now = self.events.now
        if r.flows:
            r.given += (now - r.given_at) * r.share()
        r.given_at = now

    def _next_finish(self, r: Resource) -> None:
        r.version += 1
        share = r.share()
        if r.flows and share > 0:
            left = min([f.finish for f in r.flows]) - r.given
            self.events.at(self.events.now + (left / share if left > PS_SLACK else 0.0), self._finished, r, r.version)

    def _finished(self, r: Resource, version: int) -> None:
        if version != r.version:
            return
        self._give(r)
        done = [f for f in r.flows if f.finish <= r.given + PS_SLACK]
        for f in done:
            del r.flows[f]
            f.live, f.left = False, 0.0
        self._next_finish(r)
        for f in done:
            f.done(f)

    def _advance(self, flow: Flow) -> None:
        now = self.events.now
        if now > flow.since:
            flow.left = max(0.0, flow.left - flow.rate * (now - flow.since))
            flow.since = now

    @staticmethod
    def _fill(r: Resource) -> dict:
        """Water-filling on one resource: each flow's share, flows capped lower elsewhere first."""
        if not r.up:
            return dict.fromkeys(r.flows, 0.0)
        elsewhere = []
        for f in r.flows:
            cap = INF
            for o in f.resources:
                if o is not r:
                    share = o.capacity / len(o.flows) if o.up else 0.0
                    if share < cap:
                        cap = share
            elsewhere.append((cap, f.seq, f))
        elsewhere.sort()
        left, n, shares = r.capacity, len(elsewhere), {}
        for cap, _, f in elsewhere:
            shares[f] = give = min(cap, left / n)
            left, n = left - give, n - 1
        return shares

    def _rerate(self, flow: Flow, fills: dict | None = None) -> None:
        self._advance(flow)
        fills = {} if fills is None else fills
        rate = INF
        for r in flow.resources:
            if r.shared or len(r.flows) > CROWD:
                rate = min(rate, r.share())
            else:
                if r not in fills:
                    fills[r] = self._fill(r)
                rate = min(rate, fills[r][flow])
        if flow.version and abs(rate - flow.rate) <= RERATE_TOLERANCE * flow.rate:
            return   # hardly changed: its arrival, already on the queue, stands (and its rate with it)
        flow.rate, flow.version = rate, flow.version + 1
        if rate == INF:
            self.events.at(flow.since, self._arrived, flow, flow.version)
        elif rate > 0:
            self.events.at(flow.since + flow.left / rate, self._arrived, flow, flow.version)

    @staticmethod
    def _due(r: Resource) -> bool:
        """Whether a change on `r` re-rates its flows: always while few cross it; once their
        number moved by a tenth since the last time, while many do."""
        n = len(r.flows)
        if n <= CROWD:
            return True
        if abs(n - r.rated_n) > 0.1 * r.rated_n:
            r.rated_n = n
            return True
        return False

    def _rerate_around(self, flow: Flow, include_self: bool = True) -> None:
        others = dict.fromkeys(f for r in flow.resources if not r.shared and self._due(r) for f in r.flows)
        others.pop(flow, None)
        fills: dict = {}
        if include_self:
            self._rerate(flow, fills)
        for f in others:
            self._rerate(f, fills)

    def rerate(self, resource: Resource) -> None:
        """The resource's capacity changed (a store went down or came back)."""
        if resource.ps:
            raise ValueError("a processor-sharing resource keeps its capacity")
        fills: dict = {}
        for f in list(resource.flows):
            self._rerate(f, fills)

    def _arrived(self, flow: Flow, version: int) -> None:
        if not flow.live or version != flow.version:
            return
        flow.left = 0.0
        self._end(flow)
        flow.done(flow)
