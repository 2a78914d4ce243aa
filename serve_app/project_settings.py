"""A project's build and deploy settings and its fetch allow-list, checked by the rules a
gantry.toml is checked by: the fields to store, or a 422 naming the wrong one."""
from __future__ import annotations

import json

from gantry.actors.build import buildconfig
from gantry.actors.build.sandbox import egress
from gantry.models import ProjectIn
from gantry.serve_app.errors import ApiError
from gantry.settings import Settings


def checked(body: ProjectIn, settings: Settings) -> dict:
    """The project fields for `build`, `deploy` (its hooks; its other settings apart) and
    `egressAllow`."""
    out = {}
    try:
        if body.build is not None:
            build = buildconfig.check_build(body.build.model_dump(exclude_none=True), "build",
                                            buildconfig.Bounds.of(settings))
            out["buildSettings"] = json.dumps(build)
        if body.deploy is not None:
            d = body.deploy
            hooks = d.model_dump(exclude_none=True, exclude={"metricsPort", "concurrency", "auto", "duringFreeze", "strategy"})
            out["deploySettings"] = json.dumps(buildconfig.check_deploy(hooks, "deploy"))
            out["metricsPort"] = d.metricsPort or ""
            out["concurrency"] = d.concurrency or ""
            out["autoDeploy"] = "1" if d.auto else ""
            out["duringFreeze"] = d.duringFreeze or ""
            out["defaultStrategy"] = d.strategy.model_dump_json(exclude_unset=True) if d.strategy else ""
    except buildconfig.ConfigError as e:
        raise ApiError(422, "invalid build settings", str(e))
    if body.egressAllow is not None:
        try:
            egress.parse(body.egressAllow)
        except egress.BadEntry as e:
            raise ApiError(422, "invalid egressAllow", str(e))
        out["egressAllow"] = json.dumps([e.strip() for e in body.egressAllow])
    return out
