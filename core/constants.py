"""Names shared by every process: the Ray namespace, the detached actors' names and the Ray
custom resources the code schedules on (ray-cluster.yaml offers the same)."""
from __future__ import annotations

NAMESPACE = "gantry"

# Detached actors, found again by name after a restart.
SCHEDULER = "build-scheduler"
MONITOR = "build-monitor"
ANALYST = "canary-analyst"
EVENT_READERS = "event-readers"   # notifications and continuous deployment
WORKER_PREFIX = "build-attempt-"   # + the attempt's lease owner


def worker_name(owner: str) -> str:
    return WORKER_PREFIX + owner


def replicator_name(region: str) -> str:
    return f"replicator-{region}"


def reader_name(region: str) -> str:
    return f"chunk-reader-{region}"


def coordinator_name(dc: str) -> str:
    return f"coordinator-{dc}"


# Ray custom resources.
HEAD_RESOURCE = "gantry-head"   # control actors and the API live on the head node
BUILDER_RESOURCE = "builder"    # marks a builder node
BUILD_CPU = "build-cpu"         # a builder's cpus for builds: each attempt holds its build's cpus...
BUILD_MEMORY = "build-memory-mb"   # ...and its memory, in MB


def region_resource(region: str) -> str:
    return f"region:{region}"


HEAD = {HEAD_RESOURCE: 0.001}   # what an actor asks for to live on the head node
PINNED = 0.001   # a sliver of a region's resource: pins to its node without limiting concurrency
