"""Request and response models of the OpenAI-compatible routes (`/v1/chat/completions`,
`/v1/models`).

The shapes follow OpenAI's chat completions API as far as ShopDesk can honour them, plus
a few documented extra fields: `session_id`, `lang` and `filters` in the request (as on
`/v1/chat`), and `session_id`, `message_id`, `citations`, `outcome`, `grounded` and
`handoff` in the reply (and in the stream's final chunk, with the checked `answer`).
Text follows the API's free-text rule (`app.api.schemas`). Sampling parameters are
accepted, so that ordinary clients can send them, and ignored: the shop's settings
decide how its model answers. Anything else OpenAI defines (tools, images, logprobs…)
is an unknown field, a 422 in the one error shape.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.api.schemas import (
    ID_PATTERN,
    MAX_FILTERS,
    MAX_ID_CHARS,
    Filters,
    FilterValue,
    Text,
    check_filters,
)
from app.reply import CitationOut, HandoffOut, Outcome

MAX_MESSAGES = 128
MODEL_ALIAS = "shopdesk"
"""A model id that names whatever model the server loaded, for clients' fixed configs."""
MAX_STOP_SEQUENCES = 4


_TEXT_PART = {
    "type": "object",
    "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
    "required": ["type", "text"],
}
_CONTENT_SCHEMA: dict[str, Any] = {
    "anyOf": [{"type": "string"}, {"type": "array", "items": _TEXT_PART}, {"type": "null"}]
}


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "developer", "user", "assistant"] = Field(
        description="Only the last `user` message is answered; the others are read for "
        "nothing (see the README's 'OpenAI-compatible API')."
    )
    content: Text | None = Field(
        None,
        description="A string, or a list of text parts (read as one string, joined by "
        "newlines); ShopDesk reads text only.",
        json_schema_extra=_CONTENT_SCHEMA,
    )
    name: str | None = Field(None, max_length=64, description="Accepted and ignored.")

    @field_validator("content", mode="before")
    @classmethod
    def _text_parts(cls, value: object) -> object:
        """Text parts are read as one string; anything else is refused in one sentence
        (pydantic would list each branch of the union it tried)."""
        if value is None or isinstance(value, str):
            return value
        if not isinstance(value, list):
            raise ValueError("must be a string or a list of text parts")
        texts = []
        for part in value:
            if not (isinstance(part, dict) and part.get("type") == "text"):
                raise ValueError('only text parts ({"type": "text", "text": …}) are supported')
            if not isinstance(part.get("text"), str):
                raise ValueError("a text part's text must be a string")
            texts.append(part["text"])
        return "\n".join(texts)

    def text(self) -> str:
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_usage: bool = Field(
        False, description="Send a last chunk, before [DONE], with `usage` and no choices."
    )


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: Text = Field(
        min_length=1,
        max_length=256,
        description="An id from `GET /v1/models`; others: 404.",
        examples=[MODEL_ALIAS],
    )
    messages: list[MessageIn] = Field(
        min_length=1,
        max_length=MAX_MESSAGES,
        description="The last `user` message is the question; no assistant message may follow it.",
    )
    stream: bool = Field(False, description="Server-sent `chat.completion.chunk` events.")
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1, le=1, description="One choice only.")
    # Accepted for compatibility and ignored: the shop's settings decide these.
    temperature: float | None = Field(None, ge=0, le=2, description="Ignored.")
    top_p: float | None = Field(None, ge=0, le=1, description="Ignored.")
    max_tokens: int | None = Field(None, ge=1, description="Ignored.")
    max_completion_tokens: int | None = Field(None, ge=1, description="Ignored.")
    presence_penalty: float | None = Field(None, ge=-2, le=2, description="Ignored.")
    frequency_penalty: float | None = Field(None, ge=-2, le=2, description="Ignored.")
    seed: int | None = Field(None, ge=-(2**63), lt=2**63, description="Ignored.")
    stop: str | list[str] | None = Field(
        None, max_length=MAX_STOP_SEQUENCES, description="Ignored."
    )
    user: str | None = Field(None, max_length=256, description="Ignored.")
    # ShopDesk's own, as on /v1/chat.
    session_id: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_ID_CHARS,
        pattern=ID_PATTERN,
        description="ShopDesk extra: continue the conversation a reply's `session_id` "
        "named (its history, hand-off and verification state); omitted = a new one.",
    )
    lang: Literal["zh", "en"] | None = Field(
        None, description="ShopDesk extra: reply language; default: detected."
    )
    filters: dict[str, FilterValue] | None = Field(
        None,
        max_length=MAX_FILTERS,
        description="ShopDesk extra: metadata the passages must match, as on /v1/chat.",
    )

    @field_validator("filters")
    @classmethod
    def _small_filters(cls, value: Filters) -> Filters:
        return check_filters(value)


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop"] = "stop"


class Usage(BaseModel):
    """Token counts where ShopDesk knows them: the answer's generated tokens. The prompt
    is not counted, so `prompt_tokens` and `total_tokens` are null."""

    prompt_tokens: int | None = None
    completion_tokens: int
    total_tokens: int | None = None


_SESSION_DOC = "ShopDesk extra: send it back as `session_id` to continue the conversation."
_MESSAGE_DOC = "ShopDesk extra: the reply's id, for `POST /v1/feedback`."
_CITATIONS_DOC = "ShopDesk extra: the passages the answer cites (`[n]`), as on /v1/chat."
_OUTCOME_DOC = "ShopDesk extra: how the reply was made, as on /v1/chat."
_GROUNDED_DOC = "ShopDesk extra: every sentence is supported by a cited passage or a tool."
_HANDOFF_DOC = "ShopDesk extra: set when a human will take over, as on /v1/chat."


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage | None = None
    session_id: str = Field(description=_SESSION_DOC)
    message_id: str = Field(description=_MESSAGE_DOC)
    citations: list[CitationOut] = Field(description=_CITATIONS_DOC)
    outcome: Outcome = Field(description=_OUTCOME_DOC)
    grounded: bool = Field(description=_GROUNDED_DOC)
    handoff: HandoffOut | None = Field(None, description=_HANDOFF_DOC)


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: Literal["stop"] | None = None


class ChatCompletionChunk(BaseModel):
    """One stream event. The first carries the role, `session_id` and `message_id`; the
    one with `finish_reason` carries all the extras and `answer`, the checked reply."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    session_id: str | None = Field(None, description=_SESSION_DOC)
    message_id: str | None = Field(None, description=_MESSAGE_DOC)
    citations: list[CitationOut] | None = Field(None, description=_CITATIONS_DOC)
    outcome: Outcome | None = Field(None, description=_OUTCOME_DOC)
    grounded: bool | None = Field(None, description=_GROUNDED_DOC)
    handoff: HandoffOut | None = Field(None, description=_HANDOFF_DOC)
    answer: str | None = Field(
        None,
        description="ShopDesk extra, final chunk: the reply, as /v1/chat gives it; the "
        "streamed contents joined are exactly this text.",
    )


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "shopdesk"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
