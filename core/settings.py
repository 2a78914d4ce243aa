"""Tunables, each overridable by an environment variable GANTRY_<NAME> (pydantic-settings).

Each process builds its own `Settings()` when it starts, so a process started with a different
environment (a test stack, a Ray node) sees its own values.
"""
from __future__ import annotations

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gantry.uids import UidRange

GiB = 1 << 30
MiB = 1 << 20


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GANTRY_", frozen=True, extra="ignore")

    heartbeat_s: float = 60.0          # worker renews lastHeartbeat this often
    heartbeat_misses: int = 3          # a build is lost after this many missed heartbeats
    worker_start_s: float = 120.0      # ... or when its leased attempt has not begun within this
    max_retries: int = 3               # infrastructure retries before DEAD
    retry_backoff_s: float = 5.0       # first retry delay; doubles per retry
    retry_backoff_max_s: float = 300.0
    cancel_poll_s: float = 0.5         # how often a running build checks for cancel
    build_timeout_s: float = 900.0     # default when gantry.toml names none
    build_timeout_max_s: float = 3600.0
    build_memory_bytes: int = 4 * GiB
    build_pids: int = 512
    build_cpus: float = 1.0            # a build that names no cpus (and no memoryMB) gets these
    build_cpus_max: float = 64.0       # what a project or gantry.toml may ask for, at most
    build_memory_max_mb: int = 256 * 1024
    build_backfill_s: float = 60.0     # smaller builds may pass one that fits nowhere yet for this long
    build_oversize_wait_s: float = 120.0  # a build bigger than every builder fails after this long
    build_file_bytes: int = 16 * GiB   # RLIMIT_FSIZE: largest single file a build may write
    max_source_bytes: int = 2 * GiB
    max_artifact_bytes: int = 10 * GiB  # apparent size of an output's files, sparse ones in full
    max_artifact_files: int = 1_000_000
    git_timeout_s: float = 300.0
    log_max_bytes: int = 16 * MiB
    build_uid_base: int = 600_000       # each concurrent build runs as its own uid from this range...
    build_uid_count: int = 1_000        # ...of this many, which no account may use
    uid_lock_dir: str = "/run/gantry/build-uids"   # a lease per uid, shared by every stack on the machine
    scheduler_poll_s: float = 0.5
    reconcile_s: float = 10.0           # how often the scheduler kills attempt actors that hold no lease
    node_suspect_s: float = 30.0        # no attempt is placed on a node where one just died, for this long
    max_body_bytes: int = 64 * 1024
    max_host_report_bytes: int = 1 * MiB   # a body at a host gateway (a 10 GB artifact's bitfield is under 1 KB)
    chunk_avg_bytes: int = 4 * MiB      # FastCDC avg_size; chunks average avg + avg/4 (pyfastcdc caps it at 4 MiB)
    upload_concurrency: int = 4         # chunk uploads in flight from a build
    replication_window: int = 4         # chunks in flight per region replicator (backpressure)
    replication_fanout: int = 2         # copies a region's store serves to other regions at once (replica_sources):
                                        # 1 where a store's egress is no faster than a link between regions
    replication_give_up_s: float = 24 * 3600.0   # a region's job retries this long before it fails
    replication_backoff_s: float = 2.0           # first retry delay; doubles per retry...
    replication_backoff_max_s: float = 60.0      # ...up to this
    scrub_interval_s: float = 6 * 3600.0          # a region's store is re-verified this often...
    scrub_chunks_per_s: float = 20.0              # ...reading at most this many chunks a second
    coordinator_tick_s: float = 0.5     # a coordinator's loop (it also wakes on every desired-state change)
    replicator_tick_s: float = 0.5      # a region replicator looks for due jobs this often
    cgroup_root: str = "/sys/fs/cgroup"  # where cgroup v2 is mounted (tests point it elsewhere)
    prediction_max_hosts: int = 200     # a fleet larger than this is simulated as a sample of it, scaled (a few s)
    prediction_wall_s: float = 10.0     # a prediction that takes longer than this stops and says so
    stage_timeout_s: float = 600.0     # a host that has not staged a build this long after its datacenter began...
    stage_min_mbps: float = 10.0        # ...plus the artifact's size at this rate, is FAILED for its wave
    peer_busy_budget_s: float = 10.0    # a peer that never served a host and answers it only 503 this long is reported
    peer_distrust_s: float = 60.0       # a reported peer's claims count for nothing this long (a 404: doubling)
    host_lost_s: float = 15.0           # a host silent this long is marked lost (never before 3 idle reports)
    host_idle_report_s: float = 10.0    # an idle host reports this often...
    host_busy_report_s: float = 0.5     # ...a moving one this often (its coordinator tells it which)
    host_rate_per_s: float = 50.0       # requests per host at its coordinator's endpoint (token bucket)
    host_rate_burst: float = 200.0
    rate_user_per_s: float = 20.0       # API requests per user (token bucket; 0 = no limit)
    rate_user_burst: float = 200.0
    rate_project_per_s: float = 5.0     # writes per project: builds, cancels, deploys, ops
    rate_project_burst: float = 60.0
    archive_after_s: float = 30 * 24 * 3600.0   # finished builds older than this move to Parquet
    archive_interval_s: float = 3600.0
    gc_interval_s: float = 6 * 3600.0   # a garbage-collection pass (retention, then mark and sweep) this often
    gc_grace_s: float = 3600.0          # an object written this recently is never swept
    gc_drain_s: float = 600.0           # a sweep waits this long for publishes and cache saves in flight
    gc_writer_lease_s: float = 60.0     # a publish's fence lease (renewed), so a crashed one blocks no sweep for long
    prometheus_scrape_s: float = 15.0   # the stack's Prometheus scrapes the apps this often (gantry's own: 15 s or more)
    analyst_tick_s: float = 1.0         # canary analysis looks for intervals due this often
    notify_tick_s: float = 0.5          # notifications and continuous deployment read new events this often
    notify_backoff_max_s: float = 30.0  # a destination that fails is tried again after 1, 2, 4 ... s, at most this
    metrics_interval_s: float = 5.0     # how often gauges (queue depth, builds by status) refresh

    @property
    def build_uids(self) -> UidRange:
        return UidRange(self.build_uid_base, self.build_uid_count)

    @field_validator("*", mode="before")
    @classmethod
    def _numbers(cls, v, info):
        """Whole numbers may be written "1e9" or "268435456.0" too."""
        if isinstance(v, str) and cls.model_fields[info.field_name].annotation in (int, "int"):
            return int(float(v))
        return v
