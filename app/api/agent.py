"""Human agents: open tickets, a ticket's transcript, a reply into the conversation, close."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from app.api.conversations import transcript
from app.api.deps import ApiKey, StoreDep
from app.api.errors import ApiError
from app.api.schemas import (
    AgentReply,
    CloseTicket,
    ErrorBody,
    MessageOut,
    PathId,
    TicketOut,
    TranscriptOut,
)
from app.db.repository import ConversationStore, NotFound, TicketRecord

router = APIRouter(prefix="/v1/agent", tags=["agent"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (401, 403, 404, 409, 422)
}


def _ticket(store: ConversationStore, ticket_id: str) -> TicketRecord:
    ticket = store.get_ticket(ticket_id)
    if ticket is None:
        raise ApiError(404, "ticket_not_found", f"no ticket {ticket_id}")
    return ticket


@router.get("/tickets", response_model=list[TicketOut], responses=_ERRORS)
async def list_tickets(
    _: ApiKey, store: StoreDep, status: Literal["open", "closed", "all"] = "open"
) -> list[TicketOut]:
    """Tickets, newest first (open ones by default)."""
    records = await run_in_threadpool(store.list_tickets, None if status == "all" else status)
    return [TicketOut.model_validate(t, from_attributes=True) for t in records]


@router.get("/tickets/{ticket_id}", response_model=TranscriptOut, responses=_ERRORS)
async def get_ticket(ticket_id: PathId, _: ApiKey, store: StoreDep) -> TranscriptOut:
    """The ticket's conversation with everything the customer and the bot said."""

    def read() -> TranscriptOut:
        ticket = _ticket(store, ticket_id)
        out = transcript(store, ticket.conversation_id)
        out.ticket = TicketOut.model_validate(ticket, from_attributes=True)
        return out

    return await run_in_threadpool(read)


@router.post("/tickets/{ticket_id}/reply", response_model=MessageOut, responses=_ERRORS)
async def reply(ticket_id: PathId, body: AgentReply, _: ApiKey, store: StoreDep) -> MessageOut:
    """The agent's message, added to the conversation the customer sees."""

    def write() -> MessageOut:
        ticket = _ticket(store, ticket_id)
        if ticket.status != "open":
            raise ApiError(409, "ticket_closed", f"ticket {ticket_id} is closed")
        message = store.add_message(ticket.conversation_id, "agent", body.text, outcome="agent")
        return MessageOut.model_validate(message, from_attributes=True)

    return await run_in_threadpool(write)


@router.post("/tickets/{ticket_id}/close", response_model=TicketOut, responses=_ERRORS)
async def close(
    ticket_id: PathId, _: ApiKey, store: StoreDep, body: CloseTicket | None = None
) -> TicketOut:
    """Close the ticket; the bot answers the conversation again."""
    try:
        record = await run_in_threadpool(store.close_ticket, ticket_id, body.note if body else None)
    except NotFound as exc:
        raise ApiError(404, "ticket_not_found", f"no ticket {ticket_id}") from exc
    return TicketOut.model_validate(record, from_attributes=True)
