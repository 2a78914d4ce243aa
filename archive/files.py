"""The build archive: finished builds older than a cutoff move from Redis to Parquet files in the
primary region's blob store, one file per (project, month, archive run):

    archive/builds/project=<name>/month=<YYYY-MM>/<run>.parquet

Order of a move, so that a crash anywhere loses nothing: write the file, then in one Redis
transaction leave a pointer (buildID -> file) and drop the build. A crash before the drop leaves
the build in both places; readers prefer Redis and drop repeats, and the next run moves it again.

Listing merges the Redis index with the archive by the same "<createdAt ms>:<buildID>" key, so
one `nextCursor` runs on from Redis into the archive without a gap or a repeat.
"""
from __future__ import annotations

import datetime as dt
import io
import json
import threading
import time
import uuid
from collections import OrderedDict

import pyarrow as pa
import pyarrow.parquet as pq

from gantry import cursor as listing
from gantry.state import State
from gantry.state.builds import summary_of
from gantry.statuses import BuildStatus

PREFIX = "archive/builds/"
SCHEMA = pa.schema([
    ("member", pa.string()), ("buildID", pa.string()), ("commitSHA", pa.string()),
    ("buildStatus", pa.string()), ("createdAt", pa.int64()),
    ("record", pa.string()), ("replication", pa.string()), ("log", pa.binary()),
])


def month_of(created_ms: int) -> str:
    return dt.datetime.fromtimestamp(created_ms / 1000, tz=dt.timezone.utc).strftime("%Y-%m")


def partition(project: str, month: str) -> str:
    return f"{PREFIX}project={project}/month={month}/"


class Archiver:
    def __init__(self, state: State, blobs):
        self.state, self.blobs = state, blobs

    def pinned(self, project: str) -> set[str]:
        """Builds that must stay live: what is deployed, desired or may be rolled back to."""
        keep = set(self.state.deployments.completed_builds(project))
        keep |= set(self.state.deployments.dc_current(project).values())
        keep.add(self.state.deployments.desired(project).get("buildID", ""))
        return keep

    def run(self, cutoff_ms: int, batch: int = 1000, max_file_bytes: int = 64 << 20) -> dict[str, int]:
        """Move every finished, unpinned build created before cutoff_ms but the SUCCEEDED ones (kept
        for deploys until retention expires them). Returns counts per project.
        Reads `batch` index entries at a time and writes a file per month whenever the rows held
        reach max_file_bytes (logs may be MiBs each), so memory stays bounded."""
        moved = {}
        for project in self.state.projects.names():
            keep, after = self.pinned(project), None
            pending: dict[str, list[tuple]] = {}
            held = 0
            while members := self.state.builds.index_before(project, cutoff_ms, batch, after):
                after = members[-1]
                for member in members:
                    build_id = listing.split(member)[1]
                    rec = self.state.builds.get(build_id)
                    status = BuildStatus(rec["buildStatus"]) if rec else None
                    if not rec or build_id in keep or not status.terminal or status == BuildStatus.SUCCEEDED:
                        continue   # a SUCCEEDED build stays until retention expires it (retention/)
                    held = self._hold(rec, pending, held)
                    if held >= max_file_bytes:
                        moved[project] = moved.get(project, 0) + self._write(project, pending)
                        pending, held = {}, 0
            if pending:
                moved[project] = moved.get(project, 0) + self._write(project, pending)
        return moved

    def move(self, project: str, build_ids: list[str], max_file_bytes: int = 64 << 20) -> int:
        """Move these builds (retention expired them) whatever their age; returns how many moved."""
        pending: dict[str, list[tuple]] = {}
        held = moved = 0
        for build_id in build_ids:
            rec = self.state.builds.get(build_id)
            if rec and rec.get("projectName") == project and BuildStatus(rec["buildStatus"]).terminal:
                held = self._hold(rec, pending, held)
            if held >= max_file_bytes:
                moved, pending, held = moved + self._write(project, pending), {}, 0
        return moved + (self._write(project, pending) if pending else 0)

    def _hold(self, rec: dict, pending: dict[str, list[tuple]], held: int) -> int:
        build_id = rec["buildID"]
        repl, log = self.state.replication.rows(build_id), self.state.logs.read(build_id, 0, 1 << 62)
        pending.setdefault(month_of(int(rec["createdAt"])), []).append((rec, repl, log))
        return held + len(log) + 1024

    def _write(self, project: str, by_month: dict[str, list[tuple]]) -> int:
        for month, rows in by_month.items():
            key = f"{partition(project, month)}{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.parquet"
            self.blobs.put(key, to_parquet(rows))
            self.state.archive.forget(project, [(rec, repl) for rec, repl, _ in rows], key)
        return sum(len(rows) for rows in by_month.values())


def to_parquet(rows: list[tuple[dict, list[dict], bytes]]) -> bytes:
    cols = {name: [] for name in SCHEMA.names}
    for rec, repl, log in rows:
        cols["member"].append(listing.key(int(rec["createdAt"]), rec["buildID"]))
        for k in ("buildID", "commitSHA", "buildStatus"):
            cols[k].append(rec[k])
        cols["createdAt"].append(int(rec["createdAt"]))
        cols["record"].append(json.dumps(rec))
        cols["replication"].append(json.dumps(repl))
        cols["log"].append(log)
    buf = io.BytesIO()
    pq.write_table(pa.table(cols, schema=SCHEMA), buf, compression="zstd")
    return buf.getvalue()


class ArchiveReader:
    """Reads archived builds; archive files never change, so they are cached by key."""

    def __init__(self, blobs, cache_files: int = 32, listing_ttl_s: float = 2.0):
        self.blobs, self.cache_files, self.listing_ttl_s = blobs, cache_files, listing_ttl_s
        self._tables: OrderedDict[str, pa.Table] = OrderedDict()
        self._listings: dict[str, tuple[float, list[str]]] = {}
        self._lock = threading.Lock()

    def _keys(self, project: str) -> list[str]:
        prefix = f"{PREFIX}project={project}/"
        with self._lock:
            hit = self._listings.get(prefix)
        if hit and time.monotonic() - hit[0] < self.listing_ttl_s:
            return hit[1]
        keys = self.blobs.list(prefix)
        with self._lock:
            self._listings[prefix] = (time.monotonic(), keys)
        return keys

    def _table(self, key: str) -> pa.Table:
        with self._lock:
            if key in self._tables:
                self._tables.move_to_end(key)
                return self._tables[key]
        table = pq.read_table(io.BytesIO(self.blobs.get(key)))
        with self._lock:
            self._tables[key] = table
            while len(self._tables) > self.cache_files:
                self._tables.popitem(last=False)
        return table

    def page(self, project: str, n: int, cursor: str | None) -> dict[str, dict]:
        """Up to n archived builds older than the cursor, newest first, as member -> summary."""
        by_month: dict[str, list[str]] = {}
        for key in self._keys(project):
            month = key.split("/month=", 1)[1].split("/", 1)[0]
            by_month.setdefault(month, []).append(key)
        found: dict[str, dict] = {}
        cursor_month = month_of(listing.split(cursor)[0]) if cursor else None
        for month in sorted(by_month, reverse=True):
            if cursor_month and month > cursor_month:
                continue
            for key in by_month[month]:
                for row in self._table(key).select(["member", "buildID", "commitSHA", "buildStatus", "createdAt"]).to_pylist():
                    if cursor is None or row["member"] < cursor:
                        found[row.pop("member")] = summary_of(row)
            if len(found) >= n:
                break
        return dict(sorted(found.items(), reverse=True)[:n])

    def get(self, key: str, build_id: str) -> tuple[dict, list[dict], bytes] | None:
        table = self._table(key)
        for i, bid in enumerate(table.column("buildID").to_pylist()):
            if bid == build_id:
                return (json.loads(table.column("record")[i].as_py()),
                        json.loads(table.column("replication")[i].as_py()), table.column("log")[i].as_py())
        return None


def list_page(state: State, archive: ArchiveReader, project: str, limit: int,
              cursor: str | None) -> tuple[list[dict], str | None]:
    """One page of a project's builds, newest first, across Redis and the archive."""
    members = state.builds.index(project, limit + 1, cursor)
    # Redis first: a build moved meanwhile is then in the archive
    live, newest_archived = state.builds.summaries_then_archived(members, project)
    merged = dict(live)
    if newest_archived and (len(members) <= limit or members[-1] <= newest_archived):
        merged = {**archive.page(project, limit + 1, cursor), **live}
    items, next_cursor = listing.page(sorted(merged, reverse=True), limit)
    return [merged[m] for m in items], next_cursor
