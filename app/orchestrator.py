"""One chat turn, as a stream of events that the JSON route, the SSE route and the CLI share.

meta (ids) → token… (the model's text as it is generated, or the direct
answer in one piece) → done (the checked answer with its citations).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
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


@dataclass
class TurnEvent:
    kind: Literal["meta", "token", "done"]
    data: dict[str, Any]


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
        }


class ChatService:
    def __init__(self, answers: AnswerService, llm: LLM, gate: GenerationGate) -> None:
        self._answers = answers
        self._llm = llm
        self._gate = gate

    @property
    def gate(self) -> GenerationGate:
        return self._gate

    async def events(self, request: TurnRequest) -> AsyncIterator[TurnEvent]:
        started = time.perf_counter()
        session_id = request.session_id or uuid.uuid4().hex
        message_id = uuid.uuid4().hex
        yield TurnEvent("meta", {"session_id": session_id, "message_id": message_id})

        plan = await run_in_threadpool(
            self._answers.plan, request.message, request.lang, request.filters
        )
        timings = dict(plan.timings_ms)
        result: AnswerResult
        if plan.direct is not None:
            result = plan.direct
            yield TurnEvent("token", {"text": result.answer})
        else:
            pieces: list[str] = []
            async with self._gate.slot():
                t0 = time.perf_counter()
                messages, max_tokens = plan.messages, self._answers.max_tokens
                async for piece in stream_in_thread(
                    lambda stop: self._llm.stream(messages, max_tokens=max_tokens, stop=stop)
                ):
                    if not pieces:
                        timings["first_token_ms"] = (time.perf_counter() - started) * 1000
                    pieces.append(piece)
                    yield TurnEvent("token", {"text": piece})
                timings["generate_ms"] = (time.perf_counter() - t0) * 1000
                timings["generated_tokens"] = float(self._llm.count_tokens("".join(pieces)))
            result = self._answers.finish(plan, "".join(pieces))
        timings["total_ms"] = (time.perf_counter() - started) * 1000
        reply = TurnReply(
            session_id=session_id,
            message_id=message_id,
            answer=result.answer,
            citations=result.citations,
            grounded=result.grounded,
            outcome=result.outcome,
            lang=plan.lang,
            timings_ms=timings,
        )
        yield TurnEvent("done", reply.as_dict())

    async def reply(self, request: TurnRequest) -> dict[str, Any]:
        """The whole turn at once: the `done` event's payload."""
        final: dict[str, Any] = {}
        async for event in self.events(request):
            if event.kind == "done":
                final = event.data
        return final
