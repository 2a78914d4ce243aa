"""The API's retention operations, mixed into `service.Service`: pin a build, run garbage
collection now (or as a dry run), read the last pass's report, archive old builds now."""
from __future__ import annotations

from gantry import auth
from gantry.serve_app.errors import ApiError
from gantry.state import audit

MAX_GRACE_S = 365 * 24 * 3600
MAX_AGE_S = 100 * 365 * 24 * 3600


class RetentionOps:
    def op_pin_build(self, who: auth.Principal, projectName: str, buildID: str) -> dict:
        """Pinned, retention keeps a build whatever else holds."""
        return self._pin(who, projectName, buildID, True)

    def op_unpin_build(self, who: auth.Principal, projectName: str, buildID: str) -> dict:
        """Unpinned, the project's policy decides again."""
        return self._pin(who, projectName, buildID, False)

    def _pin(self, who: auth.Principal, projectName: str, buildID: str, pinned: bool) -> dict:
        project = self._project(who, projectName)
        self._build(projectName, buildID)      # 404 unless it is the project's, live or archived
        self._write_allowed(projectName, project)
        entry = audit.prepare(who.user, "build.pin" if pinned else "build.unpin", projectName, buildID)
        done, status = self.state.retention.pin(buildID, pinned, entry)
        if not done:
            raise ApiError(409, "build cannot be pinned", f"build is {status or 'archived'}; build the commit again")
        return self.op_get_build(who, projectName, buildID)

    def op_gc(self, who: auth.Principal, dryRun: bool = False, graceS: float | None = None) -> dict:
        """One garbage-collection pass now: expire what retention lets go, sweep every store."""
        self._admin(who, "garbage collection")
        if graceS is not None and (not isinstance(graceS, (int, float)) or not 0 <= graceS <= MAX_GRACE_S):
            raise ApiError(400, "invalid graceS", f"seconds from 0 to {MAX_GRACE_S}")
        if self._gc_now is None:
            raise ApiError(503, "garbage collection unavailable", "no collector in this process")
        report = self._gc_now(bool(dryRun), graceS, who.user)
        if not dryRun:
            self.state.audit.record(audit.prepare(who.user, "gc", None, None, {
                "graceS": graceS, "sweep": report["sweep"],
                "expired": {p: len(r["expired"]) for p, r in report["projects"].items() if r["expired"]}}))
        return report

    def op_gc_report(self, who: auth.Principal) -> dict:
        self._admin(who, "reading the garbage-collection report")
        report = self.state.retention.last_report()
        if report is None:
            raise ApiError(404, "no garbage-collection pass yet", "POST /admin/gc runs one now")
        return report

    def op_archive(self, who: auth.Principal, olderThanS: float | None = None) -> dict:
        self._admin(who, "archiving builds")
        age = self.settings.archive_after_s if olderThanS is None else olderThanS
        if not isinstance(age, (int, float)) or not 0 <= age <= MAX_AGE_S:
            raise ApiError(400, "invalid olderThanS", f"an age in seconds from 0 to {MAX_AGE_S}")
        moved = self._archive_now(float(age))
        self.state.audit.record(audit.prepare(who.user, "archive", None, None, {"olderThanS": age, "moved": moved}))
        return {"moved": moved}

