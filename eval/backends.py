"""Where the harness sends questions: the pipeline in this process, or a running server.

Both speak the same two calls: `search` (ranked passages, for retrieval
metrics) and `reply` (one chat turn: the JSON `/v1/chat` answers). In process,
the turn runs through the same `TurnPipeline` as `/v1/chat` (session, analysis,
hand-off and greeting policy, tools, FAQ, model, checks), each row in a fresh
conversation: what is scored is what a shopper would get.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import httpx

from app.config import Settings
from app.container import Container, build_pipeline, gated
from app.domain import Filters
from app.llm.base import LLM, ChatMessage, Deadline, WrappedLLM
from app.orchestrator import TurnPipeline, TurnRequest
from app.rag.answer import AnswerService
from app.retrieval.hybrid import HybridRetriever


@dataclass(frozen=True)
class Ranked:
    doc_ids: list[str]
    """Document ids, best first, each once."""
    best_dense: float | None


class Backend(Protocol):
    def search(self, question: str, filters: Filters | None, k: int) -> Ranked: ...

    async def reply(self, question: str, filters: Filters | None) -> dict[str, Any]: ...


def dedupe(doc_ids: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(doc_ids))


class CachingLLM(WrappedLLM):
    """Remembers each generation by its exact prompt, so systems that build the same
    prompt (the hybrid with and without the gate) pay for it once.

    With a fixed per-call seed the model would give the same text again; the
    cache only saves the time. Replies served from it are flagged, and their
    latency is left out of the latency figures.
    """

    def __init__(self, inner: LLM) -> None:
        super().__init__(inner)
        self._texts: dict[str, str] = {}
        self.last_hit = False

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        stop: threading.Event | None = None,
        deadline: Deadline | None = None,
    ) -> Iterator[str]:
        raw = json.dumps([[m.role, m.content] for m in messages] + [max_tokens])
        key = hashlib.sha256(raw.encode()).hexdigest()
        self.last_hit = key in self._texts
        if self.last_hit:
            yield self._texts[key]
            return
        pieces = []
        for piece in self._inner.stream(
            messages, max_tokens=max_tokens, stop=stop, deadline=deadline
        ):
            pieces.append(piece)
            yield piece
        if stop is None or not stop.is_set():
            self._texts[key] = "".join(pieces)


class InProcessBackend:
    """The endpoint's turn pipeline, built from the shared container with one system's
    settings (its retrieval and answer settings; the same store, embedder and model)."""

    def __init__(self, container: Container, settings: Settings, llm: CachingLLM) -> None:
        self._llm = llm
        retriever = HybridRetriever(
            container.embedder,
            container.store,
            lambda: container.lexical.current,
            settings.retrieval,
        )
        model = gated(llm, settings)
        answers = AnswerService(
            retriever,
            model,
            container.prompts,
            settings.retrieval,
            settings.answer,
            settings.llm.max_tokens,
        )
        self._retriever = retriever
        self._system = replace(
            container, settings=settings, llm=model, retriever=retriever, answers=answers
        )
        self._pipeline: TurnPipeline | None = None

    def search(self, question: str, filters: Filters | None, k: int) -> Ranked:
        result = self._retriever.retrieve(question, filters, k=k)
        return Ranked(dedupe([p.chunk.doc_id for p in result.passages]), result.best_dense)

    async def reply(self, question: str, filters: Filters | None) -> dict[str, Any]:
        if self._pipeline is None:  # the database and classifiers, once per system
            self._pipeline = build_pipeline(self._system)
        self._llm.last_hit = False
        reply = await self._pipeline.reply(TurnRequest(question, filters=filters))
        out = reply.model_dump()
        out["cached"] = self._llm.last_hit
        return out


class HttpBackend:
    """A running ShopDesk server, through `POST /v1/search` and `POST /v1/chat`."""

    def __init__(self, url: str, timeout_s: float = 300.0) -> None:
        self._client = httpx.Client(base_url=url.rstrip("/"), timeout=timeout_s)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self._client.post(path, json=body)
        if response.status_code != 200:
            raise RuntimeError(f"{path} answered {response.status_code}: {response.text[:300]}")
        data: dict[str, Any] = response.json()
        return data

    def search(self, question: str, filters: Filters | None, k: int) -> Ranked:
        data = self._post("/v1/search", {"query": question, "filters": filters, "k": min(k, 50)})
        return Ranked(dedupe([p["doc_id"] for p in data["passages"]]), data.get("best_dense"))

    async def reply(self, question: str, filters: Filters | None) -> dict[str, Any]:
        reply = self._post("/v1/chat", {"message": question, "filters": filters})
        reply["cached"] = False
        return reply
