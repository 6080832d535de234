"""Chat routes: validate, hand the turn to the ChatService, shape the reply."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from sse_starlette.sse import EventSourceResponse

from app.api.deps import DialogueDep
from app.api.schemas import ChatRequest, ChatResponse
from app.api.turns import (
    ERROR_RESPONSES,
    RATE_LIMITED,
    CustomerToken,
    SettingsDep,
    check_before_stream,
    stream_failure,
    turn_request,
)
from app.config import Settings
from app.orchestrator import TurnRequest

router = APIRouter(prefix="/v1", tags=["chat"])


def _turn(body: ChatRequest, settings: Settings, token: str | None) -> TurnRequest:
    return turn_request(body.message, body.session_id, body.lang, body.filters, settings, token)


@router.post(
    "/chat", response_model=ChatResponse, responses=ERROR_RESPONSES, dependencies=RATE_LIMITED
)
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


@router.post("/chat/stream", responses=ERROR_RESPONSES, dependencies=RATE_LIMITED)
async def chat_stream(
    body: ChatRequest,
    chat: DialogueDep,
    settings: SettingsDep,
    x_customer_token: CustomerToken = None,
) -> EventSourceResponse:
    """The same turn as server-sent events: meta, token…, done, then [DONE]."""
    turn = _turn(body, settings, x_customer_token)
    await check_before_stream(chat, turn)  # a 503, 404 or 403 before the stream's 200

    async def events() -> AsyncIterator[dict[str, str]]:
        try:
            async for event in chat.events(turn):
                yield {"event": event.kind, "data": json.dumps(event.data, ensure_ascii=False)}
        # The 200 is sent already: a failure ends the stream with an error event in the
        # one error shape (and [DONE]), never with a broken connection.
        except Exception as exc:
            yield _error_event(*stream_failure(exc))
        yield {"data": "[DONE]"}

    return EventSourceResponse(events(), ping=15)


def _error_event(code: str, message: str) -> dict[str, str]:
    return {"event": "error", "data": json.dumps({"error": {"code": code, "message": message}})}
