"""BodyLimit on a bare ASGI app: what the app behind it sees and what the client gets."""
import asyncio
import json

from gantry.serve_app.body_limit import LINGER_BYTES, BodyLimit, limit_for


def run(headers, chunks, app_reply=True):
    """Feed a request through BodyLimit to an app that reads the whole body and then answers 200."""
    sent, seen_by_app = [], []
    incoming = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]

    async def receive():
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    async def app(scope, receive, send):
        while True:
            message = await receive()
            seen_by_app.append(message["type"])
            if message["type"] == "http.disconnect" or not message.get("more_body"):
                break
        if app_reply:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

    scope = {"type": "http", "path": "/projects/p", "headers": headers}
    asyncio.run(BodyLimit(app)(scope, receive, send))
    return sent, seen_by_app, incoming


def test_a_chunked_body_past_the_limit_gets_413_and_the_app_sees_a_disconnect():
    limit = limit_for("/projects/p")
    chunks = [b"x" * (limit // 2)] * 3 + [b"y" * 10] * 100
    sent, seen, left = run([], chunks)
    assert sent[0]["status"] == 413 and (b"connection", b"close") in sent[0]["headers"]
    assert json.loads(sent[1]["body"]) == {"error": "request body too large", "detail": {"maxBytes": limit}}
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body", "http.response.body"]
    assert sent[2]["body"] == b"", "the app's own answer after the 413 must not go out"
    assert seen == ["http.request", "http.request", "http.disconnect"]
    assert left == [], "what the client still sends is drained before the answer ends (it would reset the 413)"


def test_the_drain_after_a_413_is_bounded():
    limit = limit_for("/projects/p")
    sent, seen, left = run([], [b"x" * limit] * 2 + [b"y" * (1 << 20)] * 40)
    assert sent[0]["status"] == 413 and sent[-1] == {"type": "http.response.body", "body": b""}
    assert len(left) >= 40 - (LINGER_BYTES >> 20) - 1, "the drain stops after LINGER_BYTES"


def test_a_content_length_over_the_limit_is_refused_before_the_app_runs():
    limit = limit_for("/projects/p")
    for value in (str(limit + 1).encode(), b"12abc"):
        sent, seen, _ = run([(b"content-length", value)], [b"x"])
        assert sent[0]["status"] == 413 and seen == []


def test_a_body_at_the_limit_goes_through():
    limit = limit_for("/projects/p")
    sent, seen, _ = run([(b"content-length", str(limit).encode())], [b"x" * (limit // 2), b"x" * (limit - limit // 2)])
    assert [m.get("status") for m in sent] == [200, None] and seen == ["http.request", "http.request"]
