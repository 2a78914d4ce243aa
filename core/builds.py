"""The Build: its statuses, legal transitions, queue order, pagination cursor and retry policy.

Pure logic with no I/O. The Redis store enforces exactly these rules atomically.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from enum import Enum


class BuildStatus(str, Enum):
    QUEUED = "QUEUED"
    BUILDING = "BUILDING"
    DEPLOYING = "DEPLOYING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    DEAD = "DEAD"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


S = BuildStatus
TERMINAL = frozenset({S.SUCCEEDED, S.FAILED, S.CANCELLED, S.DEAD})

# to-status -> the statuses it may be entered from
ALLOWED_FROM: dict[BuildStatus, frozenset[BuildStatus]] = {
    S.QUEUED: frozenset({S.BUILDING}),  # retry after an infrastructure fault
    S.BUILDING: frozenset({S.QUEUED}),
    S.DEPLOYING: frozenset({S.BUILDING}),
    S.SUCCEEDED: frozenset({S.DEPLOYING}),
    S.FAILED: frozenset({S.BUILDING, S.DEPLOYING}),
    S.CANCELLED: frozenset({S.QUEUED, S.BUILDING, S.DEPLOYING}),
    S.DEAD: frozenset({S.BUILDING}),
}


def can_transition(current: BuildStatus, to: BuildStatus) -> bool:
    return current in ALLOWED_FROM[to]


# --- validation of user input -------------------------------------------------------------

SHA_RE = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
BUILD_ID_RE = re.compile(r"^[0-9a-f]{32}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
MIN_PRIORITY, MAX_PRIORITY, DEFAULT_PRIORITY = 0, 9, 5


def valid_sha(sha: str) -> bool:
    return bool(SHA_RE.match(sha))


def valid_name(name: str) -> bool:
    return bool(NAME_RE.match(name))


def new_build_id() -> str:
    return uuid.uuid4().hex


# --- time -----------------------------------------------------------------------------------

def iso_ms(ms: int | None) -> str | None:
    """Milliseconds since the epoch as an RFC 3339 UTC string, e.g. 2026-11-26T15:07:48.123Z."""
    if ms is None:
        return None
    t = dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


# --- queue order: higher priority first, FIFO within a priority ----------------------------

_SEQ_BITS = 43  # 10 priorities * 2**43 stays below 2**53, exact in a Redis double score


def queue_base(priority: int) -> int:
    if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise ValueError(f"priority must be {MIN_PRIORITY}..{MAX_PRIORITY}")
    return (MAX_PRIORITY - priority) << _SEQ_BITS


def queue_score(priority: int, seq: int) -> int:
    """Lower scores are taken first; `seq` is a global arrival counter."""
    return queue_base(priority) + seq


# --- pagination: newest first, ties on createdAt broken by buildID ---------------------------

_CURSOR_RE = re.compile(r"^(\d{13}):([0-9a-f]{32})$")


def index_member(created_ms: int, build_id: str) -> str:
    """Member of a project's build index; lexical order is (createdAt, buildID)."""
    return f"{created_ms:013d}:{build_id}"


def parse_cursor(cursor: str) -> str:
    """A cursor is the index member of the oldest build on the previous page.

    It carries that build's createdAt (ms) and, to break ties, its buildID, so the next page
    starts strictly after it: nothing is skipped or shown twice. Raises ValueError if malformed.
    """
    if not _CURSOR_RE.match(cursor):
        raise ValueError("nextCursor must look like '<createdAt ms, 13 digits>:<buildID>'")
    return cursor


def page(members_newest_first: list[str], limit: int) -> tuple[list[str], str | None]:
    """Given up to limit+1 members after the cursor, the page and the next cursor."""
    items = members_newest_first[:limit]
    more = len(members_newest_first) > limit
    return items, (items[-1] if more and items else None)


def split_member(member: str) -> tuple[int, str]:
    created, build_id = member.split(":", 1)
    return int(created), build_id


# --- retries ---------------------------------------------------------------------------------

def retry_decision(retries: int, max_retries: int, backoff_s: float, backoff_max_s: float
                   ) -> tuple[BuildStatus, float]:
    """After an infrastructure fault on attempt `retries`: re-queue with backoff, or DEAD."""
    if retries + 1 > max_retries:
        return S.DEAD, 0.0
    return S.QUEUED, min(backoff_max_s, backoff_s * (2 ** retries))


def heartbeat_expired(last_heartbeat_ms: int, now_ms: int, interval_s: float, misses: int) -> bool:
    return now_ms - last_heartbeat_ms > misses * interval_s * 1000


# --- records ---------------------------------------------------------------------------------

def public_replication(row: dict[str, str]) -> dict:
    return {"region": row["region"], "replicationStatus": row["replicationStatus"],
            "bytesTransferred": int(row.get("bytesTransferred") or 0),
            "bytesSkipped": int(row.get("bytesSkipped") or 0),
            "chunksTransferred": int(row.get("chunksTransferred") or 0),
            "chunksSkipped": int(row.get("chunksSkipped") or 0),
            "retries": int(row.get("retries") or 0),
            "error": row.get("error") or None,
            "updatedAt": iso_ms(int(row["updatedAt"])) if row.get("updatedAt") else None}


def public_record(h: dict[str, str], replication: list[dict] | None = None) -> dict:
    """A build's Redis hash (and its replication rows) as the API shows it."""
    def num(key):
        v = h.get(key)
        return int(v) if v not in (None, "") else None

    artifact = None
    if h.get("artifactDigest"):
        artifact = {"digest": h["artifactDigest"], "size": num("artifactSize"), "chunks": num("artifactChunks")}
    return {
        "buildID": h["buildID"],
        "projectName": h["projectName"],
        "commitSHA": h["commitSHA"],
        "buildStatus": h["buildStatus"],
        "buildDetails": json.loads(h.get("buildDetails") or "{}"),
        "priority": num("priority"),
        "createdAt": iso_ms(num("createdAt")),
        "startedAt": iso_ms(num("startedAt")),
        "finishedAt": iso_ms(num("finishedAt")),
        "lastHeartbeat": iso_ms(num("lastHeartbeat")),
        "retries": num("retries") or 0,
        "error": h.get("error") or None,
        "exitCode": num("exitCode"),
        "logTail": h.get("logTail") or None,
        "supersededBy": h.get("supersededBy") or None,
        "artifact": artifact,
        "replication": [public_replication(r) for r in replication or []],
    }


def summary(h: dict[str, str]) -> dict:
    return {"buildID": h["buildID"], "commitSHA": h["commitSHA"],
            "buildStatus": h["buildStatus"], "createdAt": iso_ms(int(h["createdAt"]))}
