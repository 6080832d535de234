"""OpenAI-compatible routes: `POST /v1/chat/completions` and `GET /v1/models`.

A shop's existing OpenAI client (SDKs, chat front ends, LangChain) can talk to ShopDesk
by pointing its base URL here. A request is mapped onto the same turn as `/v1/chat`:
the last `user` message is the question, asked in the conversation `session_id` names
(a new one without it). Earlier messages, including the client's own copy of the
history and any system prompt, are not read: ShopDesk keeps each conversation's history
itself (follow-up rewriting, hand-off policy, order verification all depend on it) and
a client's copy could claim anything, so a client continues a conversation by sending
back `session_id`. Limits, rate limit, queue 503, model 502/504 and the customer token
are those of `/v1/chat`, in ShopDesk's one error shape, whose `error.message` OpenAI
clients read as the message of the exception they raise.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal

from fastapi import APIRouter
from sse_starlette.sse import EventSourceResponse

from app.api.deps import RATE_LIMITED, ContainerDep, CustomerToken, PipelineDep, SettingsDep
from app.api.errors import ApiError
from app.api.openai_schemas import (
    MODEL_ALIAS,
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    Delta,
    MessageIn,
    ModelCard,
    ModelList,
    Usage,
)
from app.api.sse import event_stream
from app.api.turns import ERROR_RESPONSES, check_before_stream, turn_request
from app.container import Container
from app.reply import Done, Piece, Started, TurnEvent, TurnReply

router = APIRouter(prefix="/v1", tags=["openai"])

_STREAM_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A `chat.completion`, or with `stream: true` server-sent "
        "`chat.completion.chunk` events ending with `data: [DONE]`.",
        "content": {"text/event-stream": {}},
    }
}


def model_id(llm_name: str) -> str:
    """The id `/v1/models` lists for the loaded model: its GGUF file name without `.gguf`."""
    return llm_name.removesuffix(".gguf")


def _served(container: Container) -> str:
    return model_id(container.llm.name)


def resolve_model(requested: str, served: str) -> str:
    """The served model for a requested id (the model's own or the alias); else a 404."""
    if requested not in (served, MODEL_ALIAS):
        raise ApiError(
            404,
            "model_not_found",
            f"no model {requested[:80]!r} here; "
            f"GET /v1/models lists {served!r} and {MODEL_ALIAS!r}",
        )
    return served


def question(messages: Sequence[MessageIn]) -> str:
    """The text of the last `user` message: what the turn answers (422 when there is no
    user message, or when an assistant message follows the last one)."""
    users = [i for i, m in enumerate(messages) if m.role == "user"]
    if not users:
        raise ApiError(422, "no_user_message", "messages must include a user message")
    if any(m.role == "assistant" for m in messages[users[-1] + 1 :]):
        raise ApiError(
            422, "no_question", "the last user message is followed by an assistant message"
        )
    return messages[users[-1]].text()


def usage(reply: TurnReply) -> Usage | None:
    """The answer's generated tokens, known when the model wrote it (not for an FAQ,
    greeting, tool or refusal before the model); the prompt is not counted."""
    generated = reply.timings_ms.get("generated_tokens")
    if generated is None:
        return None
    return Usage(prompt_tokens=None, completion_tokens=int(generated), total_tokens=None)


def _extras(reply: TurnReply) -> dict[str, Any]:
    return {
        "session_id": reply.session_id,
        "message_id": reply.message_id,
        "citations": reply.citations,
        "outcome": reply.outcome,
        "grounded": reply.grounded,
        "handoff": reply.handoff,
    }


def completion(reply: TurnReply, model: str, created: int) -> ChatCompletion:
    """A `chat.completion` for a turn's reply (what `/v1/chat` answers)."""
    return ChatCompletion(
        id=f"chatcmpl-{reply.message_id}",
        created=created,
        model=model,
        choices=[Choice(message=AssistantMessage(content=reply.answer))],
        usage=usage(reply),
        **_extras(reply),
    )


async def completion_chunks(
    events: AsyncIterator[TurnEvent], model: str, created: int, *, include_usage: bool = False
) -> AsyncIterator[ChatCompletionChunk]:
    """The turn's events as `chat.completion.chunk`s: the role (and `session_id`) first,
    one chunk per piece of checked text, then the final chunk with `finish_reason`, the
    extras and the `answer`; with `include_usage`, a last chunk with `usage` only.

    The pieces are checked text only, and joined they are exactly the answer: a client
    that only joins the deltas shows what `/v1/chat` would have answered.
    """
    chunk_id = "chatcmpl-"

    def chunk(choices: list[ChunkChoice], **fields: Any) -> ChatCompletionChunk:
        # Every field set explicitly: chunks are sent without unset fields, so that the
        # extras appear only on the chunks that carry them.
        return ChatCompletionChunk(
            id=chunk_id,
            object="chat.completion.chunk",
            created=created,
            model=model,
            choices=choices,
            **fields,
        )

    def choice(delta: Delta, finish_reason: Literal["stop"] | None = None) -> ChunkChoice:
        return ChunkChoice(index=0, delta=delta, finish_reason=finish_reason)

    async for event in events:
        match event:
            case Started():
                chunk_id = f"chatcmpl-{event.message_id}"
                yield chunk(
                    [choice(Delta(role="assistant", content=""))],
                    session_id=event.session_id,
                    message_id=event.message_id,
                )
            case Piece() if event.text:
                yield chunk([choice(Delta(content=event.text))])
            case Done():
                reply = event.reply
                yield chunk([choice(Delta(), "stop")], answer=reply.answer, **_extras(reply))
                if include_usage:
                    yield chunk([], usage=usage(reply))


def chunk_json(chunk: ChatCompletionChunk) -> str:
    return chunk.model_dump_json(exclude_unset=True)


@router.get("/models", response_model=ModelList)
async def list_models(container: ContainerDep) -> ModelList:
    """The model this server answers with, by its GGUF name and by the alias `shopdesk`."""
    return ModelList(data=[ModelCard(id=_served(container)), ModelCard(id=MODEL_ALIAS)])


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses=ERROR_RESPONSES | _STREAM_DOC,
    dependencies=RATE_LIMITED,
)
async def chat_completions(
    body: ChatCompletionRequest,
    container: ContainerDep,
    pipeline: PipelineDep,
    settings: SettingsDep,
    x_customer_token: CustomerToken = None,
) -> ChatCompletion | EventSourceResponse:
    """One ShopDesk turn in OpenAI's chat completions shape: the last user message is the
    question; `session_id` (extra) continues a conversation. The reply carries the
    checked answer and, as extra fields, `session_id`, `message_id`, `citations`,
    `outcome`, `grounded` and `handoff`."""
    model = resolve_model(body.model, _served(container))
    message = question(body.messages)
    turn = turn_request(
        message, body.session_id, body.lang, body.filters, settings, x_customer_token
    )
    created = int(time.time())
    if not body.stream:
        return completion(await pipeline.reply(turn), model, created)

    await check_before_stream(pipeline, turn)  # a 503, 404 or 403 before the stream's 200
    include_usage = body.stream_options is not None and body.stream_options.include_usage

    async def events() -> AsyncIterator[dict[str, str]]:
        async for chunk in completion_chunks(
            pipeline.events(turn), model, created, include_usage=include_usage
        ):
            yield {"data": chunk_json(chunk)}

    # A failure after the 200 is a last event in the one error shape, which OpenAI
    # clients raise as an APIError with its message.
    return event_stream(events(), "/v1/chat/completions")
