"""From a question to a checked answer: gate, FAQ fast path, prompt, citations.

`plan` does everything before the model (retrieval, the evidence gate, the
FAQ fast path, the prompt packed to a token budget); `finish` turns the
model's raw text into the reply (citations checked, refusals recognised).
Between the two the caller streams the model however it likes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Literal

from app.config import AnswerSettings, RetrievalSettings
from app.domain import Citation, Filters, Lang, RetrievedChunk
from app.llm.base import LLM, ChatMessage
from app.prompts import PromptLibrary
from app.rag import citations
from app.rag.output_guard import OutputGuard, Shown, StreamGuard
from app.rag.untrusted import addresses_assistant, clean_passage, strip_control_tokens
from app.retrieval.hybrid import HybridRetriever, Retrieval
from app.text import detect_lang

logger = logging.getLogger(__name__)

Outcome = Literal["faq", "generated", "refused"]


@dataclass
class AnswerResult:
    answer: str
    citations: list[Citation]
    grounded: bool
    outcome: Outcome
    refusal_reason: str | None = None


@dataclass
class Plan:
    question: str
    lang: Lang
    retrieval: Retrieval
    passages: list[RetrievedChunk] = field(default_factory=list)
    messages: list[ChatMessage] = field(default_factory=list)
    direct: AnswerResult | None = None
    """Set when no model call is needed (FAQ hit or weak evidence)."""
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def shown(self) -> str:
        """Everything the model was shown besides our instructions (the output guard's
        measure of what an answer may repeat)."""
        return "\n".join([self.question, *(p.chunk.text for p in self.passages)])


class AnswerService:
    def __init__(
        self,
        retriever: HybridRetriever,
        llm: LLM,
        prompts: PromptLibrary,
        retrieval: RetrievalSettings,
        answer: AnswerSettings,
        max_tokens: int,
    ) -> None:
        self._retriever = retriever
        self._llm = llm
        self._prompts = prompts
        self._retrieval = retrieval
        self._answer = answer
        self._max_tokens = max_tokens
        self._guard = OutputGuard(
            text
            for lang in ("en", "zh")
            for text in (
                self._prompts.render("answer_system", lang),
                self._prompts.render("answer_user", lang, passages=[], question=""),
            )
        )

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    def refusal(self, lang: Lang, reason: str) -> AnswerResult:
        return AnswerResult(
            answer=self._prompts.render("refusal", lang),
            citations=[],
            grounded=False,
            outcome="refused",
            refusal_reason=reason,
        )

    def plan(self, question: str, lang: Lang | None = None, filters: Filters | None = None) -> Plan:
        lang = lang or detect_lang(question)
        t0 = time.perf_counter()
        retrieval = self._retriever.retrieve(question, filters)
        plan = Plan(question=question, lang=lang, retrieval=retrieval)
        plan.timings_ms.update(retrieval.timings_ms)
        plan.timings_ms["retrieve_ms"] = (time.perf_counter() - t0) * 1000

        best = retrieval.best_dense
        if not retrieval.passages or (best is not None and best < self._retrieval.min_dense_score):
            plan.direct = self.refusal(lang, "weak_evidence")
            return plan
        faq = self._faq_hit(retrieval.passages, lang)
        if faq is not None:
            plan.direct = self._faq_answer(faq)
            return plan

        t0 = time.perf_counter()
        plan.passages = _cleaned(self._pack(question, lang, retrieval.passages))
        plan.messages = self._messages(question, lang, plan.passages)
        plan.timings_ms["prompt_ms"] = (time.perf_counter() - t0) * 1000
        return plan

    def _faq_hit(self, passages: list[RetrievedChunk], lang: Lang) -> RetrievedChunk | None:
        """An FAQ whose question is close enough to answer verbatim, in the asker's language."""
        for p in passages:
            if (
                p.chunk.kind == "faq"
                and p.chunk.metadata.get("answer")
                and p.chunk.metadata.get("lang") == lang
                and (p.dense_score or 0.0) >= self._retrieval.faq_direct_score
                and not addresses_assistant(str(p.chunk.metadata["answer"]))
            ):
                return p
        return None

    def _faq_answer(self, hit: RetrievedChunk) -> AnswerResult:
        chunk = hit.chunk
        answer = str(chunk.metadata["answer"])
        cite = Citation(
            n=1,
            doc_id=chunk.doc_id,
            title=chunk.title,
            source=str(chunk.metadata.get("source", "")),
            snippet=citations.best_snippet(answer, set()),
        )
        return AnswerResult(answer=f"{answer} [1]", citations=[cite], grounded=True, outcome="faq")

    def _pack(
        self, question: str, lang: Lang, ranked: list[RetrievedChunk]
    ) -> list[RetrievedChunk]:
        """Passages that score close to the best, in rank order, while they fit the budget.

        Every prompt token costs prompt-processing time before the first word;
        passages far below the best rarely hold the answer (see README).
        """
        floor = ranked[0].score - self._answer.pack_margin if ranked else 0.0
        ranked = [p for p in ranked if p.score >= floor]
        overhead = self._llm.count_tokens(self._prompts.render("answer_system", lang)) + 64
        window_left = self._llm.context_window - self._max_tokens - overhead
        budget = min(self._answer.context_tokens, window_left) - self._llm.count_tokens(question)
        packed: list[RetrievedChunk] = []
        for p in ranked:
            cost = self._llm.count_tokens(f"{p.chunk.title}\n{p.chunk.text}") + 8
            if cost > budget:
                if packed:
                    break
                continue  # a single passage bigger than the whole budget cannot be used
            packed.append(p)
            budget -= cost
        return packed

    def prompt_shape(self, lang: Lang) -> list[ChatMessage]:
        """An answer prompt with no passages and no question: its fixed prefix is cached."""
        return self._messages("", lang, [])

    def _messages(
        self, question: str, lang: Lang, passages: list[RetrievedChunk]
    ) -> list[ChatMessage]:
        view = [
            {"n": n, "title": strip_control_tokens(p.chunk.title), "text": p.chunk.text}
            for n, p in enumerate(passages, start=1)
        ]
        return [
            ChatMessage("system", self._prompts.render("answer_system", lang)),
            ChatMessage(
                "user",
                self._prompts.render(
                    "answer_user", lang, passages=view, question=strip_control_tokens(question)
                ),
            ),
        ]

    def stream_guard(self, plan: Plan) -> StreamGuard:
        """The output check for this plan's streamed answer."""
        return StreamGuard(self._guard, Shown.of(plan.shown))

    def finish(self, plan: Plan, raw: str, blocked: str | None = None) -> AnswerResult:
        """The reply for the model's raw text: checked citations, or an honest refusal.

        `blocked` is the stream guard's verdict when it stopped the answer part way.
        """
        if plan.direct is not None:
            return plan.direct
        if blocked:
            return self.refusal(plan.lang, blocked)
        if not plan.passages:
            return self.refusal(plan.lang, "context_too_small")
        if not raw.strip() or citations.is_refusal(raw):
            return self.refusal(plan.lang, "model_declined")
        checked = citations.check(
            raw,
            plan.passages,
            self._answer.min_support,
            self._retriever.term_weight,
            question=plan.question,
        )
        if not checked.citations:
            return self.refusal(plan.lang, "unsupported")
        if checked.dropped_sentences:
            logger.info("dropped %d unsupported sentence(s)", checked.dropped_sentences)
        verdict = self._guard.violation(checked.text, plan.shown)
        if verdict:
            return self.refusal(plan.lang, verdict)
        return AnswerResult(
            answer=checked.text, citations=checked.citations, grounded=True, outcome="generated"
        )


def _cleaned(passages: list[RetrievedChunk]) -> list[RetrievedChunk]:
    """The passages as the model may see them (see `app.rag.untrusted`)."""
    out = []
    for p in passages:
        cleaned = clean_passage(p.chunk.text)
        if cleaned.removed:
            logger.info(
                "passage %s: %d instruction-like sentence(s) removed", p.chunk.id, cleaned.removed
            )
        out.append(
            p
            if cleaned.text == p.chunk.text
            else replace(p, chunk=replace(p.chunk, text=cleaned.text))
        )
    return out
