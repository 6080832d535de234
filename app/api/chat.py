"""Chat routes: validate, hand the turn to the ChatService, shape the reply."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from app.api.deps import DialogueDep
from app.api.errors import MODEL_ERROR, MODEL_TIMEOUT, ApiError
from app.api.ratelimit import rate_limit
from app.api.schemas import ChatRequest, ChatResponse, ErrorBody, is_blank
from app.config import Settings
from app.dialogue.service import SessionNotFound, check_owner
from app.llm.base import LLMError, LLMTimeout
from app.llm.gate import QueueFullError
from app.orchestrator import TurnRequest
from app.tools.identity import InvalidToken, verify_token

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["chat"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (401, 403, 404, 413, 422, 429, 502, 503, 504)
}


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(_settings)]


CustomerToken = Annotated[
    str | None,
    Header(
        alias="X-Customer-Token",
        description="Signed by the shop's site for a logged-in customer (see `shopdesk token`).",
    ),
]


def _turn(body: ChatRequest, settings: Settings, token: str | None) -> TurnRequest:
    message = body.message.strip()
    if is_blank(message):
        raise ApiError(422, "empty_message", "message must not be empty")
    limit = settings.server.max_message_chars
    if len(message) > limit:
        raise ApiError(422, "message_too_long", f"message is longer than {limit} characters")
    return TurnRequest(
        message, body.session_id, body.lang, body.filters, _customer(token, settings)
    )


def _customer(token: str | None, settings: Settings) -> str | None:
    """The customer a valid token names; a token that does not verify is a 401."""
    if token is None:
        return None
    secret = settings.tools.customer_token_secret
    if secret is None:
        raise ApiError(401, "invalid_customer_token", "customer tokens are not enabled here")
    try:
        return verify_token(token, secret.get_secret_value())
    except InvalidToken as exc:
        raise ApiError(401, "invalid_customer_token", f"customer token rejected: {exc}") from None


# Both chat routes spend the client's rate-limit token first, before any other work.
_LIMITED = [Depends(rate_limit)]


@router.post("/chat", response_model=ChatResponse, responses=_ERRORS, dependencies=_LIMITED)
async def chat(
    body: ChatRequest,
    chat: DialogueDep,
    settings: SettingsDep,
    x_customer_token: CustomerToken = None,
) -> dict[str, Any]:
    """One turn; the JSON reply holds the checked answer, its citations, intent, sentiment
    and hand-off, and `actions` for what a tool did. No `session_id` starts a conversation;
    an unknown one is a 404, and one bound to another customer than the token's a 403."""
    return await chat.reply(_turn(body, settings, x_customer_token))


@router.post("/chat/stream", responses=_ERRORS, dependencies=_LIMITED)
async def chat_stream(
    body: ChatRequest,
    chat: DialogueDep,
    settings: SettingsDep,
    x_customer_token: CustomerToken = None,
) -> EventSourceResponse:
    """The same turn as server-sent events: meta, token…, done, then [DONE]."""
    turn = _turn(body, settings, x_customer_token)
    chat.gate.check()  # a 503 must come before the stream's 200 has been sent
    if body.session_id is not None:  # and so must a 404
        found = await run_in_threadpool(chat.store.get_conversation, body.session_id)
        if found is None:
            raise SessionNotFound(body.session_id)
        check_owner(found, turn.customer_id)

    async def events() -> AsyncIterator[dict[str, str]]:
        try:
            async for event in chat.events(turn):
                yield {"event": event.kind, "data": json.dumps(event.data, ensure_ascii=False)}
        # The 200 is sent already: a failure ends the stream with an error event in the
        # one error shape (and [DONE]), never with a broken connection.
        except QueueFullError as exc:
            yield _error_event("busy", str(exc))
        except LLMTimeout as exc:
            logger.error("model timeout on the stream: %s", exc)
            yield _error_event("model_timeout", MODEL_TIMEOUT)
        except LLMError as exc:
            logger.error("model failure on the stream: %s", exc)
            yield _error_event("model_error", MODEL_ERROR)
        except Exception:
            logger.exception("unhandled error on the stream")
            yield _error_event("internal_error", "something went wrong on our side")
        yield {"data": "[DONE]"}

    return EventSourceResponse(events(), ping=15)


def _error_event(code: str, message: str) -> dict[str, str]:
    return {"event": "error", "data": json.dumps({"error": {"code": code, "message": message}})}
