"""gantry's Ray metrics (ray.util.metrics), exported by every Ray node's metrics agent on its
Prometheus endpoint. Created lazily in the process that records them; outside a Ray worker they
do nothing, so plain classes stay usable in unit tests."""
from __future__ import annotations

import functools
import logging

log = logging.getLogger("gantry.metrics")

DURATION_BOUNDS = [1, 5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600]
LATENCY_BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]


class _Noop:
    def __getattr__(self, _):
        return lambda *a, **kw: None


@functools.lru_cache(maxsize=None)
def _metric(kind: str, name: str, description: str, tags: tuple[str, ...], bounds: tuple = ()):
    try:
        import ray
        from ray.util import metrics
        if not ray.is_initialized():
            return _Noop()
        if kind == "histogram":
            return metrics.Histogram(name, description, boundaries=list(bounds), tag_keys=tags)
        return getattr(metrics, kind.capitalize())(name, description, tag_keys=tags)
    except Exception as e:  # metrics must never break the work they measure
        log.warning("metric %s unavailable: %s", name, e)
        return _Noop()


def queue_depth():
    return _metric("gauge", "gantry_queue_depth", "Builds waiting to start (queued or in retry backoff)", ())


def builds_by_status():
    return _metric("gauge", "gantry_builds", "Builds in each status (live, not archived)", ("status",))


def build_duration():
    return _metric("histogram", "gantry_build_duration_seconds",
                   "From start of build to artifact published or failure", ("outcome",), tuple(DURATION_BOUNDS))


def replication_bytes():
    return _metric("counter", "gantry_replication_bytes_total", "Bytes copied into a region's blob store", ("region",))


def store_repairs():
    return _metric("counter", "gantry_store_repairs_total",
                   "Chunks of a region's blob store found bad or missing and copied again from the primary",
                   ("region", "found_by"))


def replication_duration():
    return _metric("histogram", "gantry_replication_duration_seconds", "One artifact's replication to a region",
                   ("region", "outcome"), tuple(DURATION_BOUNDS))


def rollout_hosts():
    return _metric("gauge", "gantry_rollout_hosts", "Hosts of a datacenter by state", ("dc", "state"))


def host_reports():
    return _metric("counter", "gantry_host_reports_total",
                   "Host reports a coordinator took, by whether they were written to Redis", ("dc", "written"))


def api_requests():
    return _metric("counter", "gantry_api_requests_total", "API requests by route, method and status code",
                   ("route", "method", "code"))


def api_latency():
    return _metric("histogram", "gantry_api_request_seconds", "API request latency by route, method and status code",
                   ("route", "method", "code"), tuple(LATENCY_BOUNDS))


def gc_reclaimed_bytes():
    return _metric("counter", "gantry_gc_reclaimed_bytes_total", "Bytes garbage collection deleted from a region's store",
                   ("region",))


def gc_reclaimed_objects():
    return _metric("counter", "gantry_gc_reclaimed_objects_total",
                   "Objects (chunks, manifests) garbage collection deleted from a region's store", ("region",))


def gc_kept_bytes():
    return _metric("gauge", "gantry_gc_kept_bytes", "Bytes a region's store holds for kept builds and caches, "
                   "at the last sweep", ("region",))


def gc_kept_objects():
    return _metric("gauge", "gantry_gc_kept_objects", "Objects a region's store holds for kept builds and caches, "
                   "at the last sweep", ("region",))
