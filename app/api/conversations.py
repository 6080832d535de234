"""The customer's side of a conversation besides chatting: its transcript and feedback."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from app.api.deps import StoreDep
from app.api.errors import ApiError
from app.api.schemas import (
    ErrorBody,
    FeedbackRequest,
    FeedbackResponse,
    MessageOut,
    PathId,
    TicketOut,
    TranscriptOut,
)
from app.db.repository import ConversationStore, NotFound

router = APIRouter(prefix="/v1", tags=["conversations"])
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (404, 422)}


def transcript(store: ConversationStore, session_id: str) -> TranscriptOut:
    """The whole conversation, for the customer (agent replies included) and for agents."""
    conversation = store.get_conversation(session_id)
    if conversation is None:
        raise ApiError(404, "session_not_found", f"no conversation {session_id}")
    ticket = store.open_ticket_for(session_id)
    return TranscriptOut(
        session_id=session_id,
        status=conversation.status,
        messages=[
            MessageOut.model_validate(m, from_attributes=True) for m in store.history(session_id)
        ],
        ticket=None if ticket is None else TicketOut.model_validate(ticket, from_attributes=True),
    )


@router.get("/sessions/{session_id}", response_model=TranscriptOut, responses=_ERRORS)
async def get_session(session_id: PathId, store: StoreDep) -> TranscriptOut:
    """Every message of the conversation, oldest first; a human agent's replies appear here."""
    return await run_in_threadpool(transcript, store, session_id)


@router.post("/feedback", response_model=FeedbackResponse, responses=_ERRORS)
async def feedback(body: FeedbackRequest, store: StoreDep) -> FeedbackResponse:
    """Thumbs up or down on one bot reply; sending it again replaces the earlier rating."""

    def save() -> FeedbackResponse:
        message = store.get_message(body.message_id)
        if message is None or message.role != "assistant":
            raise ApiError(404, "message_not_found", f"no bot reply {body.message_id}")
        try:
            record, created = store.set_feedback(body.message_id, body.rating, body.comment)
        except NotFound as exc:
            raise ApiError(404, "message_not_found", f"no bot reply {body.message_id}") from exc
        return FeedbackResponse(
            message_id=record.message_id,
            rating=body.rating,
            comment=record.comment,
            created=created,
        )

    return await run_in_threadpool(save)
