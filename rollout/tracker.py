"""The tracker of one datacenter's peer-to-peer network: Kraken's peer policy, with Owl's
central choice of who fetches what from the origin.

Hosts announce which chunks of an artifact they hold as a bitfield over the manifest's chunk
indexes (`artifacts.bitfield`): in full once, then only what they added. Asked for peers for
some chunks, the tracker answers with a bounded set: finished peers (seeds) first, then a
random sample of partial peers that hold at least one of them; peers in the asker's rack come
first within each kind. A chunk that only a few partial peers hold would hardly ever be in such a
sample, so the tracker keeps each chunk's first holders (`HOLDERS`) and adds one to an answer
that names no holder of a wanted chunk: of every such chunk when the answer gives little else to
fetch, of the rare ones otherwise. The regional blob store (the origin) is not a peer: the
tracker hands each chunk nobody holds yet to one asker at a time to fetch from the origin, at most
`origin_slots` chunks of an artifact at once, so the origin sends each chunk about once and its
bandwidth goes to chunks in turn (each lands early and spreads while the next one comes).

A claim is only as good as the chunks behind it. A peer that downloaders report for answering
that it lacks a chunk it claims (`distrust`) loses its claims to the artifact and is not heard
for a while (doubling each time). One reported for answering nothing but "busy" for long
(`doubt`) that no downloader has vouched for (`vouch`: it served someone a verified chunk; an
honest peer is busy because it serves) keeps being offered, after the others, but its bits no
longer keep chunks from the origin for a while, nor are they offered to a host the tracker
hands those chunks to: unproven bits never hold the swarm back.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from gantry.artifacts import bitfield

HOLDERS = 64   # holders kept per chunk (the first to announce it; one gone is replaced by the next)


@dataclass(eq=False)   # hashed by identity: a Bag holds the states themselves
class PeerState:
    host: str
    address: str                      # host:port of its peer server
    bits: int = 0                     # chunk indexes held
    complete: bool = False
    last_seen: float = 0.0
    rack: str = ""


class Bag:
    """A set with O(1) add, discard and random sample: a query samples peers rather than scan
    a swarm of 10,000."""

    def __init__(self):
        self.items: list = []
        self.at: dict = {}

    def add(self, x) -> None:
        if x not in self.at:
            self.at[x] = len(self.items)
            self.items.append(x)

    def discard(self, x) -> None:
        i = self.at.pop(x, None)
        if i is not None:
            last = self.items.pop()
            if i < len(self.items):
                self.items[i], self.at[last] = last, i

    def sample(self, rng: random.Random, k: int) -> list:
        """Up to k items in a random order. From a large bag, k draws with the repeats dropped:
        a fraction of random.sample's cost, and hardly ever fewer than k."""
        items, n = self.items, len(self.items)
        if n > 4 * k:   # (choices draws as items[int(random() * n)] would, a quarter faster)
            return [items[int(rng.random() * n)]] if k == 1 else list(dict.fromkeys(rng.choices(items, k=k)))
        if k < n:
            return rng.sample(items, k)
        items = list(items)
        rng.shuffle(items)
        return items


@dataclass
class Swarm:
    peers: dict[str, PeerState] = field(default_factory=dict)   # host -> its state
    by_address: dict[str, PeerState] = field(default_factory=dict)   # its peer server's address -> its state
    seeds: Bag = field(default_factory=Bag)                      # complete peers (their PeerStates)
    partial: Bag = field(default_factory=Bag)                    # peers that hold some chunks, not all
    held: int = 0                                               # union of every peer's bits (may be stale high after a peer leaves)
    assigned: dict[int, tuple[str, float]] = field(default_factory=dict)   # chunk index -> (host, until)
    banned: dict[str, float] = field(default_factory=dict)   # host -> until when its claims are not heard
    unproven: dict[str, float] = field(default_factory=dict)  # host -> until when its bits do not count as held
    vouched: set[str] = field(default_factory=set)             # hosts that served someone a verified chunk
    strikes: dict[str, int] = field(default_factory=dict)    # host -> times it was distrusted
    holders: dict[int, list[PeerState]] = field(default_factory=dict)   # chunk index -> up to HOLDERS of its holders
    holders_full: int = 0                                      # chunk indexes whose holder list is full

    def sort(self, peer: PeerState) -> None:
        """File the peer as a seed, a partial peer or neither, by what it holds now."""
        (self.seeds.add if peer.complete else self.seeds.discard)(peer)
        (self.partial.add if peer.bits and not peer.complete else self.partial.discard)(peer)

    def holds(self, peer: PeerState, i: int) -> bool:
        """The peer is still in the swarm and holds chunk i (a holder list may name one that left)."""
        return self.peers.get(peer.host) is peer and bool(peer.bits >> i & 1)

    def drop(self, host: str) -> bool:
        peer = self.peers.pop(host, None)
        if peer is None:
            return False
        if self.by_address.get(peer.address) is peer:
            del self.by_address[peer.address]
        self.holders_full &= ~peer.bits   # its place in those lists may be free now
        self.seeds.discard(peer)
        self.partial.discard(peer)
        return True


_EMPTY = Swarm()   # read only: what `peers` sees of an artifact nobody announced


class Tracker:
    def __init__(self, max_peers: int = 8, seed_share: float = 0.5, rng: random.Random | None = None,
                 origin_slots: int = 2, assign_s: float = 20.0, distrust_s: float = 60.0):
        self.max_peers, self.seed_share, self.distrust_s = max_peers, seed_share, distrust_s
        self.origin_slots, self.assign_s = origin_slots, assign_s
        self.rng = rng or random.Random()
        self.swarms: dict[str, Swarm] = {}   # artifact digest -> its swarm

    def _swarm(self, artifact: str) -> Swarm:
        swarm = self.swarms.get(artifact)   # (not setdefault: a Swarm made on every call)
        if swarm is None:
            swarm = self.swarms[artifact] = Swarm()
        return swarm

    # --- announces ----------------------------------------------------------------------------

    def announce(self, artifact: str, host: str, address: str, bits: int, complete: bool, now: float,
                 rack: str = "") -> None:
        """A host's whole bitfield for an artifact (replaces what it said before)."""
        swarm = self._swarm(artifact)
        peer = swarm.peers.get(host)
        if peer is None:   # (not setdefault: a PeerState made on every announce was a tenth of a simulation's time)
            peer = swarm.peers[host] = PeerState(host, address)
        if swarm.by_address.get(peer.address) is peer:
            del swarm.by_address[peer.address]
        swarm.by_address[address] = peer
        if swarm.banned.get(host, 0.0) > now:
            bits, complete = 0, False
        peer.address, peer.complete, peer.last_seen, peer.rack = address, complete, now, rack
        added, peer.bits = bits & ~peer.bits, bits
        swarm.sort(peer)
        self._hold(swarm, peer, added)
        if host not in swarm.unproven:
            self._landed(swarm, bits)

    def add(self, artifact: str, host: str, bits: int, complete: bool, now: float, full: int | None = None) -> bool:
        """Chunks a host added since its last announce; False if the tracker has no whole
        bitfield from it to add to (after a restart, or once expired): it must send one."""
        swarm = self.swarms.get(artifact)
        peer = swarm.peers.get(host) if swarm else None
        if peer is None:
            return False
        if swarm.banned.get(host, 0.0) > now:
            bits, complete = 0, False
        self._hold(swarm, peer, bits & ~peer.bits)
        peer.bits |= bits
        peer.complete, peer.last_seen = complete and (full is None or peer.bits == full), now
        swarm.sort(peer)
        if host not in swarm.unproven:
            self._landed(swarm, bits)
        return True

    @staticmethod
    def _hold(swarm: Swarm, peer: PeerState, added: int) -> None:
        """File the peer among the holders of the chunks it added whose lists have room (a
        chunk's list fills once, so this costs HOLDERS x chunks over a rollout, not hosts x chunks)."""
        added &= ~swarm.holders_full
        if not added:
            return
        for i in bitfield.indexes(added):
            holders = swarm.holders.setdefault(i, [])
            if len(holders) >= HOLDERS:   # a holder left or lost it (that cleared the bit): drop those
                holders[:] = [p for p in holders if swarm.holds(p, i)]
            if peer not in holders and len(holders) < HOLDERS:
                holders.append(peer)
            if len(holders) >= HOLDERS:
                swarm.holders_full |= 1 << i

    @staticmethod
    def _landed(swarm: Swarm, bits: int) -> None:
        swarm.held |= bits
        for i in [i for i in swarm.assigned if bits >> i & 1]:
            del swarm.assigned[i]   # it reached the swarm: no longer the origin's to send

    def distrust(self, artifact: str, address: str, now: float) -> str | None:
        """Downloaders say the peer at `address` failed to serve chunks it claims: it loses its
        claims to the artifact, and what it says of it is not heard for `distrust_s` (doubled for
        each earlier time). Returns the host, if the address is a peer of the swarm."""
        peer = self._at(artifact, address)
        if peer is None:
            return None
        swarm = self.swarms[artifact]
        swarm.vouched.discard(peer.host)
        strikes = swarm.strikes.get(peer.host, 0)
        swarm.strikes[peer.host] = strikes + 1
        swarm.banned[peer.host] = now + self.distrust_s * 2 ** min(strikes, 6)
        swarm.holders_full &= ~peer.bits
        peer.bits, peer.complete = 0, False
        swarm.sort(peer)
        self._recount(swarm)
        return peer.host

    def vouch(self, artifact: str, address: str) -> None:
        """A downloader got a verified chunk from the peer at `address`: it serves what it claims."""
        peer = self._at(artifact, address)
        if peer is not None:
            self.swarms[artifact].vouched.add(peer.host)
            if self.swarms[artifact].unproven.pop(peer.host, None) is not None:
                self._recount(self.swarms[artifact])

    def _at(self, artifact: str, address: str) -> PeerState | None:
        swarm = self.swarms.get(artifact)
        return swarm.by_address.get(address) if swarm else None

    def doubt(self, artifact: str, address: str, now: float) -> str | None:
        """Downloaders met nothing but "busy" from the peer at `address` for long: for
        `distrust_s`, its bits do not count as held (the origin sends those chunks) and it is
        offered after the others. Returns the host, if the address is a peer of the swarm."""
        peer = self._at(artifact, address)
        if peer is None or peer.host in self.swarms[artifact].vouched:
            return None
        swarm = self.swarms[artifact]
        swarm.unproven[peer.host] = now + self.distrust_s
        self._recount(swarm)
        return peer.host

    def forget(self, host: str) -> None:
        for swarm in self.swarms.values():
            if swarm.drop(host):
                self._recount(swarm)
        self._drop_empty()

    @staticmethod
    def _recount(swarm: Swarm) -> None:
        swarm.held = 0
        for p in swarm.peers.values():
            if p.host not in swarm.unproven:
                swarm.held |= p.bits

    def expire(self, now: float, ttl: float) -> int:
        """Drop every (artifact, host) entry not announced for `ttl` seconds: a host that moved
        on to another artifact, or went silent. Returns how many entries were dropped."""
        dropped = 0
        for swarm in self.swarms.values():
            proven = [h for h, until in swarm.unproven.items() if until <= now]
            for host in proven:
                del swarm.unproven[host]
            if proven:
                self._recount(swarm)
            gone = [h for h, p in swarm.peers.items() if now - p.last_seen > ttl]
            for host in gone:
                swarm.drop(host)
            if gone:
                self._recount(swarm)
            dropped += len(gone)
        self._drop_empty()
        return dropped

    def _drop_empty(self) -> None:
        self.swarms = {a: s for a, s in self.swarms.items() if s.peers}

    # --- queries ------------------------------------------------------------------------------

    def peers(self, artifact: str, host: str, wanted: int) -> list[PeerState]:
        """At most `max_peers` peers holding any of `wanted`, never `host` itself: seeds first
        (up to seed_share of the answer, more if partial peers are few), then partial peers;
        within each, those in the asker's rack first. Candidates are a random sample of a few
        times `max_peers` of each kind, so a query costs the same in a swarm of any size."""
        swarm = self.swarms.get(artifact) or _EMPTY
        me = swarm.peers.get(host)
        rack = me.rack if me else ""
        k = 4 * self.max_peers
        seeds = [p for p in swarm.seeds.sample(self.rng, k) if p.host != host]
        # every partial peer of a small swarm; k draws from a large one (twice that was a fifth
        # of a 10,000-host simulation's time, and moved its result by 0.2%)
        n_partial = len(swarm.partial.items)
        partial = [p for p in swarm.partial.sample(self.rng, n_partial if n_partial <= 4 * k else k)
                   if p.bits & wanted and p.host != host]
        if rack:   # samples come in a random order; keeping it within each rack group
            seeds = [p for p in seeds if p.rack == rack] + [p for p in seeds if p.rack != rack]
            partial = [p for p in partial if p.rack == rack] + [p for p in partial if p.rack != rack]
        n_seeds = min(len(seeds), max(1, int(self.max_peers * self.seed_share)))
        chosen = seeds[:n_seeds] + partial[: self.max_peers - n_seeds]
        if len(chosen) < self.max_peers:  # fill from whichever kind has more to give
            chosen += seeds[n_seeds: n_seeds + self.max_peers - len(chosen)]
        chosen = chosen[: self.max_peers]
        # Wanted chunks somebody holds that the answer names no holder of: holders of them all
        # if it gives the asker little else to fetch (a few large pieces), else of the rare ones
        # (held by fewer than HOLDERS), which a sample hardly ever finds.
        if (held := wanted & swarm.held) and not any(p.complete for p in chosen):   # (a seed holds all)
            covered = 0
            for p in chosen:
                covered |= p.bits
            missing = held & ~covered
            if (covered & wanted).bit_count() >= self.max_peers:
                missing &= ~swarm.holders_full
            if missing:
                extra = self._cover(swarm, missing, host, set(chosen))
                chosen = chosen[: self.max_peers - len(extra)] + extra
        if swarm.unproven:   # doubted peers after every other
            chosen = [p for p in chosen if p.host not in swarm.unproven] + [p for p in chosen if p.host in swarm.unproven]
        return chosen

    def _cover(self, swarm: Swarm, missing: int, host: str, chosen: set) -> list[PeerState]:
        """Up to half an answer of holders of `missing` chunks (held by no peer chosen), from
        the holder lists of up to `max_peers` of them, starting at a random chunk. A listed
        peer that no longer holds the chunk (distrusted, gone) leaves the list, making room for
        the next; a list that empties is filled again from the partial peers (one scan)."""
        extra: list[PeerState] = []
        for _ in range(self.max_peers):   # chunks looked at, bounded: a query's cost stays flat
            if not missing or len(extra) >= self.max_peers // 2:
                break
            start = self.rng.randrange(missing.bit_length())
            after = missing >> start
            low = after & -after if after else missing & -missing
            i = low.bit_length() - 1 + (start if after else 0)
            missing &= ~(1 << i)
            listed = swarm.holders.setdefault(i, [])
            for _ in range(4):   # a few random picks; a listed peer gone or without the chunk leaves
                if not listed:   # all left (liars distrusted, say): list again who holds it now
                    listed += [p for p in swarm.partial.items if p.bits >> i & 1][:HOLDERS]
                    if len(listed) >= HOLDERS:
                        swarm.holders_full |= 1 << i
                    if not listed:
                        break
                j = int(self.rng.random() * len(listed))
                p = listed[j]
                if not swarm.holds(p, i):
                    listed[j] = listed[-1]
                    listed.pop()
                    swarm.holders_full &= ~(1 << i)
                elif p.host != host and p not in chosen and p.host not in swarm.unproven:
                    extra.append(p)
                    chosen.add(p)
                    missing &= ~p.bits
                    break
        return extra

    def peer_bits(self, artifact: str, host: str, wanted: int) -> list[tuple[str, int]]:
        """(address, which of `wanted` it holds) for each chosen peer."""
        return [(p.address, wanted if p.complete else p.bits & wanted) for p in self.peers(artifact, host, wanted)]

    def ask(self, artifact: str, host: str, address: str, held: int, complete: bool, wanted: int, now: float,
            rack: str = "") -> tuple[list[tuple[str, int]], int]:
        """A downloading host's query: what it holds now (its whole bitfield), and for the chunks
        it wants, the peers that hold some of them and the ones it should fetch from the origin."""
        self.announce(artifact, host, address, held, complete, now, rack)
        chosen = self.peers(artifact, host, wanted)
        origin = self.assign_origin(artifact, host, wanted, now)
        unproven = self.swarms[artifact].unproven
        # a doubted peer is not offered for the chunks this host is handed to fetch from the origin
        bits = [(p.address, (wanted if p.complete else p.bits & wanted) & (~origin if p.host in unproven else -1))
                for p in chosen]
        return [(a, b) for a, b in bits if b], origin

    def assign_origin(self, artifact: str, host: str, wanted: int, now: float, limit: int = 1) -> int:
        """Chunks of `wanted` that `host` should fetch from the origin: ones no peer holds and
        nobody else is fetching, while fewer than `origin_slots` are on their way. An
        assignment that did not land within `assign_s` goes to the next asker."""
        swarm = self._swarm(artifact)
        for i, (owner, until) in list(swarm.assigned.items()):
            if until < now or owner not in swarm.peers:
                del swarm.assigned[i]
        mine = bitfield.of(i for i, (owner, _) in swarm.assigned.items() if owner == host) & wanted
        room = min(limit - bin(mine).count("1"), self.origin_slots - len(swarm.assigned))
        if room <= 0:
            return mine
        free = bitfield.indexes(wanted & ~swarm.held & ~bitfield.of(swarm.assigned))
        for i in self.rng.sample(free, min(room, len(free))):   # random: hosts spread over the artifact
            swarm.assigned[i] = (host, now + self.assign_s)
            mine |= 1 << i
        return mine
