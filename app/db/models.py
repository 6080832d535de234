"""SQLAlchemy models of conversations, their messages, hand-off tickets and feedback.

Only portable column types are used so the same models (and the migrations that mirror
them, `migrations/versions/`) serve SQLite and PostgreSQL. The closed vocabularies
(roles, statuses, outcomes...) are plain strings in the database and checked by the
repository, so adding a value needs no schema change. The order system's tables are in
`shop_models.py`, on the same `Base` (the package imports both, so its metadata is whole).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, get_args

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

ConversationStatus = Literal["bot", "handed_off", "closed"]
Role = Literal["user", "assistant", "agent", "system"]
Outcome = Literal["faq", "generated", "refused", "handoff", "queued", "greeting", "agent", "tool"]
TicketReason = Literal["requested", "anger", "repeated_question", "repeated_dont_know", "complaint"]
TicketStatus = Literal["open", "closed"]
Rating = Literal["up", "down"]

CONVERSATION_STATUSES: frozenset[str] = frozenset(get_args(ConversationStatus))
ROLES: frozenset[str] = frozenset(get_args(Role))
OUTCOMES: frozenset[str] = frozenset(get_args(Outcome))
TICKET_REASONS: frozenset[str] = frozenset(get_args(TicketReason))
TICKET_STATUSES: frozenset[str] = frozenset(get_args(TicketStatus))
RATINGS: frozenset[str] = frozenset(get_args(Rating))

ID_LENGTH = 32
"""uuid4 hex ids; caller-given ids must fit too."""
LANG_LENGTH = 2
LABEL_LENGTH = 64
"""intent, refusal_reason, customer_id."""
SHORT_LENGTH = 16
"""Statuses, roles, outcomes, sentiment labels."""

# Named constraints, so later migrations (and SQLite batch mode) can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (the only kind of datetime stored)."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """`value` in UTC; a naive datetime is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """`DateTime(timezone=True)` that always hands back aware UTC datetimes.

    SQLite keeps no offset and returns naive values; PostgreSQL returns the session's
    time zone. Normalising here means no caller ever compares naive with aware.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


class Base(DeclarativeBase):
    """Declarative base carrying the naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Conversation(Base):
    """One chat between a customer and the shop (bot, then maybe a human agent)."""

    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(
        UtcDateTime(), nullable=False, index=True, default=utcnow
    )
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False, default=utcnow)
    lang: Mapped[str | None] = mapped_column(String(LANG_LENGTH), nullable=True)
    status: Mapped[str] = mapped_column(String(SHORT_LENGTH), nullable=False, default="bot")
    customer_id: Mapped[str | None] = mapped_column(String(LABEL_LENGTH), nullable=True)
    """The verified customer, once the tools have verified one."""
    # none_as_null: clearing the state stores SQL NULL, not the JSON value `null`.
    tool_state: Mapped[dict[str, Any] | None] = mapped_column(
        JSON(none_as_null=True), nullable=True
    )
    """The tool router's slot-filling state between turns (see `app.tools.base.ToolState`)."""


class Message(Base):
    """One turn of a conversation, with what the pipeline decided about it."""

    __tablename__ = "messages"
    # The unique (conversation_id, seq) index is also the conversation_id index, and it
    # turns a lost race for the next seq into an error instead of a silent duplicate.
    __table_args__ = (
        Index("ix_messages_conversation_id_seq", "conversation_id", "seq", unique=True),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False
    )
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    role: Mapped[str] = mapped_column(String(SHORT_LENGTH), nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        UtcDateTime(), nullable=False, index=True, default=utcnow
    )
    lang: Mapped[str | None] = mapped_column(String(LANG_LENGTH), nullable=True)
    intent: Mapped[str | None] = mapped_column(String(LABEL_LENGTH), nullable=True)
    intent_confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    sentiment: Mapped[str | None] = mapped_column(String(SHORT_LENGTH), nullable=True)
    sentiment_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    anger: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    outcome: Mapped[str | None] = mapped_column(String(SHORT_LENGTH), nullable=True)
    refusal_reason: Mapped[str | None] = mapped_column(String(LABEL_LENGTH), nullable=True)
    rewritten: Mapped[str | None] = mapped_column(Text, nullable=True)
    """The standalone question used for retrieval."""
    citations: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False, default=list)
    timings: Mapped[dict[str, float]] = mapped_column(JSON, nullable=False, default=dict)
    response_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    """Total response time of an assistant turn."""
    actions: Mapped[list[dict[str, Any]] | None] = mapped_column(
        JSON(none_as_null=True), nullable=True
    )
    """What a tool did in this turn (looked an order up, opened a return...); NULL if none."""


class Ticket(Base):
    """A hand-off of a conversation to a human agent."""

    __tablename__ = "tickets"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(
        String(ID_LENGTH),
        ForeignKey("conversations.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )
    reason: Mapped[str] = mapped_column(String(32), nullable=False)
    status: Mapped[str] = mapped_column(String(SHORT_LENGTH), nullable=False, default="open")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


class Feedback(Base):
    """A customer's thumbs up or down on one message (at most one per message)."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(
        String(ID_LENGTH),
        ForeignKey("messages.id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    )
    rating: Mapped[str] = mapped_column(String(4), nullable=False)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False, default=utcnow)
