"""Plain frozen records of database rows, and their conversion from ORM objects.

The store hands these out instead of ORM objects: they carry no session, cannot lazy-load
and are safe to pass between threads or to serialise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.db.models import Conversation, Feedback, Message, Ticket


@dataclass(frozen=True)
class ConversationRecord:
    """A conversation: who is answering it (`status`) and when it last changed.

    `customer_id` is the verified customer, `tool_state` the tool router's slot-filling
    state between turns (None when no tool is waiting for anything).
    """

    id: str
    created_at: datetime
    updated_at: datetime
    lang: str | None
    status: str
    customer_id: str | None
    tool_state: dict[str, Any] | None = None


@dataclass(frozen=True)
class MessageRecord:
    """One turn of a conversation with what the pipeline decided about it.

    `rewritten` is the standalone question used for retrieval; `response_ms` the total
    response time of an assistant turn, `timings` its parts; `actions` what a tool did.
    """

    id: str
    conversation_id: str
    seq: int
    role: str
    text: str
    created_at: datetime
    lang: str | None
    intent: str | None
    intent_confidence: float | None
    sentiment: str | None
    sentiment_score: float | None
    anger: bool
    outcome: str | None
    refusal_reason: str | None
    rewritten: str | None
    citations: list[dict[str, Any]]
    timings: dict[str, float]
    response_ms: float | None
    actions: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class TicketRecord:
    """A hand-off of a conversation to a human agent."""

    id: str
    conversation_id: str
    reason: str
    status: str
    created_at: datetime
    closed_at: datetime | None
    note: str | None


@dataclass(frozen=True)
class FeedbackRecord:
    """A customer's thumbs up or down on one message."""

    message_id: str
    rating: str
    comment: str | None
    created_at: datetime
    updated_at: datetime


def conversation_record(row: Conversation) -> ConversationRecord:
    return ConversationRecord(
        id=row.id,
        created_at=row.created_at,
        updated_at=row.updated_at,
        lang=row.lang,
        status=row.status,
        customer_id=row.customer_id,
        tool_state=None if row.tool_state is None else dict(row.tool_state),
    )


def message_record(row: Message) -> MessageRecord:
    return MessageRecord(
        id=row.id,
        conversation_id=row.conversation_id,
        seq=row.seq,
        role=row.role,
        text=row.text,
        created_at=row.created_at,
        lang=row.lang,
        intent=row.intent,
        intent_confidence=row.intent_confidence,
        sentiment=row.sentiment,
        sentiment_score=row.sentiment_score,
        anger=row.anger,
        outcome=row.outcome,
        refusal_reason=row.refusal_reason,
        rewritten=row.rewritten,
        citations=[dict(citation) for citation in row.citations],
        timings={name: float(ms) for name, ms in row.timings.items()},
        response_ms=row.response_ms,
        actions=[dict(action) for action in row.actions or ()],
    )


def ticket_record(row: Ticket) -> TicketRecord:
    return TicketRecord(
        id=row.id,
        conversation_id=row.conversation_id,
        reason=row.reason,
        status=row.status,
        created_at=row.created_at,
        closed_at=row.closed_at,
        note=row.note,
    )


def feedback_record(row: Feedback) -> FeedbackRecord:
    return FeedbackRecord(
        message_id=row.message_id,
        rating=row.rating,
        comment=row.comment,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
