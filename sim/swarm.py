"""One datacenter's peer-to-peer network in the simulator: its hosts download the build's pieces
with the daemon's own `ChunkPlan` and the coordinator's own `Tracker`, over `network.Network`.

Polling is replaced by wake-ups, so a waiting host costs nothing until something it may want
happens: a host that found no source for a piece waits in the swarm and a few waiters are woken
when a piece lands somewhere; one that found every holder busy waits on those holders and one
is woken when an upload slot frees. A woken host looks again after a random part of the
daemon's refresh period plus the coordinator's answer time, as its next poll would; and every
waiting host looks again at least every `poll_s` anyway.
"""
from __future__ import annotations

import random
from typing import Callable

from gantry.rollout.tracker import Bag, Tracker
from gantry.artifacts import bitfield
from gantry.node_daemon.chunkplan import ChunkPlan
from gantry.sim.events import Events
from gantry.sim.network import Flow, Network, Resource
from gantry.sim.scenario import Scenario

ORIGIN = "origin"
BUSY_RETRY_S = 0.05
IDLE_SLEEP_S = 0.05
INF = float("inf")


class Transfer:
    """One piece on its way to a host. From a peer it is two legs, as over TCP: the peer sends at
    its upload share (holding one of its upload slots) into the socket buffers, and the host reads
    at its download share. Neither waits on the other's share (a chunk fits in loopback's and a
    datacenter's buffers), so a slow reader never holds an uploader back; the piece is in when
    both legs are done. From the origin it is one leg (the store's egress)."""

    def __init__(self, host, key: int, source: str):
        self.host, self.key, self.source = host, key, source
        self.legs: list[Flow] = []
        self.sending = True   # holds an upload slot at the peer, or one of the origin's

    @property
    def done(self) -> bool:
        return not any(f.live for f in self.legs)


class Download:
    """One host's download of the build: the daemon's plan, its workers, what it holds."""

    def __init__(self, pieces: int, rng: random.Random, sc: Scenario):
        self.plan = ChunkPlan(range(pieces), rng, sc.endgame_s, sc.origin_after_s)
        self.free = sc.workers
        self.held = 0
        self.peers: list[tuple[str, int]] = []
        self.origin: set | None = None
        self.asked_at = -INF
        self.transfers: dict[int, list[Transfer]] = {}
        self.wake_at = INF


class Swarm:
    def __init__(self, sc: Scenario, events: Events, net: Network, store: Resource, rng: random.Random,
                 latency: Callable[[], float], landed: Callable, failed: Callable):
        self.sc, self.events, self.net, self.store, self.rng = sc, events, net, store, rng
        self.latency = latency                 # the coordinator's answer time now
        self.landed, self.failed = landed, failed   # (host) when its download is in / failed
        self.pieces = sc.pieces()
        self.piece_bytes = sc.size_bytes / self.pieces
        self.full = bitfield.full(self.pieces)
        self.tracker = Tracker(max_peers=sc.max_peers, rng=rng, origin_slots=sc.origin_slots)
        self.hosts: dict[str, object] = {}
        self.waiters = Bag()                   # hosts waiting for any piece to appear
        self.slot_waiters: dict[str, Bag] = {}   # holder -> hosts waiting for one of its slots
        self.queries = 0
        self.downloading = 0
        self.origin_bytes = self.peer_bytes = 0.0

    # --- a host's download ------------------------------------------------------------------

    def begin(self, host) -> None:
        host.download = Download(self.pieces, self.rng, self.sc)
        self.hosts[host.id] = host
        self.downloading += 1
        self.pump(host)

    def pump(self, host) -> None:
        d, now = host.download, self.events.now
        if d is None or not host.alive:
            return
        while d.free > 0 and not d.plan.done:
            key, endgame = d.plan.next(now)
            if key is None:
                break
            if not self._source(host, key, endgame) and endgame:
                break   # no other holder for the slowest piece: let its first copy finish
            if host.download is None:   # failed
                return
        self._timer(host)

    def _ask(self, host) -> None:
        d = host.download
        d.peers, origin = self.tracker.ask("b", host.id, host.id, d.held, d.held == self.full,
                                           self.full & ~d.held, self.events.now, host.rack)
        d.origin = set(bitfield.indexes(origin)) if self.sc.p2p else None
        d.plan.first(d.origin or ())
        d.asked_at = self.events.now
        self.queries += 1

    def _source(self, host, key: int, endgame: bool) -> bool:
        """Start fetching `key` (True), or park it (False) as the daemon's worker would."""
        d, now, sc = host.download, self.events.now, self.sc
        if sc.p2p and now - d.asked_at > sc.peer_refresh_s:
            self._ask(host)
        if sc.p2p:
            tried = d.plan.tried(key)
            live = [p for p, bits in d.peers if bits >> key & 1 and p not in tried
                    and self.hosts[p].alive]   # a dead one refuses at once
        else:
            live = []
        free = [p for p in live if self.hosts[p].uploads < sc.upload_slots] if live else live
        if endgame:
            if not free:
                return False
            self._fetch(host, key, self.rng.choice(free))
            return True
        if not live:
            if sc.p2p and not d.plan.origin_now(key, now, d.origin):
                d.plan.park(key, now + sc.peer_refresh_s)
                self.waiters.add(host.id)
                return False
            if not self.store.up:   # the store errs: the daemon's download fails
                self.fail(host)
                return False
            self._fetch(host, key, ORIGIN)
            return True
        if not free:
            d.plan.park(key, now + BUSY_RETRY_S)
            for p in live:
                self.slot_waiters.setdefault(p, Bag()).add(host.id)
            return False
        self._fetch(host, key, self.rng.choice(free))
        return True

    def _fetch(self, host, key: int, source: str) -> None:
        d = host.download
        d.free -= 1
        d.plan.tried(key).add(source)
        t = Transfer(host, key, source)
        if source == ORIGIN:
            # the daemon charges its download cap only once the chunk is in
            t.legs.append(self.net.start(self.piece_bytes, [self.store, host.rack_down], self._leg_done, tag=t))
        else:
            peer = self.hosts[source]
            peer.uploads += 1
            cross = peer.rack != host.rack
            t.legs.append(self.net.start(self.piece_bytes, [peer.up, peer.rack_up if cross else None,
                                                            host.rack_down if cross else None], self._leg_done, tag=t))
            t.legs.append(self.net.start(self.piece_bytes, [host.down], self._leg_done, tag=t))
        d.transfers.setdefault(key, []).append(t)

    def _leg_done(self, flow: Flow) -> None:
        t: Transfer = flow.tag
        if t.sending and flow is t.legs[0]:
            t.sending = False
            self._release(t.source)
        if t.done:
            self._arrived(t)

    def _cancel(self, t: Transfer) -> None:
        for f in t.legs:
            self.net.cancel(f)
        if t.sending:
            t.sending = False
            self._release(t.source)

    def _arrived(self, t: Transfer) -> None:
        host, key, source = t.host, t.key, t.source
        d = host.download
        if d is None or not host.alive:
            return
        d.transfers[key].remove(t)
        d.free += 1
        if source == ORIGIN:
            self.origin_bytes += self.piece_bytes
        else:
            self.peer_bytes += self.piece_bytes
        if not d.held >> key & 1:
            d.held |= 1 << key
            d.plan.land(key)
            for other in d.transfers.pop(key, []):   # an endgame copy that lost the race
                self._cancel(other)
                d.free += 1
            self.tracker.add("b", host.id, 1 << key, d.held == self.full, self.events.now)
            self._wake_some(self.sc.upload_slots)   # a new holder: its slots are free
            if host.lose_after is not None and bin(d.held).count("1") >= host.lose_after:
                host.die()
                return
        if d.plan.done:
            host.download = None
            self.downloading -= 1
            self._unwait(host)
            self.landed(host)
            return
        self.pump(host)

    def _unwait(self, host) -> None:
        """Its download is over: it waits for nothing."""
        self.waiters.discard(host.id)

    def _release(self, source: str) -> None:
        """An upload slot frees: one host waiting for it (or for anything) looks again. Only a
        host with a free worker and a parked piece the peer holds: a real one would be asking
        for the slot, while a wake-up spent on a host that cannot use it left the slot idle
        until the next poll (at 10,000 hosts, a datacenter staged in 75 s instead of 67)."""
        if source == ORIGIN:
            self._wake_some(1)
            return
        peer = self.hosts[source]
        peer.uploads -= 1
        waiting = self.slot_waiters.get(source)
        held = self.full if peer.download is None else peer.download.held
        while waiting and waiting.items:   # the slot goes to a host that would ask for it now
            hid = waiting.sample(self.rng, 1)[0]
            waiting.discard(hid)
            h = self.hosts[hid]
            d = h.download
            if d is not None and h.alive and d.free > 0 and any(held >> k & 1 for k in d.plan.parked):
                self.wake(h, BUSY_RETRY_S)   # it asks that peer again this soon
                return
        self._wake_some(1)

    def _wake_some(self, k: int) -> None:
        """Wake k of the hosts waiting for any piece (only downloading hosts wait)."""
        for h in self.waiters.sample(self.rng, k):
            self.waiters.discard(h)
            self.wake(self.hosts[h])

    def wake(self, host, within: float | None = None) -> None:
        """Its next poll finds what changed (a new holder: when it next asks the tracker)."""
        d = host.download
        if within is None:
            at = self.events.now + self.rng.uniform(0, self.sc.peer_refresh_s) + self.latency()
        else:
            at = self.events.now + self.rng.uniform(0, within) + self.sc.rtt_dc_s
        self._wake(host, max(at, d.plan.next_due() or at) if d else at)

    def _timer(self, host) -> None:
        d, now = host.download, self.events.now
        if d is None or d.free == 0 or d.plan.done:
            return
        at = now + self.sc.poll_every() + self.rng.uniform(0.001, IDLE_SLEEP_S)   # the daemon's worker naps 0.05 s
        due = d.plan.next_due()
        if due is not None and not self.sc.p2p:
            at = min(at, due)
        oldest = min((s for s, _ in d.plan.inflight.values()), default=INF) + self.sc.endgame_s
        if oldest > now:   # endgame once the oldest piece in flight is slow
            at = min(at, oldest + 1e-6)
        deferred = min(d.plan.waiting.values(), default=INF) + self.sc.origin_after_s
        if deferred > now:   # a piece nobody has given may come from the origin then
            at = min(at, deferred + 1e-6)
        self._wake(host, max(at, now + 1e-6))

    def _wake(self, host, at: float) -> None:
        d = host.download
        if d is not None and at < d.wake_at:
            d.wake_at = at
            self.events.at(at, self._woken, host, at)

    def _woken(self, host, at: float) -> None:
        d = host.download
        if d is not None and d.wake_at == at:
            d.wake_at = INF
            self.pump(host)

    # --- faults -----------------------------------------------------------------------------

    def fail(self, host) -> None:
        """Its download fails (the store errs): every flow of it stops."""
        self._stop(host)
        self.failed(host)

    def _stop(self, host) -> None:
        d = host.download
        host.download = None
        self._unwait(host)
        if d is not None:
            self.downloading -= 1
            for transfers in d.transfers.values():
                for t in transfers:
                    self._cancel(t)

    def gone(self, host) -> None:
        """The host died: its downloads stop, and those it served try another source."""
        self._stop(host)
        for t in [f.tag for f in host.up.flows if f.live]:
            self._cancel(t)
            other, key = t.host, t.key
            od = other.download
            if od is not None and other.alive:
                od.transfers[key].remove(t)
                od.free += 1
                if not od.transfers[key]:
                    od.plan.park(key, self.events.now)
                self.pump(other)

    def forget(self, host) -> None:
        """The coordinator marked it lost."""
        self.tracker.forget(host.id)
