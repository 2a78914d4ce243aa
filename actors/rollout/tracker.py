"""The tracker of one datacenter's peer-to-peer network (Kraken's policy as the reference).

Hosts announce which chunks of an artifact they hold; asked for peers for some chunks, the
tracker answers with a bounded set: finished peers (seeds) first, then a random sample of partial
peers that hold at least one of the chunks. The regional blob store is always the origin of last
resort, and is not listed here.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class PeerState:
    host: str
    address: str                      # host:port of its peer server
    chunks: set[str] = field(default_factory=set)
    complete: bool = False
    last_seen: float = 0.0


class Tracker:
    def __init__(self, max_peers: int = 8, seed_share: float = 0.5, rng: random.Random | None = None):
        self.max_peers, self.seed_share = max_peers, seed_share
        self.rng = rng or random.Random()
        self.swarms: dict[str, dict[str, PeerState]] = {}   # artifact digest -> host -> state

    def announce(self, artifact: str, host: str, address: str, chunks: set[str], complete: bool,
                 now: float) -> None:
        swarm = self.swarms.setdefault(artifact, {})
        peer = swarm.setdefault(host, PeerState(host, address))
        peer.address, peer.complete, peer.last_seen = address, complete, now
        peer.chunks = set(chunks)

    def forget(self, host: str) -> None:
        for swarm in self.swarms.values():
            swarm.pop(host, None)
        self._drop_empty()

    def expire(self, now: float, ttl: float) -> int:
        """Drop every (artifact, host) entry not announced for `ttl` seconds: a host that moved
        on to another artifact, or went silent. Returns how many entries were dropped."""
        dropped = 0
        for swarm in self.swarms.values():
            for host in [h for h, p in swarm.items() if now - p.last_seen > ttl]:
                del swarm[host]
                dropped += 1
        self._drop_empty()
        return dropped

    def _drop_empty(self) -> None:
        self.swarms = {a: s for a, s in self.swarms.items() if s}

    def peers(self, artifact: str, host: str, wanted: set[str]) -> list[PeerState]:
        """At most `max_peers` peers holding any of `wanted`, never `host` itself: seeds first
        (up to seed_share of the answer, more if partial peers are few), then partial peers."""
        swarm = self.swarms.get(artifact, {})
        seeds = [p for p in swarm.values() if p.host != host and p.complete]
        partial = [p for p in swarm.values() if p.host != host and not p.complete and p.chunks & wanted]
        self.rng.shuffle(seeds)
        self.rng.shuffle(partial)
        n_seeds = min(len(seeds), max(1, int(self.max_peers * self.seed_share)))
        chosen = seeds[:n_seeds] + partial[: self.max_peers - n_seeds]
        if len(chosen) < self.max_peers:  # fill from whichever kind has more to give
            chosen += seeds[n_seeds: n_seeds + self.max_peers - len(chosen)]
        return chosen[: self.max_peers]

    def peer_map(self, artifact: str, host: str, wanted: set[str]) -> dict[str, list[str]]:
        """For each wanted chunk, the addresses (among the chosen peers) that hold it."""
        out: dict[str, list[str]] = {}
        for p in self.peers(artifact, host, wanted):
            for digest in (wanted if p.complete else p.chunks & wanted):
                out.setdefault(digest, []).append(p.address)
        return out
