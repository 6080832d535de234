"""The conversation store: every query the chat service, the agent API and the stats need.

Methods hand back plain frozen records, never ORM objects, so nothing outside this
package touches a session. Each method is one short transaction on its own session,
which makes one store safe to share between FastAPI's worker threads.

A method that writes starts with its write (an UPDATE of the conversation row, mostly):
SQLite then takes its write lock before anything is read, and PostgreSQL locks the row,
so two concurrent calls cannot both read the same "next seq" or both open a ticket.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import (
    CONVERSATION_STATUSES,
    ID_LENGTH,
    LABEL_LENGTH,
    LANG_LENGTH,
    OUTCOMES,
    RATINGS,
    ROLES,
    SHORT_LENGTH,
    TICKET_REASONS,
    TICKET_STATUSES,
    Conversation,
    Feedback,
    Message,
    Ticket,
    as_utc,
    utcnow,
)
from app.db.records import (
    ConversationRecord,
    FeedbackRecord,
    MessageRecord,
    TicketRecord,
    conversation_record,
    feedback_record,
    message_record,
    ticket_record,
)
from app.db.stats import Stats, compute_stats

__all__ = [
    "AlreadyExists",
    "ConversationRecord",
    "ConversationStore",
    "FeedbackRecord",
    "MessageRecord",
    "NotFound",
    "Stats",
    "TicketRecord",
]


# Every session is fresh, so a bulk UPDATE has no loaded objects to keep in sync.
_NO_SYNC = {"synchronize_session": False}


class NotFound(LookupError):
    """The conversation, message or ticket named does not exist."""


class AlreadyExists(ValueError):
    """A caller-given id is already taken."""


class ConversationStore:
    """Conversations, messages, tickets and feedback in one SQL database.

    `clock` is for tests that need known timestamps; it must return aware datetimes
    (naive ones are taken as UTC).
    """

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._clock = clock

    # Conversations

    def create_conversation(
        self, lang: str | None = None, conversation_id: str | None = None
    ) -> ConversationRecord:
        """Start a conversation in status "bot"; AlreadyExists if `conversation_id` is taken."""
        _check_length("lang", lang, LANG_LENGTH)
        now = self._now()
        row = Conversation(
            id=_new_id(conversation_id),
            created_at=now,
            updated_at=now,
            lang=lang,
            status="bot",
            customer_id=None,
            tool_state=None,
        )
        try:
            with self._sessions.begin() as session:
                session.add(row)
        except IntegrityError as exc:
            raise AlreadyExists(f"conversation {row.id} already exists") from exc
        return conversation_record(row)

    def get_conversation(self, conversation_id: str) -> ConversationRecord | None:
        """The conversation, or None if there is none with this id."""
        with self._sessions() as session:
            row = session.get(Conversation, conversation_id)
            return None if row is None else conversation_record(row)

    def set_status(self, conversation_id: str, status: str) -> None:
        """Set a conversation's status ("bot", "handed_off", "closed"); NotFound if unknown."""
        _check_choice("status", status, CONVERSATION_STATUSES)
        with self._sessions.begin() as session:
            _touch(session, conversation_id, self._now(), status=status)

    def set_tool_state(self, conversation_id: str, state: Mapping[str, Any] | None) -> None:
        """Keep the tool router's slot-filling state until the next turn (None clears it).

        It lives on the conversation, not in memory, so any worker can take the next turn.
        NotFound for an unknown conversation.
        """
        value = None if state is None else dict(state)
        with self._sessions.begin() as session:
            _touch(session, conversation_id, self._now(), tool_state=value)

    def set_customer(self, conversation_id: str, customer_id: str) -> None:
        """Record the customer the tools verified, so later turns need no new check.

        ValueError for an empty or over-long id, NotFound for an unknown conversation.
        """
        if not customer_id:
            raise ValueError("customer_id must not be empty")
        _check_length("customer_id", customer_id, LABEL_LENGTH)
        with self._sessions.begin() as session:
            _touch(session, conversation_id, self._now(), customer_id=customer_id)

    # Messages

    def add_message(
        self,
        conversation_id: str,
        role: str,
        text: str,
        *,
        message_id: str | None = None,
        lang: str | None = None,
        intent: str | None = None,
        intent_confidence: float | None = None,
        sentiment: str | None = None,
        sentiment_score: float | None = None,
        anger: bool = False,
        outcome: str | None = None,
        refusal_reason: str | None = None,
        rewritten: str | None = None,
        citations: Sequence[Mapping[str, Any]] | None = None,
        timings: Mapping[str, float] | None = None,
        response_ms: float | None = None,
        actions: Sequence[Mapping[str, Any]] | None = None,
    ) -> MessageRecord:
        """Append a message as the conversation's next `seq` and bump its `updated_at`.

        `actions` is what a tool did in this turn; none is stored as NULL.

        NotFound for an unknown conversation, AlreadyExists for a taken `message_id`,
        ValueError for a role or outcome outside the vocabulary or an over-long label.
        """
        _check_choice("role", role, ROLES)
        if outcome is not None:
            _check_choice("outcome", outcome, OUTCOMES)
        _check_length("lang", lang, LANG_LENGTH)
        _check_length("intent", intent, LABEL_LENGTH)
        _check_length("sentiment", sentiment, SHORT_LENGTH)
        _check_length("refusal_reason", refusal_reason, LABEL_LENGTH)
        new_id = _new_id(message_id)
        now = self._now()
        with self._sessions.begin() as session:
            _touch(session, conversation_id, now)
            if message_id is not None and session.get(Message, new_id) is not None:
                raise AlreadyExists(f"message {new_id} already exists")
            last_seq = session.scalar(
                select(func.max(Message.seq)).where(Message.conversation_id == conversation_id)
            )
            row = Message(
                id=new_id,
                conversation_id=conversation_id,
                seq=(last_seq or 0) + 1,
                role=role,
                text=text,
                created_at=now,
                lang=lang,
                intent=intent,
                intent_confidence=intent_confidence,
                sentiment=sentiment,
                sentiment_score=sentiment_score,
                anger=anger,
                outcome=outcome,
                refusal_reason=refusal_reason,
                rewritten=rewritten,
                citations=[dict(citation) for citation in citations or ()],
                timings=dict(timings or {}),
                response_ms=response_ms,
                actions=[dict(action) for action in actions] if actions else None,
            )
            session.add(row)
        return message_record(row)

    def history(self, conversation_id: str, limit: int | None = None) -> list[MessageRecord]:
        """The conversation's messages in order; with `limit`, only the last `limit`.

        Empty for an unknown conversation.
        """
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, not {limit}")
        stmt = select(Message).where(Message.conversation_id == conversation_id)
        if limit is not None:
            stmt = stmt.order_by(Message.seq.desc()).limit(limit)
        else:
            stmt = stmt.order_by(Message.seq)
        with self._sessions() as session:
            rows = list(session.scalars(stmt))
        if limit is not None:
            rows.reverse()
        return [message_record(row) for row in rows]

    def get_message(self, message_id: str) -> MessageRecord | None:
        """The message, or None if there is none with this id."""
        with self._sessions() as session:
            row = session.get(Message, message_id)
            return None if row is None else message_record(row)

    # Tickets

    def open_ticket(
        self, conversation_id: str, reason: str, note: str | None = None
    ) -> TicketRecord:
        """Hand the conversation to a human: a new open ticket, status "handed_off".

        While the conversation already has an open ticket, that ticket is returned
        unchanged (a second hand-off request is not a second ticket). NotFound for an
        unknown conversation.
        """
        _check_choice("reason", reason, TICKET_REASONS)
        now = self._now()
        with self._sessions.begin() as session:
            _touch(session, conversation_id, now, status="handed_off")
            existing = _open_ticket(session, conversation_id)
            if existing is not None:
                return ticket_record(existing)
            row = Ticket(
                id=uuid.uuid4().hex,
                conversation_id=conversation_id,
                reason=reason,
                status="open",
                created_at=now,
                closed_at=None,
                note=note,
            )
            session.add(row)
        return ticket_record(row)

    def open_ticket_for(self, conversation_id: str) -> TicketRecord | None:
        """The conversation's open ticket, if it has one."""
        with self._sessions() as session:
            row = _open_ticket(session, conversation_id)
            return None if row is None else ticket_record(row)

    def list_tickets(self, status: str | None = "open", limit: int = 100) -> list[TicketRecord]:
        """Tickets with `status` (all when None), newest first, at most `limit`."""
        if status is not None:
            _check_choice("status", status, TICKET_STATUSES)
        if limit < 0:
            raise ValueError(f"limit must be >= 0, not {limit}")
        stmt = select(Ticket).order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(limit)
        if status is not None:
            stmt = stmt.where(Ticket.status == status)
        with self._sessions() as session:
            return [ticket_record(row) for row in session.scalars(stmt)]

    def get_ticket(self, ticket_id: str) -> TicketRecord | None:
        """The ticket, or None if there is none with this id."""
        with self._sessions() as session:
            row = session.get(Ticket, ticket_id)
            return None if row is None else ticket_record(row)

    def close_ticket(self, ticket_id: str, note: str | None = None) -> TicketRecord:
        """Close an open ticket (`note` replaces the note when given) and give the
        conversation back to the bot.

        Closing a closed ticket changes nothing and returns it. The conversation goes back
        to "bot" only from "handed_off", so closing the ticket of a conversation that was
        closed meanwhile does not reopen it. NotFound for an unknown ticket.
        """
        now = self._now()
        with self._sessions.begin() as session:
            closed = _rowcount(
                session.execute(
                    update(Ticket)
                    .where(Ticket.id == ticket_id, Ticket.status == "open")
                    .values(
                        status="closed", closed_at=now, note=Ticket.note if note is None else note
                    ),
                    execution_options=_NO_SYNC,
                )
            )
            row = session.get(Ticket, ticket_id)
            if row is None:
                raise NotFound(f"no ticket {ticket_id}")
            if closed:
                session.execute(
                    update(Conversation)
                    .where(
                        Conversation.id == row.conversation_id, Conversation.status == "handed_off"
                    )
                    .values(status="bot", updated_at=now),
                    execution_options=_NO_SYNC,
                )
            return ticket_record(row)

    # Feedback

    def set_feedback(
        self, message_id: str, rating: str, comment: str | None
    ) -> tuple[FeedbackRecord, bool]:
        """Record the customer's rating of a message, replacing an earlier one.

        Returns the feedback and whether it is new. NotFound for an unknown message.
        """
        _check_choice("rating", rating, RATINGS)
        try:
            return self._upsert_feedback(message_id, rating, comment)
        except IntegrityError:
            # Another thread inserted this message's feedback between our UPDATE and
            # INSERT (possible on PostgreSQL); now the UPDATE finds it.
            return self._upsert_feedback(message_id, rating, comment)

    def _upsert_feedback(
        self, message_id: str, rating: str, comment: str | None
    ) -> tuple[FeedbackRecord, bool]:
        now = self._now()
        with self._sessions.begin() as session:
            updated = _rowcount(
                session.execute(
                    update(Feedback)
                    .where(Feedback.message_id == message_id)
                    .values(rating=rating, comment=comment, updated_at=now),
                    execution_options=_NO_SYNC,
                )
            )
            if updated:
                row = session.scalars(
                    select(Feedback).where(Feedback.message_id == message_id)
                ).one()
                return feedback_record(row), False
            if session.get(Message, message_id) is None:
                raise NotFound(f"no message {message_id}")
            row = Feedback(
                message_id=message_id,
                rating=rating,
                comment=comment,
                created_at=now,
                updated_at=now,
            )
            session.add(row)
        return feedback_record(row), True

    # Stats

    def stats(self, since: datetime | None = None) -> Stats:
        """Admin statistics for rows created at/after `since` (naive = UTC); see `Stats`."""
        since = None if since is None else as_utc(since)
        with self._sessions() as session:
            return compute_stats(session, since)

    # Helpers

    def _now(self) -> datetime:
        return as_utc(self._clock())


def _touch(session: Session, conversation_id: str, now: datetime, **changes: object) -> None:
    """Set the conversation's `updated_at` and the columns in `changes` (None included);
    NotFound if there is none.

    As the transaction's first statement, this is what takes the write lock.
    """
    values: dict[str, object] = {"updated_at": now, **changes}
    stmt = update(Conversation).where(Conversation.id == conversation_id).values(values)
    if not _rowcount(session.execute(stmt, execution_options=_NO_SYNC)):
        raise NotFound(f"no conversation {conversation_id}")


def _open_ticket(session: Session, conversation_id: str) -> Ticket | None:
    stmt = (
        select(Ticket)
        .where(Ticket.conversation_id == conversation_id, Ticket.status == "open")
        .order_by(Ticket.created_at)
        .limit(1)
    )
    return session.scalars(stmt).first()


def _rowcount(result: object) -> int:
    """Rows matched by an UPDATE (the ORM types its result as a plain `Result`)."""
    return cast(CursorResult[Any], result).rowcount


def _new_id(given: str | None) -> str:
    if given is None:
        return uuid.uuid4().hex
    if not given or len(given) > ID_LENGTH:
        raise ValueError(f"an id must be 1 to {ID_LENGTH} characters, not {given!r}")
    return given


def _check_choice(name: str, value: str, allowed: Iterable[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {sorted(allowed)}, not {value!r}")


def _check_length(name: str, value: str | None, limit: int) -> None:
    if value is not None and len(value) > limit:
        raise ValueError(f"{name} must be at most {limit} characters, not {value!r}")
