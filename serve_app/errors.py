"""API errors: what a caller did wrong (or why we cannot answer now), as JSON {"error", "detail"}."""
from __future__ import annotations

from pydantic import BaseModel, ValidationError

from gantry import builds as rules


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail=None, headers: dict | None = None):
        self.status, self.error, self.detail, self.headers = status, error, detail, headers or {}


def problems(errors) -> list[dict]:
    """pydantic's validation errors as the API shows them."""
    return [{"loc": list(err.get("loc", [])), "msg": err.get("msg")} for err in errors]


def parse_body(model: type[BaseModel], body) -> BaseModel:
    """A request body as `model`, or 422 naming what is wrong."""
    if isinstance(body, model):
        return body
    try:
        return model.model_validate(body if body is not None else {})
    except ValidationError as e:
        raise ApiError(422, "invalid request", problems(e.errors()))


def check_name(name: str) -> None:
    if not rules.valid_name(name):
        raise ApiError(400, "invalid project name",
                       "lowercase letters, digits, '.', '_' and '-', starting with a letter or digit, at most 63")


def check_id(value: str, what: str) -> None:
    if not rules.BUILD_ID_RE.match(value):
        raise ApiError(400, f"invalid {what}", "32 lowercase hexadecimal characters")
