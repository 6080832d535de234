"""The one error contract: every failure is `{"error": {"code", "message"}}`.

Tracebacks go to the log with the request path; the client gets a stable code
and a sentence it can show.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.llm.base import LLMError, LLMTimeout
from app.llm.gate import QueueFullError
from app.orchestrator import SessionNotFound, SessionOfAnotherCustomer

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """A domain failure with its HTTP status and stable code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


MODEL_ERROR = "the assistant could not answer; try again"
MODEL_TIMEOUT = "the assistant took too long to answer; try again"


@dataclass(frozen=True)
class Described:
    """A failure as the client sees it: status, stable code, a sentence, headers."""

    status: int
    code: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


def describe(exc: Exception, where: str) -> Described:
    """The one mapping from a failure to what the client is told, for the exception
    handlers and for both streams (whose 200 has gone out already). Details go to the log
    (`where`: the request path), never to the client."""
    match exc:
        case ApiError():
            return Described(exc.status, exc.code, exc.message)
        case SessionNotFound():
            return Described(404, "session_not_found", f"no conversation {exc}")
        case SessionOfAnotherCustomer():
            return Described(
                403, "session_forbidden", "this conversation belongs to another customer"
            )
        case QueueFullError():
            return Described(503, "busy", str(exc), {"Retry-After": str(exc.retry_after_s)})
        case LLMTimeout():
            logger.error("model timeout on %s: %s", where, exc)
            return Described(504, "model_timeout", MODEL_TIMEOUT)
        case LLMError():
            logger.error("model failure on %s: %s", where, exc)
            return Described(502, "model_error", MODEL_ERROR)
    logger.error("unhandled error on %s", where, exc_info=exc)
    return Described(500, "internal_error", "something went wrong on our side")


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}
# FastAPI's 400 when a JSON body cannot even be decoded (bytes that are not UTF-8 inside
# a string, nesting too deep for the parser). To the client that is invalid JSON like any
# other, which is a 422 `invalid_request`.
_BODY_PARSE_ERROR = "There was an error parsing the body"
INVALID_JSON = "body is not valid JSON"


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        if err.get("type") == "json_invalid":  # loc is ("body", character offset)
            reason = err.get("ctx", {}).get("error", "cannot parse")
            parts.append(f"{INVALID_JSON} ({reason} at character {err['loc'][-1]})")
            continue
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        # a validator's ValueError reads "Value error, …": the field name says enough
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return "; ".join(parts) or "invalid request"


def install(app: FastAPI) -> None:
    async def _domain(request: Request, exc: Exception) -> JSONResponse:
        d = describe(exc, request.url.path)
        return JSONResponse(d.body(), status_code=d.status, headers=d.headers or None)

    # Starlette picks the handler of the nearest class; `describe` tells them apart.
    for kind in (ApiError, SessionNotFound, SessionOfAnotherCustomer, QueueFullError, LLMError):
        app.add_exception_handler(kind, _domain)
    app.add_exception_handler(Exception, _domain)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid_request", _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == _BODY_PARSE_ERROR:
            return error_response(422, "invalid_request", f"{INVALID_JSON} (UTF-8)")
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail))
