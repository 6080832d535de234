"""Request and response models of the HTTP API; limits and input rules live here.

What every free-text field accepts (the chat message, the search query, feedback
comments, agent replies and ticket notes): any Unicode text except control characters
(C0, DEL and C1) other than tab, newline and carriage return, and except lone
surrogates (JSON can spell them as `\\ud800`, but they are not text: encoding them for
the embedder or the database fails). Filter keys are single-line names (no control
characters at all) and cannot start with `$` or `#`, which the vector store reads as
operators or reserved fields; filter values follow the free-text rule, numbers must be
finite and integers fit in 64 bits. Ids are `[A-Za-z0-9_-]`. A failure is a 422
`invalid_request` that names the field.
"""

from __future__ import annotations

import math
import re
import unicodedata
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

FilterValue = str | int | float | bool
MAX_FILTERS = 16
MAX_FILTER_KEY_CHARS = 64
MAX_FILTER_VALUE_CHARS = 256
Filters = dict[str, FilterValue] | None
ID_PATTERN = r"^[A-Za-z0-9_-]+$"
MAX_ID_CHARS = 64

# C0 controls except \t \n \r, DEL, C1 controls; and lone surrogates.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_ANY_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_INT64 = 2**63


def check_text(value: str) -> str:
    """Free text: no control characters but tab, newline and CR; no lone surrogates."""
    if _CONTROL.search(value):
        raise ValueError("control characters are not allowed (only tab, newline, CR)")
    if _SURROGATE.search(value):
        raise ValueError("not valid Unicode text (lone surrogate)")
    return value


def check_line(value: str) -> str:
    """A single-line name: free text without tab, newline or CR either."""
    if _ANY_CONTROL.search(value):
        raise ValueError("control characters are not allowed")
    return check_text(value)


def is_blank(value: str) -> bool:
    """Nothing a person could read: only whitespace and invisible format characters
    (zero-width space, BOM, joiners), which `str.strip` keeps."""
    return all(ch.isspace() or unicodedata.category(ch) == "Cf" for ch in value)


def check_not_blank(value: str) -> str:
    if is_blank(value):
        raise ValueError("must not be empty or only whitespace")
    return value


def check_utc(value: datetime) -> datetime:
    """An instant as UTC (naive = UTC already); one that leaves the calendar in UTC
    (`9999-12-31T23:00-14:00`) is refused here rather than overflowing in the database."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range once converted to UTC") from None


Text = Annotated[str, AfterValidator(check_text)]
"""Free text, multi-line allowed."""
NonBlankText = Annotated[str, AfterValidator(check_text), AfterValidator(check_not_blank)]
UtcDatetime = Annotated[datetime, AfterValidator(check_utc)]
PathId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_ID_CHARS,
        pattern=ID_PATTERN,
        description="An id as the API gave it out (letters, digits, '_' and '-').",
    ),
]


def check_filters(value: Filters) -> Filters:
    """A few short equalities on metadata the store can compare; empty = no filter."""
    if value is None:
        return None
    if len(value) > MAX_FILTERS:
        raise ValueError(f"at most {MAX_FILTERS} filters")
    for key, item in value.items():
        if not key or len(key) > MAX_FILTER_KEY_CHARS:
            raise ValueError(f"filter keys must be 1-{MAX_FILTER_KEY_CHARS} characters")
        if key[0] in "$#":
            raise ValueError(f"filter key {key[:20]!r} cannot start with '$' or '#'")
        check_line(key)
        if isinstance(item, str):
            if len(item) > MAX_FILTER_VALUE_CHARS:
                raise ValueError(
                    f"filter {key!r} is longer than {MAX_FILTER_VALUE_CHARS} characters"
                )
            check_text(item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"filter {key!r} must be a finite number")
        elif isinstance(item, int) and not isinstance(item, bool) and abs(item) >= _INT64:
            raise ValueError(f"filter {key!r} does not fit in 64 bits")
    return value or None


# Documented, not checked by pydantic: the route refuses a blank message with its own code
# (`empty_message`, `empty_query`). Clients and fuzzers read it from the OpenAPI schema.
_NOT_EMPTY: dict[str, Any] = {"minLength": 1}
_FILTERS_DOC = (
    "Metadata equalities the passages must match (kind, lang, sku, site…); "
    f"at most {MAX_FILTERS}, keys 1-{MAX_FILTER_KEY_CHARS} characters not starting "
    f"with '$' or '#', string values up to {MAX_FILTER_VALUE_CHARS} characters."
)


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: Text = Field(
        description="The shopper's message (blank or over the server's limit: a 422).",
        json_schema_extra=_NOT_EMPTY,
    )
    session_id: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_ID_CHARS,
        pattern=ID_PATTERN,
        description="Continue a conversation; omitted = a new one.",
    )
    lang: Literal["zh", "en"] | None = Field(None, description="Reply language; default: detected.")
    filters: dict[str, FilterValue] | None = Field(
        None, max_length=MAX_FILTERS, description=_FILTERS_DOC
    )

    @field_validator("filters")
    @classmethod
    def _small_filters(cls, value: Filters) -> Filters:
        return check_filters(value)


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: Text = Field(description="What to look for.", json_schema_extra=_NOT_EMPTY)
    k: int = Field(5, ge=1, le=50, description="How many passages.")
    mode: Literal["hybrid", "dense", "bm25"] | None = Field(
        None, description="Retrieval method; default: the server's setting."
    )
    filters: dict[str, FilterValue] | None = Field(
        None, max_length=MAX_FILTERS, description=_FILTERS_DOC
    )

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


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message_id: str = Field(
        min_length=1, max_length=32, pattern=ID_PATTERN, description="A bot reply's id."
    )
    rating: Literal["up", "down"]
    comment: Text | None = Field(None, max_length=1000, description="Optional free text.")


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
    refusal_reason: str | None = Field(
        None, description="Why the bot refused: weak_evidence, unsupported, blocked_… (checks)."
    )
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

    text: NonBlankText = Field(
        min_length=1, max_length=4000, description="The agent's message (not blank)."
    )


class CloseTicket(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: Text | None = Field(None, max_length=2000, description="Why it was closed.")
