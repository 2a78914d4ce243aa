"""The request body limit. It runs twice: in Serve's HTTP proxy (through
RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH, set by `gantry up`), because the proxy reads a body
into an unbounded queue as fast as the client sends it; and in the API replica, in case a proxy was
started without it. Over the limit, the answer is a 413 and the app behind sees the client go.

Before the answer ends, what the client is still sending is read and dropped for a moment
(`LINGER_S`, at most `LINGER_BYTES`), as nginx's lingering close does: a connection closed with
unread bytes is reset, and a reset throws away the 413 before a client that is still sending
reads it."""

import asyncio
import json
import time

from starlette.middleware import Middleware

from gantry.settings import Settings

_SETTINGS = Settings()
LINGER_S = 2.0
LINGER_BYTES = 16 << 20


def limit_for(path: str) -> int:
    """The API's cap (host reports go to the host gateways, which cap them themselves)."""
    return _SETTINGS.max_body_bytes


class BodyLimit:
    """A Content-Length over the limit is refused at once, before the app is called. A chunked body
    is counted as it streams: once it passes the limit, the 413 goes out (unless the app has begun
    its own answer) with `Connection: close`, and the app's next read is a disconnect, so nobody
    reads from the socket again and nothing past the limit is held."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = limit_for(scope["path"])
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            return await refuse(send, limit, receive)
        seen, started, refused = 0, False, False

        async def limited_receive():
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    refused = True
                    if not started:
                        await refuse(send, limit, receive, more=message.get("more_body", False))
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            nonlocal started
            if refused:
                return   # the 413 went out already; what the app says after it has no reader
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, limited_receive, guarded_send)


async def refuse(send, limit: int, receive=None, more: bool = True) -> None:
    """The 413, then (with `receive`, while the client may still be sending) a bounded drain
    before the answer ends and the server closes the connection."""
    body = json.dumps({"error": "request body too large", "detail": {"maxBytes": limit}}).encode()
    await send({"type": "http.response.start", "status": 413, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body, "more_body": receive is not None})
    if receive is None:
        return
    drained, until = 0, time.monotonic() + LINGER_S
    while more and drained < LINGER_BYTES:
        left = until - time.monotonic()
        if left <= 0:
            break
        try:
            message = await asyncio.wait_for(receive(), left)
        except asyncio.TimeoutError:
            break
        if message["type"] != "http.request":
            break
        drained += len(message.get("body", b""))
        more = message.get("more_body", False)
    await send({"type": "http.response.body", "body": b""})


def proxy_middlewares() -> list[Middleware]:
    """What Serve's proxy calls to get its middlewares."""
    return [Middleware(BodyLimit)]
