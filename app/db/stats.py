"""Admin statistics over the conversation database.

Counting happens in SQL; percentiles and the grouping of unanswered questions by
normalised text happen in Python, where they are clearer and portable.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    Select,
    SQLColumnExpression,
    and_,
    case,
    exists,
    func,
    select,
    true,
)
from sqlalchemy.orm import Session, aliased

from app.db.models import Conversation, Feedback, Message, Ticket

TOP_UNANSWERED = 10


@dataclass(frozen=True)
class Unanswered:
    """A question the bot said "I don't know" to, normalised, and how often it came."""

    question: str
    count: int


@dataclass(frozen=True)
class Stats:
    """How the bot is doing since a moment (or ever).

    Every count is restricted to rows created at or after `since` (all rows when None):

    - `conversations`: conversations created since then with at least one user message
      (conversations nobody wrote in are not conversations with a customer).
    - `handoffs`: those of them with at least one ticket; `handoff_rate` =
      handoffs / conversations.
    - `resolved`: those of them with no ticket and no thumbs-down on any of their
      messages; `resolution_rate` = resolved / conversations.
    - `handoffs_by_reason`: tickets created since then, counted by reason.
    - `assistant_turns`: messages with role "assistant" created since then;
      `dont_know_turns` those with outcome "refused"; `dont_know_rate` their ratio.
    - `response_ms_p50` / `response_ms_p95`: nearest-rank percentiles (an observed
      value, never an interpolated one) of `response_ms` over those assistant turns that
      have one.
    - `feedback_up` / `feedback_down`: feedback rows created since then, by current
      rating; `satisfaction` = up / (up + down).
    - `top_unanswered`: user messages created since then whose next message (seq + 1)
      is an assistant message with outcome "refused", grouped by normalised text
      (lower-case, whitespace collapsed, trailing punctuation stripped), as
      (normalised text, count), most frequent first, ties alphabetical, at most 10.

    A rate or percentile is None when there is nothing to divide by or rank.
    """

    since: datetime | None
    conversations: int
    resolved: int
    resolution_rate: float | None
    handoffs: int
    handoff_rate: float | None
    handoffs_by_reason: dict[str, int]
    assistant_turns: int
    dont_know_turns: int
    dont_know_rate: float | None
    response_ms_p50: float | None
    response_ms_p95: float | None
    feedback_up: int
    feedback_down: int
    satisfaction: float | None
    top_unanswered: list[Unanswered]


def compute_stats(session: Session, since: datetime | None) -> Stats:
    """The `Stats` of the database behind `session`, for rows created at/after `since`."""
    conversations, handoffs, resolved = _conversation_counts(session, since)
    assistant_turns, dont_know_turns = _assistant_counts(session, since)
    response_ms = [value for value in session.scalars(_response_ms(since)) if value is not None]
    ratings = dict(session.execute(_feedback_counts(since)).tuples().all())
    up, down = ratings.get("up", 0), ratings.get("down", 0)
    return Stats(
        since=since,
        conversations=conversations,
        resolved=resolved,
        resolution_rate=_ratio(resolved, conversations),
        handoffs=handoffs,
        handoff_rate=_ratio(handoffs, conversations),
        handoffs_by_reason=dict(session.execute(_tickets_by_reason(since)).tuples().all()),
        assistant_turns=assistant_turns,
        dont_know_turns=dont_know_turns,
        dont_know_rate=_ratio(dont_know_turns, assistant_turns),
        response_ms_p50=nearest_rank(response_ms, 50),
        response_ms_p95=nearest_rank(response_ms, 95),
        feedback_up=up,
        feedback_down=down,
        satisfaction=_ratio(up, up + down),
        top_unanswered=_top_unanswered(session, since),
    )


def nearest_rank(values: Sequence[float], percentile: float) -> float | None:
    """The nearest-rank percentile: the smallest value with `percentile`% at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(percentile / 100 * len(ordered)))
    return ordered[rank - 1]


_SPACES = re.compile(r"\s+")


def normalise_question(text: str) -> str:
    """Lower-case, whitespace collapsed, trailing punctuation (any script) stripped."""
    collapsed = _SPACES.sub(" ", text).strip().lower()
    end = len(collapsed)
    while end and (
        collapsed[end - 1].isspace() or unicodedata.category(collapsed[end - 1]).startswith("P")
    ):
        end -= 1
    return collapsed[:end]


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _since(column: SQLColumnExpression[datetime], since: datetime | None) -> ColumnElement[bool]:
    return column >= since if since is not None else true()


def _conversation_counts(session: Session, since: datetime | None) -> tuple[int, int, int]:
    """(conversations, handoffs, resolved) as defined on `Stats`."""
    has_user_message = exists().where(
        Message.conversation_id == Conversation.id, Message.role == "user"
    )
    has_ticket = exists().where(Ticket.conversation_id == Conversation.id)
    has_thumbs_down = exists().where(
        Message.conversation_id == Conversation.id,
        Feedback.message_id == Message.id,
        Feedback.rating == "down",
    )
    counted = select(func.count()).select_from(Conversation)
    counted = counted.where(_since(Conversation.created_at, since), has_user_message)
    conversations = session.scalar(counted) or 0
    handoffs = session.scalar(counted.where(has_ticket)) or 0
    resolved = session.scalar(counted.where(~has_ticket, ~has_thumbs_down)) or 0
    return conversations, handoffs, resolved


def _assistant_counts(session: Session, since: datetime | None) -> tuple[int, int]:
    """(assistant turns, of which refused)."""
    refused = func.coalesce(func.sum(case((Message.outcome == "refused", 1), else_=0)), 0)
    stmt = select(func.count(), refused).where(
        Message.role == "assistant", _since(Message.created_at, since)
    )
    turns, dont_know = session.execute(stmt).tuples().one()
    return int(turns), int(dont_know)


def _response_ms(since: datetime | None) -> Select[float | None]:
    return select(Message.response_ms).where(
        Message.role == "assistant",
        Message.response_ms.is_not(None),
        _since(Message.created_at, since),
    )


def _feedback_counts(since: datetime | None) -> Select[str, int]:
    return (
        select(Feedback.rating, func.count())
        .where(_since(Feedback.created_at, since))
        .group_by(Feedback.rating)
    )


def _tickets_by_reason(since: datetime | None) -> Select[str, int]:
    return (
        select(Ticket.reason, func.count())
        .where(_since(Ticket.created_at, since))
        .group_by(Ticket.reason)
    )


def _top_unanswered(session: Session, since: datetime | None) -> list[Unanswered]:
    """The most frequent questions the bot answered with "I don't know"."""
    question = aliased(Message)
    reply = aliased(Message)
    stmt = (
        select(question.text)
        .join(
            reply,
            and_(
                reply.conversation_id == question.conversation_id,
                reply.seq == question.seq + 1,
            ),
        )
        .where(
            question.role == "user",
            reply.role == "assistant",
            reply.outcome == "refused",
            _since(question.created_at, since),
        )
    )
    counts = Counter(normalise_question(text) for text in session.scalars(stmt))
    counts.pop("", None)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [Unanswered(text, n) for text, n in ranked[:TOP_UNANSWERED]]
