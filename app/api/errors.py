"""The one error contract: every failure is `{"error": {"code", "message"}}`.

Tracebacks go to the log with the request path; the client gets a stable code
and a sentence it can show.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.dialogue.service import SessionNotFound, SessionOfAnotherCustomer
from app.llm.base import LLMError
from app.llm.gate import QueueFullError

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """A domain failure with its HTTP status and stable code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid_request", _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(SessionNotFound)
    async def _no_session(_: Request, exc: SessionNotFound) -> JSONResponse:
        return error_response(404, "session_not_found", f"no conversation {exc}")

    @app.exception_handler(SessionOfAnotherCustomer)
    async def _not_yours(_: Request, exc: SessionOfAnotherCustomer) -> JSONResponse:
        return error_response(
            403, "session_forbidden", "this conversation belongs to another customer"
        )

    @app.exception_handler(QueueFullError)
    async def _busy(_: Request, exc: QueueFullError) -> JSONResponse:
        return error_response(
            503, "busy", str(exc), headers={"Retry-After": str(exc.retry_after_s)}
        )

    @app.exception_handler(LLMError)
    async def _llm(request: Request, exc: LLMError) -> JSONResponse:
        logger.error("model failure on %s: %s", request.url.path, exc)
        return error_response(502, "model_error", "the assistant could not answer; try again")

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s", request.url.path)
        return error_response(500, "internal_error", "something went wrong on our side")
