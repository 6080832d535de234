"""The one typed reply of a turn: what the `done` event carries, what `/v1/chat` returns and
what `/v1/chat/completions` maps from.

It is a pydantic model so that the HTTP layer serves it as it is (no second copy of its
fields) and every consumer reads attributes, not string keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from app.domain import Citation

Outcome = Literal["faq", "generated", "refused", "handoff", "queued", "greeting", "tool"]
"""How a turn was answered: from an FAQ entry, by the model, refused (no evidence), handed
to a person, waiting for a person, greeted, or by a shop tool (orders, returns, catalogue)."""


class CitationOut(BaseModel):
    n: int
    doc_id: str
    title: str
    source: str
    snippet: str

    @classmethod
    def of(cls, citation: Citation) -> CitationOut:
        return cls(**vars(citation))


class IntentOut(BaseModel):
    label: str
    confidence: float


class SentimentOut(BaseModel):
    label: Literal["negative", "neutral", "positive"]
    score: float
    anger: bool
    cues: list[str]


class HandoffOut(BaseModel):
    ticket_id: str
    reason: str


class TurnReply(BaseModel):
    """One turn's reply: the checked answer, exactly the text the shopper was streamed."""

    session_id: str
    message_id: str
    answer: str
    citations: list[CitationOut]
    grounded: bool
    outcome: Outcome
    lang: Literal["zh", "en"]
    timings_ms: dict[str, float]
    intent: IntentOut | None = None
    sentiment: SentimentOut | None = None
    handoff: HandoffOut | None = None
    rewritten: str | None = Field(None, description="The standalone question used, if rewritten.")
    actions: list[dict[str, Any]] = Field(
        default_factory=list,
        description='What a tool did: [{"type": "return_created", "return_id": …}, …].',
    )


@dataclass(frozen=True)
class Started:
    """The turn's ids, sent before anything else."""

    session_id: str
    message_id: str


@dataclass(frozen=True)
class Piece:
    """Text the shopper may see now: it passed every check that the final answer passes."""

    text: str


@dataclass(frozen=True)
class Done:
    reply: TurnReply


TurnEvent = Started | Piece | Done
"""What a turn emits, in order: Started, Piece…, Done."""
