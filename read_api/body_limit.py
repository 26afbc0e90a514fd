"""Request bodies larger than `MAX_BODY_BYTES` are refused with 413 before they are read whole.

The largest legitimate body is a contact edit or a message request of a few kilobytes; without a
limit, one client could make the API buffer megabytes per request. A declared Content-Length over
the limit is refused at once; a chunked body is counted as it arrives and refused when it goes
over.
"""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 64 * 1024
# Provider webhooks post batches (SendGrid up to thousands of events, Meta up to 1,000 updates).
WEBHOOK_MAX_BODY_BYTES = 8 * 1024 * 1024


def limit_for(path: str, default: int) -> int:
    """The provider webhook routes (SPEC §7.5) take batches; everything else is small."""
    if path.startswith("/v1/orgs/") and "/webhooks/" in path:
        return max(default, WEBHOOK_MAX_BODY_BYTES)
    return default


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Pure ASGI middleware: 413 `{"detail": ...}` for a body over the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = limit_for(scope.get("path", ""), self.max_bytes)
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await self._refuse(send, "Content-Length is not a number", max_bytes)
                    return
                if declared > max_bytes:
                    await self._refuse(send, f"the body is {declared} bytes", max_bytes)
                    return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > max_bytes:
                    raise BodyTooLarge
            return message

        async def tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, tracking)
        except BodyTooLarge:
            if not started:
                await self._refuse(send, f"the body is over {max_bytes} bytes", max_bytes)

    async def _refuse(self, send: Send, why: str, max_bytes: int) -> None:
        body = orjson.dumps({"detail": f"{why}; the limit is {max_bytes} bytes"})
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
