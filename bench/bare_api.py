"""The baseline for bench/api.py: the same list route, a bare FastAPI app under uvicorn, over the
same Redis with the same client (gantry.state), served over TLS with the stack's certificate.
No auth, no rate limits, no Ray: what a page of builds costs on this machine at the least.

    BENCH_REDIS_URL=... uvicorn --app-dir bench bare_api:app --host 127.0.0.1 --port P [--ssl-*]
"""
from __future__ import annotations

import os

from fastapi import FastAPI

from gantry.clock import iso_ms
from gantry.state import State

state = State(os.environ["BENCH_REDIS_URL"])
app = FastAPI()


@app.get("/projects/{project}/builds")
def builds(project: str, limit: int = 20) -> dict:
    page, cursor = state.builds.page(project, limit, None)
    return {"builds": [{"buildID": b["buildID"], "commitSHA": b["commitSHA"], "buildStatus": b["buildStatus"],
                        "createdAt": iso_ms(int(b["createdAt"]))} for b in page], "nextCursor": cursor, "limit": limit}
