"""Where archived builds went: a pointer per build to the Parquet file that holds it, and each
project's newest archived listing key (so a listing knows when to read the archive)."""
from __future__ import annotations

import redis

from gantry import cursor
from gantry.state import keys


class ArchivePointers:
    def __init__(self, r: redis.Redis):
        self.r = r

    def forget(self, project: str, archived: list[tuple[dict, list[dict]]], archive_key: str) -> None:
        """Drop archived builds (each its record and replication rows) from Redis, leaving a
        pointer to the Parquet file that has them, in one transaction."""
        members = [cursor.key(int(rec["createdAt"]), rec["buildID"]) for rec, _ in archived]
        newest = max([*members, self.newest(project) or ""])
        with self.r.pipeline() as p:
            p.hset(keys.archived_newest(), project, newest)
            for (rec, repl), member in zip(archived, members):
                build_id = rec["buildID"]
                p.hset(keys.archived(project), build_id, archive_key)
                p.zrem(keys.builds(project), member)
                p.delete(keys.build(build_id), keys.repl_regions(build_id), keys.log(build_id),
                         *(keys.repl_row(build_id, row["region"]) for row in repl))
                p.hincrby(keys.statuscount(), rec["buildStatus"], -1)
            p.execute()

    def newest(self, project: str) -> str | None:
        """The listing key of the newest archived build of the project, if any."""
        return self.r.hget(keys.archived_newest(), project)

    def file_of(self, project: str, build_id: str) -> str | None:
        return self.r.hget(keys.archived(project), build_id)
