"""Request and response models of the HTTP API; limits live here."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

FilterValue = str | int | float | bool
MAX_FILTERS = 16
Filters = dict[str, FilterValue] | None


def check_filters(value: Filters) -> Filters:
    """A few short equalities; an empty mapping means no filter."""
    if value is None:
        return None
    if len(value) > MAX_FILTERS:
        raise ValueError(f"at most {MAX_FILTERS} filters")
    for key, item in value.items():
        if not key or len(key) > 64:
            raise ValueError("filter keys must be 1-64 characters")
        if isinstance(item, str) and len(item) > 256:
            raise ValueError(f"filter {key!r} is longer than 256 characters")
    return value or None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str = Field(description="The shopper's message.")
    session_id: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Continue a conversation; omitted = a new one.",
    )
    lang: Literal["zh", "en"] | None = Field(None, description="Reply language; default: detected.")
    filters: dict[str, FilterValue] | None = Field(
        None, description="Metadata equalities the passages must match (kind, lang, sku, site…)."
    )

    @field_validator("filters")
    @classmethod
    def _small_filters(cls, value: Filters) -> Filters:
        return check_filters(value)


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(description="What to look for.")
    k: int = Field(5, ge=1, le=50, description="How many passages.")
    mode: Literal["hybrid", "dense", "bm25"] | None = Field(
        None, description="Retrieval method; default: the server's setting."
    )
    filters: dict[str, FilterValue] | None = Field(None, description="Metadata equalities.")

    @field_validator("filters")
    @classmethod
    def _small_filters(cls, value: Filters) -> Filters:
        return check_filters(value)


class PassageOut(BaseModel):
    chunk_id: str
    doc_id: str
    title: str
    text: str
    score: float
    dense_score: float | None
    bm25_score: float | None


class SearchResponse(BaseModel):
    passages: list[PassageOut]
    best_dense: float | None
    timings_ms: dict[str, float]


class CitationOut(BaseModel):
    n: int
    doc_id: str
    title: str
    source: str
    snippet: str


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


class ChatResponse(BaseModel):
    session_id: str
    message_id: str
    answer: str
    citations: list[CitationOut]
    grounded: bool
    outcome: Literal["faq", "generated", "refused", "handoff", "queued", "greeting", "tool"]
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


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message_id: str = Field(
        min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$", description="A bot reply's id."
    )
    rating: Literal["up", "down"]
    comment: str | None = Field(None, max_length=1000, description="Optional free text.")


class FeedbackResponse(BaseModel):
    message_id: str
    rating: Literal["up", "down"]
    comment: str | None
    created: bool
    """False when this replaced earlier feedback on the same message."""


class MessageOut(BaseModel):
    id: str
    seq: int
    role: str
    text: str
    created_at: datetime
    intent: str | None
    sentiment: str | None
    outcome: str | None
    citations: list[dict[str, Any]]


class TicketOut(BaseModel):
    id: str
    conversation_id: str
    reason: str
    status: str
    created_at: datetime
    closed_at: datetime | None
    note: str | None


class TranscriptOut(BaseModel):
    session_id: str
    status: str
    messages: list[MessageOut]
    ticket: TicketOut | None = None


class AgentReply(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=4000, description="The agent's message.")


class CloseTicket(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(None, max_length=2000)
