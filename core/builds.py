"""Rules about builds: valid input, IDs, queue order and the retry policy. (Statuses and their
transitions are in `gantry.statuses`.) Pure logic with no I/O."""
from __future__ import annotations

import re
import uuid

from gantry.statuses import BuildStatus


# --- validation of user input -------------------------------------------------------------

SHA_RE = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
BUILD_ID_RE = re.compile(r"^[0-9a-f]{32}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# a branch name git accepts, within the characters a cache key and a log line can carry plainly
BRANCH_RE = re.compile(r"^(?!-)(?!.*\.\.)(?!.*\.lock(/|$))(?!(.*/)?\.)(?!.*\.$)[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")
MIN_PRIORITY, MAX_PRIORITY, DEFAULT_PRIORITY = 0, 9, 5


def valid_sha(sha: str) -> bool:
    return bool(SHA_RE.match(sha))


def valid_name(name: str) -> bool:
    return bool(NAME_RE.match(name))


def new_build_id() -> str:
    return uuid.uuid4().hex


# --- queue order: higher priority first, FIFO within a priority ----------------------------

_SEQ_BITS = 43  # 10 priorities * 2**43 stays below 2**53, exact in a Redis double score


def queue_base(priority: int) -> int:
    if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise ValueError(f"priority must be {MIN_PRIORITY}..{MAX_PRIORITY}")
    return (MAX_PRIORITY - priority) << _SEQ_BITS


# --- retries ---------------------------------------------------------------------------------

def retry_decision(retries: int, max_retries: int, backoff_s: float, backoff_max_s: float
                   ) -> tuple[BuildStatus, float]:
    """After an infrastructure fault on attempt `retries`: re-queue with backoff, or DEAD."""
    if retries + 1 > max_retries:
        return BuildStatus.DEAD, 0.0
    return BuildStatus.QUEUED, min(backoff_max_s, backoff_s * (2 ** retries))


def heartbeat_expired(last_heartbeat_ms: int, now_ms: int, interval_s: float, misses: int) -> bool:
    return now_ms - last_heartbeat_ms > misses * interval_s * 1000
