"""One chat turn, as a stream of events that the JSON route, the SSE route and the CLI share.

meta (ids) → token… (the model's text as it is generated, or the direct
answer in one piece) → done (the checked answer with its citations).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.concurrency import run_in_threadpool

from app.domain import Citation, Filters, Lang
from app.llm.base import LLM
from app.llm.gate import GenerationGate, stream_in_thread
from app.rag.answer import AnswerResult, AnswerService


@dataclass
class TurnRequest:
    message: str
    session_id: str | None = None
    lang: Lang | None = None
    filters: Filters | None = None
    customer_id: str | None = None
    """Set only from a verified customer token."""


@dataclass
class TurnEvent:
    kind: Literal["meta", "token", "done"]
    data: dict[str, Any]


@dataclass
class AnsweredTurn:
    """Filled in by `ChatService.answer` while it streams."""

    result: AnswerResult | None = None
    lang: Lang = "en"
    timings_ms: dict[str, float] = field(default_factory=dict)

    def checked(self) -> AnswerResult:
        if self.result is None:
            raise RuntimeError("the answer stream was not consumed to the end")
        return self.result


@dataclass
class TurnReply:
    session_id: str
    message_id: str
    answer: str
    citations: list[Citation]
    grounded: bool
    outcome: str
    lang: Lang
    timings_ms: dict[str, float] = field(default_factory=dict)
    intent: dict[str, Any] | None = None
    sentiment: dict[str, Any] | None = None
    handoff: dict[str, str] | None = None
    rewritten: str | None = None
    actions: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "message_id": self.message_id,
            "answer": self.answer,
            "citations": [c.__dict__ for c in self.citations],
            "grounded": self.grounded,
            "outcome": self.outcome,
            "lang": self.lang,
            "timings_ms": {k: round(v, 1) for k, v in self.timings_ms.items()},
            "intent": self.intent,
            "sentiment": self.sentiment,
            "handoff": self.handoff,
            "rewritten": self.rewritten,
            "actions": self.actions,
        }


class ChatService:
    def __init__(self, answers: AnswerService, llm: LLM, gate: GenerationGate) -> None:
        self._answers = answers
        self._llm = llm
        self._gate = gate

    @property
    def gate(self) -> GenerationGate:
        return self._gate

    async def answer(
        self,
        question: str,
        lang: Lang | None,
        filters: Filters | None,
        outcome: AnsweredTurn,
    ) -> AsyncIterator[str]:
        """Stream the answer's text; `outcome` holds the checked result once the stream ends.

        The FAQ fast path and the evidence gate answer in one piece without the model.
        """
        started = time.perf_counter()
        plan = await run_in_threadpool(self._answers.plan, question, lang, filters)
        timings = outcome.timings_ms
        timings.update(plan.timings_ms)
        outcome.lang = plan.lang
        if plan.direct is not None:
            outcome.result = plan.direct
            yield plan.direct.answer
            return
        pieces: list[str] = []
        guard = self._answers.stream_guard(plan)  # text goes out only once it is checked
        sent = False
        async with self._gate.slot():
            t0 = time.perf_counter()
            messages, max_tokens = plan.messages, self._answers.max_tokens
            async with aclosing(
                stream_in_thread(
                    lambda stop: self._llm.stream(messages, max_tokens=max_tokens, stop=stop)
                )
            ) as tokens:
                async for piece in tokens:
                    pieces.append(piece)
                    safe = guard.feed(piece)
                    if guard.blocked:
                        break  # stops the model too
                    if safe:
                        if not sent:
                            timings["first_token_ms"] = (time.perf_counter() - started) * 1000
                            sent = True
                        yield safe
            timings["generate_ms"] = (time.perf_counter() - t0) * 1000
            timings["generated_tokens"] = float(self._llm.count_tokens("".join(pieces)))
        tail = guard.flush()
        if tail:
            if not sent:
                timings["first_token_ms"] = (time.perf_counter() - started) * 1000
            yield tail
        outcome.result = self._answers.finish(plan, "".join(pieces), guard.blocked)

    async def events(self, request: TurnRequest) -> AsyncIterator[TurnEvent]:
        """One stateless turn (no session, no dialogue policy): what the eval harness measures."""
        started = time.perf_counter()
        session_id = request.session_id or uuid.uuid4().hex
        message_id = uuid.uuid4().hex
        yield TurnEvent("meta", {"session_id": session_id, "message_id": message_id})
        turn = AnsweredTurn()
        async for piece in self.answer(request.message, request.lang, request.filters, turn):
            yield TurnEvent("token", {"text": piece})
        result = turn.checked()
        turn.timings_ms["total_ms"] = (time.perf_counter() - started) * 1000
        reply = TurnReply(
            session_id=session_id,
            message_id=message_id,
            answer=result.answer,
            citations=result.citations,
            grounded=result.grounded,
            outcome=result.outcome,
            lang=turn.lang,
            timings_ms=turn.timings_ms,
        )
        yield TurnEvent("done", reply.as_dict())

    async def reply(self, request: TurnRequest) -> dict[str, Any]:
        """The whole turn at once: the `done` event's payload."""
        final: dict[str, Any] = {}
        async for event in self.events(request):
            if event.kind == "done":
                final = event.data
        return final
