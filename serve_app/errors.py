"""API errors: what a caller did wrong (or why we cannot answer now), as JSON {"error", "detail"}."""
from __future__ import annotations


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail=None, headers: dict | None = None):
        self.status, self.error, self.detail, self.headers = status, error, detail, headers or {}


def problems(errors) -> list[dict]:
    """pydantic's validation errors as the API shows them."""
    return [{"loc": list(err.get("loc", [])), "msg": err.get("msg")} for err in errors]
