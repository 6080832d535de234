"""The request body limit, enforced on the bytes as they arrive.

A Content-Length over the limit is refused before anything is read. A body sent
without one (chunked transfer encoding) has no size to check up front, so every
`http.request` message is counted and, once the count passes the limit, the app's
read raises `BodyTooLarge`: FastAPI's body parsing lets Starlette HTTP exceptions
through, so the app's handler answers 413 in the one error shape; should the
exception escape some other reader, this middleware answers it itself. Nothing past
the limit is kept in memory, and the 413 closes the connection. A few paths (the
documents upload) take a larger limit of their own (`larger`).
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import error_response

# Sent with the 413: the server then closes the connection instead of taking in (and
# discarding) the rest of a body that a client could keep sending for ever.
_CLOSE = {"Connection": "close"}
_CLOSE_RAW = (b"connection", b"close")


class BodyTooLarge(HTTPException):
    """The body went past the limit while it was being read."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over {limit} bytes")


class BodyLimitMiddleware:
    """Pure ASGI: a 413 for any HTTP request whose body is larger than `max_bytes`
    (or than `larger[path]` on the paths named there)."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, larger: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.larger = dict(larger or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.larger.get(scope["path"], self.max_bytes)
        declared = _content_length(scope)
        if declared == -1:
            await error_response(400, "bad_request", "Content-Length is not a number")(
                scope, receive, send
            )
            return
        if declared is not None and declared > limit:
            await self._too_large(scope, receive, send, limit)
            return

        seen = 0
        over = False
        started = False

        async def counted_receive() -> Message:
            nonlocal seen, over
            if over:
                raise BodyTooLarge(limit)
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    over = True
                    raise BodyTooLarge(limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if over:  # the app's own 413 (its handler rendered BodyTooLarge)
                    message = {**message, "headers": [*message.get("headers", []), _CLOSE_RAW]}
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge:
            if started:  # too late for a status code; the server closes the connection
                raise
            await self._too_large(scope, receive, send, limit)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = error_response(
            413, "payload_too_large", f"request body over {limit} bytes", _CLOSE
        )
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    """The declared body size, None when absent, -1 when it is not a number."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isascii() and text.isdigit() else -1
    return None
