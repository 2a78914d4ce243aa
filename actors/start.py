"""Start every detached actor of every plane (idempotent: running ones are left alone)."""
from __future__ import annotations

from gantry.actors.build.actors import BuildMonitorActor, BuildSchedulerActor
from gantry.actors.replication.actors import RegionReplicatorActor
from gantry.actors.replication.actors import ChunkReaderActor
from gantry.actors.notify.actors import EventReadersActor
from gantry.actors.rollout.actors import AnalystActor, RolloutCoordinatorActor
from gantry.constants import (ANALYST, EVENT_READERS, MONITOR, NAMESPACE, PINNED, SCHEDULER, coordinator_name, reader_name, region_resource,
                              replicator_name)
from gantry.topology import StackConfig


def start_actors(stack_file: str) -> None:
    """Create the detached actors if they are not running (idempotent)."""
    for name, cls in ((SCHEDULER, BuildSchedulerActor), (MONITOR, BuildMonitorActor), (ANALYST, AnalystActor),
                      (EVENT_READERS, EventReadersActor)):
        cls.options(name=name, namespace=NAMESPACE, lifetime="detached", get_if_exists=True).remote(stack_file)
    stack = StackConfig.load(stack_file)
    for region in stack.regions:   # each region's store may serve others' replicas
        ChunkReaderActor.options(
            name=reader_name(region.name), namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
            resources={region_resource(region.name): PINNED}).remote(stack_file, region.name)
    for region in stack.regions:
        for dc in region.datacenters:
            RolloutCoordinatorActor.options(
                name=coordinator_name(dc), namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
                resources={region_resource(region.name): PINNED}).remote(stack_file, dc, region.name)
    for region in stack.regions[1:]:
        RegionReplicatorActor.options(
            name=replicator_name(region.name), namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
            resources={region_resource(region.name): PINNED}).remote(stack_file, region.name)
