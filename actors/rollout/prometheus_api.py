"""The two calls of Prometheus' HTTP API that canary analysis needs: an instant query and a range
query (https://prometheus.io/docs/prometheus/latest/querying/api/)."""
from __future__ import annotations

import httpx


class QueryFailed(Exception):
    """Prometheus could not answer (unreachable, a bad query, a timeout): the measurement is
    inconclusive, with this as its reason."""


class PrometheusAPI:
    def __init__(self, url: str, ca_file: str = "", timeout_s: float = 10.0):
        self.url = url.rstrip("/")
        self.http = httpx.Client(timeout=timeout_s, verify=ca_file or True)

    def _get(self, path: str, params: dict) -> list[dict]:
        try:
            r = self.http.get(f"{self.url}{path}", params=params)
            body = r.json()
        except (httpx.HTTPError, ValueError) as e:
            raise QueryFailed(f"Prometheus at {self.url} did not answer: {type(e).__name__}: {e}") from e
        if body.get("status") != "success":
            raise QueryFailed(f"Prometheus refused the query: {body.get('errorType')}: {body.get('error')}")
        return body["data"]["result"] if body["data"]["resultType"] in ("vector", "matrix") else \
            [{"metric": {}, "value": body["data"]["result"]}]

    def instant(self, query: str, at: float) -> list[tuple[dict, str]]:
        """Each series' (labels, value) at `at` (unix seconds); a scalar is one unlabelled series."""
        return [(s.get("metric", {}), s["value"][1]) for s in self._get("/api/v1/query", {"query": query, "time": at})]

    def range(self, query: str, start: float, end: float, step: float) -> list[tuple[dict, list[str]]]:
        """Each series' (labels, values) from `start` to `end`, one value every `step` seconds."""
        data = self._get("/api/v1/query_range", {"query": query, "start": start, "end": end, "step": step})
        return [(s.get("metric", {}), [v for _, v in s.get("values") or [s["value"]]]) for s in data]

    def graph_link(self, query: str, start: float, end: float) -> str:
        """The query in Prometheus' own graph page, over the window."""
        from urllib.parse import urlencode
        span = max(60, int(end - start) + 60)
        return f"{self.url}/graph?" + urlencode({"g0.expr": query, "g0.tab": "0", "g0.range_input": f"{span}s",
                                                 "g0.end_input": _iso(end)})


def _iso(t: float) -> str:
    import datetime
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
