"""The app's outermost layers: the request id, then the HTTP metrics.

Starlette wraps the whole app in its `ServerErrorMiddleware`, outside every middleware
added with `add_middleware`, and the 500 it answers for an unhandled exception goes
straight to the server: a middleware added the usual way would never see that response,
which would then carry no request id and count nowhere. `ObservedFastAPI` puts these
two layers outside it instead, so every response gets both: 2xx, errors, 429, 503,
streams and 500s alike.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observability.metrics import Metrics
from app.observability.request_id import RequestIdMiddleware

UNMATCHED = "unmatched"
"""The route label of a request that no route served: a path the app does not have (the
path itself would be an unbounded label), or one refused before routing (a body over the
limit, a bad Content-Length: its outcome says which)."""
OK = "ok"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Other methods are counted as `other`: a client can send any token as a method."""
_ERROR_BODY_BYTES = 4096  # the one error shape is far shorter; longer bodies are not read
_CODE = re.compile(r"[a-z][a-z0-9_]{0,47}")


class ObservedFastAPI(FastAPI):
    """FastAPI with `RequestIdMiddleware` and `MetricsMiddleware` around everything."""

    def __init__(self, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metrics = metrics

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        return RequestIdMiddleware(MetricsMiddleware(stack, self.metrics))


class MetricsMiddleware:
    """Pure ASGI: counts each HTTP request and times it to its last byte, by method, route
    template, status class and outcome (`ok`, or the error code of the JSON error body)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers when the app fails before its response
        error_body = bytearray()
        reading_error = False

        async def watched_send(message: Message) -> None:
            nonlocal status, reading_error
            if message["type"] == "http.response.start":
                status = int(message["status"])
                reading_error = status >= 400
            elif message["type"] == "http.response.body" and reading_error:
                error_body.extend(message.get("body", b"")[: _ERROR_BODY_BYTES - len(error_body)])
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        finally:
            method = scope["method"] if scope["method"] in METHODS else "other"
            self.metrics.observe_request(
                method,
                route_template(scope),
                status,
                OK if status < 400 else error_code(status, bytes(error_body)),
                time.perf_counter() - started,
            )


def route_template(scope: Scope) -> str:
    """The path template of the route that served the request (`/v1/sessions/{session_id}`),
    which routing left in the scope (the same dict all the way down)."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


def error_code(status: int, body: bytes) -> str:
    """`error.code` of the one error shape, else `http_<status>` (a body of another shape)."""
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, TypeError, KeyError):
        code = None
    return code if isinstance(code, str) and _CODE.fullmatch(code) else f"http_{status}"
