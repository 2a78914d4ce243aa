"""What a simulation runs: the fleet, its network, its control plane, the strategy and the faults.

Defaults are gantry's own settings (report intervals, tick, tracker and downloader tunables) and
figures measured here (`msg_cost_s` from bench/coordinator.py: 9,537 reports and 2,384 peer
queries a second on one core, so about 84 us a message; the HTTP endpoint in front is not in it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from gantry.rollout.waves import DEFAULT_STEPS

GB = 1e9


@dataclass
class Scenario:
    hosts: int = 1000
    regions: int = 3
    dcs_per_region: int = 2
    size_bytes: float = 1 * GB
    nic_bps: float = 10 * GB / 8              # each host's NIC, up and down, bytes/s
    host_caps: dict = field(default_factory=dict)   # host index -> (up, down) bytes/s, measured
    origin_bps: float = 10 * GB / 8            # each region's blob store egress
    region_link_bps: float = 10 * GB / 8       # between two regions (replication)
    rack_size: int = 40
    rack_oversub: float = 1.0                  # rack uplink = rack_size * nic / oversub
    rtt_dc_s: float = 0.0005                   # host to host, host to its region's store
    rtt_region_s: float = 0.08                 # between regions
    rtt_coord_s: float = 0.001                 # host to its coordinator
    msg_cost_s: float = 1 / (9537 + 2384)      # the coordinator's CPU per message
    chunk_bytes: float = 5 * 2 ** 20           # FastCDC: 4 MiB average, 1.25x that in practice
    max_pieces: int = 0                        # chunks grouped into at most this many pieces (0: by scale)
    piece_budget: float = 3.6e6                # hosts x pieces^2 at most, when max_pieces is 0 (a host's
                                               # every look at its pieces costs their number)
    workers: int = 4                           # downloader
    upload_slots: int = 2                      # peer server
    peer_refresh_s: float = 0.25
    endgame_s: float = 2.0
    origin_after_s: float = 60.0
    origin_slots: int = 2                      # tracker: origin chunks in flight per datacenter
    max_peers: int = 8
    p2p: bool = True                           # False: every host fetches from the origin only
    poll_s: float = 0.0                        # a waiting host looks again at least this often (0: by scale)
    tick_s: float = 0.5                        # coordinator
    step_cost_per_host_s: float = 3.5e-6       # its loop's step, a host (bench/coordinator.py busyTickMs)
    analysis_s: float = 0.0                    # each wave's canary analysis (0: none); its verdict is a pass
    busy_report_s: float = 0.5
    idle_report_s: float = 10.0
    lost_s: float = 15.0
    agent_bps: float = 369e6                   # a host's download cap besides its NIC (0: none): one host
                                               # agent downloads and verifies this fast from a peer on one
                                               # core (bench/agent.py)
    unpack_bps: float = 1 * GB                 # a host writes the release this fast (bench/agent.py: 1.19e9)
    activate_s: float = 1.0                    # switch, start and health check
    replicated: bool = False                   # every region holds the build at 0 (a dry run)
    steps: tuple = DEFAULT_STEPS
    min_healthy: float = 0.9
    bake_s: float = 30.0
    stage: str = "all"
    region_waves: list | None = None           # of region indexes; None: the first, then the rest
    fail_health: float = 0.0                   # fraction of hosts whose health check fails
    lose: float = 0.0                          # fraction lost mid-download
    slow: float = 0.0                          # fraction of hosts whose NIC is slow_factor slower
    slow_factor: float = 10.0
    store_down: tuple | None = None            # (region index, from s, for s)
    seed: int = 1
    sample_s: float = 1.0                      # timeline resolution
    max_s: float = 6 * 3600.0                  # give up after this much simulated time

    @property
    def dcs(self) -> int:
        return self.regions * self.dcs_per_region

    @property
    def lost_after_s(self) -> float:
        return max(self.lost_s, 3 * self.idle_report_s)

    def poll_every(self) -> float:
        """Small fleets poll as the daemon does; large ones rely on wake-ups, with this as a net."""
        return self.poll_s or (self.peer_refresh_s if self.hosts <= 2000 else 20.0)

    def pieces(self) -> int:
        """Chunks are simulated grouped into pieces: as many as the artifact has chunks, at most
        `max_pieces` or what keeps hosts x pieces^2 within `piece_budget` (6 pieces at 100,000
        hosts, 18 at 10,000, every chunk below a few hundred hosts)."""
        chunks = max(1, math.ceil(self.size_bytes / self.chunk_bytes))
        cap = self.max_pieces or max(6, int(math.sqrt(self.piece_budget / max(1, self.hosts))))
        return min(chunks, cap)
