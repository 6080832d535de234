"""From a question to a checked answer: gate, FAQ fast path, prompt, citations.

`plan` does everything before the model (retrieval, the evidence gate, the
FAQ fast path, the prompt packed to a token budget); `stream` runs the plan:
it yields each sentence of the model's answer once its citations and the
output guard have passed it, then the `AnswerResult`. What was yielded is
exactly the start of the result's answer: a shopper never sees an unchecked word.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from typing import Literal

from starlette.concurrency import run_in_threadpool

from app.config import AnswerSettings, RetrievalSettings
from app.domain import Citation, Filters, Lang, RetrievedChunk
from app.llm.base import LLM, ChatMessage
from app.llm.gate import stream_in_thread
from app.prompts import PromptLibrary
from app.rag import citations
from app.rag.output_guard import OutputGuard, Shown
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
    timings_ms: dict[str, float] = field(default_factory=dict)


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
        if not plan.passages:
            plan.direct = self.refusal(lang, "context_too_small")
            return plan
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

    async def stream(
        self, question: str, lang: Lang | None = None, filters: Filters | None = None
    ) -> AsyncIterator[str | AnswerResult]:
        """Checked sentences of the answer as they pass, then the `AnswerResult`.

        A direct answer (FAQ hit, weak evidence) yields only its result: nothing is
        streamed that the caller could not send whole. A model answer stops early once
        the model refuses or the output guard blocks a sentence; what was sent by then
        passed every check, so it stays the answer.
        """
        started = time.perf_counter()
        plan = await run_in_threadpool(self.plan, question, lang, filters)
        timings = dict(plan.timings_ms)
        if plan.direct is not None:
            yield replace(plan.direct, timings_ms=timings)
            return
        check = CheckedText(
            citations.CitationChecker(
                plan.passages,
                self._answer.min_support,
                self._retriever.term_weight,
                question=plan.question,
            ),
            self._guard,
            Shown.of(plan.shown),
        )
        t0 = time.perf_counter()
        raw = ""
        messages, max_tokens = plan.messages, self._max_tokens
        async with aclosing(
            stream_in_thread(
                lambda stop: self._llm.stream(messages, max_tokens=max_tokens, stop=stop)
            )
        ) as tokens:
            async for piece in tokens:
                if not raw:
                    timings["first_token_ms"] = (time.perf_counter() - started) * 1000
                raw += piece
                out = check.feed(piece)
                if out:
                    timings.setdefault("first_sentence_ms", (time.perf_counter() - started) * 1000)
                    yield out
                if check.stopped is not None:
                    break  # closing the token stream stops the model too
        timings["generate_ms"] = (time.perf_counter() - t0) * 1000
        timings["generated_tokens"] = float(self._llm.count_tokens(raw))
        if check.stopped is None:
            out = check.flush()
            if out:
                timings.setdefault("first_sentence_ms", (time.perf_counter() - started) * 1000)
                yield out
        yield replace(self._result(check, plan.lang, raw), timings_ms=timings)

    def _result(self, check: CheckedText, lang: Lang, raw: str) -> AnswerResult:
        """What was sent is the answer; with nothing sent, the reason to refuse."""
        if check.sent:
            if check.checker.dropped:
                logger.info("dropped %d unsupported sentence(s)", check.checker.dropped)
            return AnswerResult(
                answer=check.sent,
                citations=check.checker.citations(),
                grounded=True,
                outcome="generated",
            )
        if check.stopped is not None:
            return self.refusal(lang, check.stopped)
        if not raw.strip() or citations.is_refusal(raw):
            return self.refusal(lang, "model_declined")
        return self.refusal(lang, "unsupported")


class CheckedText:
    """The model's text, let through one whole sentence at a time.

    Each sentence must be supported by a packed passage (its citations checked and
    renumbered, `citations.CitationChecker`) and pass the output guard together with the
    tail of what was sent before it; a refusal ("I don't know") or a guard verdict stops
    the answer there.
    """

    GUARD_TAIL = 48
    """Characters of the sent text re-checked with each new sentence: longer than any
    system-prompt window, so a leak split across two sentences is still seen."""

    def __init__(
        self, checker: citations.CitationChecker, guard: OutputGuard, shown: Shown
    ) -> None:
        self.checker = checker
        self._guard = guard
        self._shown = shown
        self._splitter = citations.SentenceSplitter()
        self.sent = ""
        self.stopped: str | None = None
        """Why the answer stopped early: model_declined or the guard's verdict."""

    def feed(self, piece: str) -> str:
        """The text that may be sent now ('' while a sentence is incomplete)."""
        return self._take(self._splitter.feed(piece))

    def flush(self) -> str:
        """The rest, once the model has finished."""
        return self._take(self._splitter.flush())

    def _take(self, sentences: list[str]) -> str:
        out = ""
        for sentence in sentences:
            if self.stopped is not None:
                break
            if citations.is_refusal(sentence):
                self.stopped = "model_declined"
                break
            kept = self.checker.sentence(sentence)
            if kept is None:
                continue
            text = citations.joiner(self.sent, kept) + kept
            verdict = self._guard.violation(self.sent[-self.GUARD_TAIL :] + text, self._shown)
            if verdict is not None:
                self.stopped = verdict
                logger.warning("answer stopped: %s", verdict)
                break
            self.sent += text
            out += text
        return out


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
