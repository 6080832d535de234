"""A request id on every response and on every log line written while the request runs.

The id a client or a proxy sends in `X-Request-ID` is kept when it is short and made of
safe characters, so that one id follows a request through the proxy's log and ours;
anything else is replaced by a new one. An id that the privacy mask would change (a
phone or card number sent as an "id") is replaced too: log lines carry the id as it is.

The id lives in a context variable for the duration of the request. Everything the
request runs in the event loop, in Starlette's thread pool and in the stream's task
group sees it (all copy the context), and so do uvicorn's access lines, which are
written from inside the response's `send`.
"""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.privacy import mask_pii

HEADER = "X-Request-ID"
_HEADER_RAW = HEADER.lower().encode("latin-1")
MAX_LENGTH = 64
NO_REQUEST = "-"
"""A log record's `request_id` when it was written outside any request."""
_SAFE = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_LENGTH - 1}}}")

_current: ContextVar[str | None] = ContextVar("shopdesk_request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request being served here, None outside one (start-up, CLI)."""
    return _current.get()


def new_request_id() -> str:
    return uuid.uuid4().hex


def accept_request_id(value: str | None) -> str | None:
    """`value` when it can be used as it is: 1 to 64 of `[A-Za-z0-9._-]`, starting with a
    letter or digit, and nothing in it that looks like personal data."""
    if value is None or not _SAFE.fullmatch(value):
        return None
    return value if mask_pii(value) == value else None


class RequestIdMiddleware:
    """Pure ASGI: takes or makes the request id, holds it in the context variable while the
    app runs, and puts it in the `X-Request-ID` header of whatever response goes out."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = accept_request_id(_incoming(scope)) or new_request_id()
        header = (_HEADER_RAW, request_id.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != _HEADER_RAW]
                message = {**message, "headers": [*headers, header]}
            await send(message)

        token = _current.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _current.reset(token)


def _incoming(scope: Scope) -> str | None:
    """The first `X-Request-ID` the request carries."""
    for name, value in scope["headers"]:
        if name == _HEADER_RAW:
            text: str = value.decode("latin-1")
            return text.strip()
    return None


class RequestIdFilter(logging.Filter):
    """Sets `record.request_id` (`NO_REQUEST` outside a request); never drops a record.

    A filter on the handlers, like the privacy mask: a logger's filters never see the
    records its children propagate to it. An id the record already has (`extra=`, or a
    record handed over from another thread) is kept.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) in (None, NO_REQUEST):
            record.request_id = _current.get() or NO_REQUEST
        return True
