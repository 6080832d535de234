"""Chat routes: validate, hand the turn to the pipeline, shape the reply."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from fastapi import APIRouter
from sse_starlette.sse import EventSourceResponse

from app.api.deps import RATE_LIMITED, CustomerToken, PipelineDep, SettingsDep
from app.api.schemas import ChatRequest
from app.api.sse import event_stream
from app.api.turns import ERROR_RESPONSES, check_before_stream, turn_request
from app.config import Settings
from app.orchestrator import TurnRequest
from app.reply import Done, Piece, Started, TurnReply

router = APIRouter(prefix="/v1", tags=["chat"])


def _turn(body: ChatRequest, settings: Settings, token: str | None) -> TurnRequest:
    return turn_request(body.message, body.session_id, body.lang, body.filters, settings, token)


@router.post(
    "/chat", response_model=TurnReply, responses=ERROR_RESPONSES, dependencies=RATE_LIMITED
)
async def chat(
    body: ChatRequest,
    pipeline: PipelineDep,
    settings: SettingsDep,
    x_customer_token: CustomerToken = None,
) -> TurnReply:
    """One turn; the JSON reply holds the checked answer, its citations, intent, sentiment
    and hand-off, and `actions` for what a tool did. No `session_id` starts a conversation;
    an unknown one is a 404, and one bound to another customer than the token's a 403."""
    return await pipeline.reply(_turn(body, settings, x_customer_token))


@router.post("/chat/stream", responses=ERROR_RESPONSES, dependencies=RATE_LIMITED)
async def chat_stream(
    body: ChatRequest,
    pipeline: PipelineDep,
    settings: SettingsDep,
    x_customer_token: CustomerToken = None,
) -> EventSourceResponse:
    """The same turn as server-sent events: meta, token…, done, then [DONE]. Each token
    event is checked text (whole sentences that passed the citation and output checks);
    joined, they are exactly the `done` event's `answer`."""
    turn = _turn(body, settings, x_customer_token)
    await check_before_stream(pipeline, turn)  # a 503, 404 or 403 before the stream's 200

    async def events() -> AsyncIterator[dict[str, str]]:
        async for event in pipeline.events(turn):
            match event:
                case Started():
                    kind = "meta"
                    data = {"session_id": event.session_id, "message_id": event.message_id}
                case Piece():
                    kind, data = "token", {"text": event.text}
                case Done():
                    yield {"event": "done", "data": event.reply.model_dump_json()}
                    continue
            yield {"event": kind, "data": json.dumps(data, ensure_ascii=False)}

    return event_stream(events(), "/v1/chat/stream", error_event="error")
