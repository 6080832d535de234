"""One chat turn, top to bottom: the one path `/v1/chat`, its stream, the OpenAI route, the
terminal chat and the eval harness all run.

    session → rewrite → analyse → policy (queued, hand-off, greeting)
            → route (tool | FAQ / model answer) → late hand-off → store

Each step is a small method that returns a typed value. `events` is the one place that
emits what the shopper sees and stores the reply: the pieces it streams are checked text
only (see `AnswerService.stream`), and the `Done` reply's answer is exactly their
concatenation, with whatever could not be streamed (a template, a tool's reply) sent as
the last piece. Every turn is stored, the customer's message before the bot answers, so a
crash half way loses no question.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import Any, Protocol

from starlette.concurrency import run_in_threadpool

from app.db.records import ConversationRecord
from app.db.repository import ConversationStore, MessageRecord, TicketRecord
from app.dialogue import policy
from app.dialogue.analyse import Analyser, Analysis
from app.domain import Citation, Filters, Lang
from app.llm.base import LLMError, LLMTimeout
from app.llm.gate import GenerationGate, call_in_thread
from app.privacy import mask_pii
from app.prompts import PromptLibrary
from app.rag.answer import AnswerResult, AnswerService
from app.rag.rewrite import Rewriter, Turn
from app.reply import (
    CitationOut,
    Done,
    HandoffOut,
    IntentOut,
    Outcome,
    Piece,
    SentimentOut,
    Started,
    TurnEvent,
    TurnReply,
)
from app.text import detect_lang, words
from app.tools.base import ToolContext, ToolState
from app.tools.router import ShopTools

logger = logging.getLogger(__name__)

LOGGED_MESSAGE_CHARS = 200
"""How much of the customer's message a turn's log line keeps (masked first, then cut)."""
LOGGED_TRANSCRIPT_MESSAGE_CHARS = 500
"""The same for each message of a hand-off's transcript copy in the log."""


@dataclass(frozen=True)
class TurnRequest:
    message: str
    session_id: str | None = None
    lang: Lang | None = None
    filters: Filters | None = None
    customer_id: str | None = None
    """Set only from a verified customer token."""


class TurnObserver(Protocol):
    """Told once about every finished turn (the server's metrics)."""

    def turn_finished(
        self, outcome: str, timings_ms: Mapping[str, float], handoff_reason: str | None
    ) -> None: ...


class SessionNotFound(LookupError):
    """A `session_id` this shop never issued (or one that was deleted)."""


class SessionOfAnotherCustomer(PermissionError):
    """A customer token for someone other than the customer this session belongs to."""


def check_owner(record: ConversationRecord, customer_id: str | None) -> None:
    """SessionOfAnotherCustomer when a signed-in customer takes up someone else's session."""
    if customer_id is not None and record.customer_id not in (None, customer_id):
        raise SessionOfAnotherCustomer(record.id)


@dataclass
class Session:
    """The conversation a turn belongs to, as the turn found it (step 1)."""

    conversation: ConversationRecord
    history: list[MessageRecord]
    message: str
    message_id: str
    lang: Lang
    started: float
    timings_ms: dict[str, float] = field(default_factory=dict)
    """This turn's stage timings; only the pipeline writes them."""
    analysis: Analysis | None = None
    rewritten: str | None = None

    @property
    def id(self) -> str:
        return self.conversation.id


@dataclass
class Draft:
    """What a route answered, before it is stored and sent."""

    text: str
    outcome: Outcome
    citations: list[Citation] = field(default_factory=list)
    grounded: bool = False
    actions: list[dict[str, Any]] = field(default_factory=list)
    refusal_reason: str | None = None
    ticket: TicketRecord | None = None
    new_ticket: bool = False
    """The ticket was opened by this turn (not the one a queued turn waits on)."""


class TurnPipeline:
    def __init__(
        self,
        answers: AnswerService,
        store: ConversationStore,
        analyser: Analyser,
        rewriter: Rewriter,
        prompts: PromptLibrary,
        probe: Callable[[str], float | None],
        history_turns: int,
        gate: GenerationGate,
        tools: ShopTools | None = None,
        observer: TurnObserver | None = None,
    ) -> None:
        self._answers = answers
        self._store = store
        self._analyser = analyser
        self._rewriter = rewriter
        self._prompts = prompts
        self._probe = probe
        self._history_turns = history_turns
        self._gate = gate
        self._tools = tools
        self._observer = observer

    @property
    def gate(self) -> GenerationGate:
        """The model's queue, which every model call of a turn waits in."""
        return self._gate

    @property
    def store(self) -> ConversationStore:
        return self._store

    async def reply(self, request: TurnRequest) -> TurnReply:
        """The whole turn at once: the `Done` event's reply."""
        async for event in self.events(request):
            if isinstance(event, Done):
                return event.reply
        raise RuntimeError("a turn ended without a reply")

    async def events(self, request: TurnRequest) -> AsyncIterator[TurnEvent]:
        """The turn as events: Started, the checked Pieces, Done."""
        session = await run_in_threadpool(self._session, request)
        yield Started(session.id, session.message_id)
        draft: Draft | None = None
        sent = ""
        async for item in self._respond(session, request):
            if isinstance(item, str):
                sent += item
                yield Piece(item)
            else:
                draft = item
        assert draft is not None, "every route ends with a draft"
        if not draft.text.startswith(sent):  # a bug, never the shopper's problem
            logger.error("the reply differs from the text streamed; the streamed text is kept")
            draft = replace(draft, text=sent)
        if rest := draft.text[len(sent) :]:
            yield Piece(rest)
        yield Done(await self._finish(session, draft))

    async def _respond(self, session: Session, request: TurnRequest) -> AsyncIterator[str | Draft]:
        """The steps after the session: each exit yields its Draft last."""
        queued = await self._queued(session)
        if queued is not None:
            yield queued
            return
        state = ToolState.load(session.conversation.tool_state)
        rewritten = await self._rewrite(session, state)
        analysis = await run_in_threadpool(
            self._analyser.analyse,
            session.message,
            session.lang,
            answered_messages(session.history),
            rewritten,
        )
        session.analysis, session.rewritten = analysis, rewritten
        await run_in_threadpool(self._save_user, session, analysis, rewritten)

        decision = policy.before_answer(
            policy.Signals(
                intent=analysis.intent.label,
                sentiment=analysis.sentiment,
                repeats_earlier_question=analysis.repeats_earlier_question,
                asks_for_person=policy.asks_for_person(session.message, analysis.intent.label),
                answers_bot_question=state.pending is not None,
                rewritten=rewritten is not None,
                words=len(words(session.message, keep_stopwords=True)),
            )
        )
        if decision == "greeting":
            yield Draft(self._prompts.render("greeting", session.lang), "greeting")
        elif decision is not None:
            yield await self._hand_off(session, decision, "handoff")
        else:
            tool = await self._tool(session, request, analysis, state)
            if tool is not None:
                yield tool
            else:
                async for item in self._answer(session, request, analysis, rewritten):
                    yield item

    def _session(self, request: TurnRequest) -> Session:
        """Step 1: the conversation (new, or the one `session_id` names and the customer
        may take up), its recent history and the turn's language."""
        lang: Lang = request.lang or detect_lang(request.message)
        if request.session_id is None:
            record = self._store.create_conversation(lang)
        else:
            found = self._store.get_conversation(request.session_id)
            if found is None:
                raise SessionNotFound(request.session_id)
            record = found
        if request.customer_id is not None:
            check_owner(record, request.customer_id)
            if record.customer_id is None:
                self._store.set_customer(record.id, request.customer_id)
                record = replace(record, customer_id=request.customer_id)
        history = self._store.history(record.id, self._history_turns)
        return Session(
            record, history, request.message, uuid.uuid4().hex, lang, time.perf_counter()
        )

    async def _queued(self, session: Session) -> Draft | None:
        """A conversation waiting for a person gets told so; the bot does not answer."""
        if session.conversation.status != "handed_off":
            return None
        ticket = await run_in_threadpool(self._store.open_ticket_for, session.id)
        if ticket is None:
            return None
        await run_in_threadpool(self._save_user, session, None, None)
        text = self._prompts.render("queued", session.lang, ticket_id=ticket.id)
        return Draft(text, "queued", ticket=ticket)

    async def _rewrite(self, session: Session, state: ToolState) -> str | None:
        """The follow-up as a standalone question; None for the message as it is. An answer
        to the bot's own question ("my email is …") needs no rewrite, and a model failure
        only costs retrieval quality: the turn goes on. A timeout does not: the turn's
        time (`llm.timeout_s` from joining the queue) is up, and it ends with a 504."""
        if state.pending is not None:
            return None
        turns = [
            Turn("user" if m.role == "user" else "assistant", m.text, m.rewritten)
            for m in session.history
            if m.role in ("user", "assistant")
        ]
        t0 = time.perf_counter()
        try:
            return await call_in_thread(
                lambda stop: self._rewriter.rewrite(
                    session.message, session.lang, turns, self._probe, stop
                )
            )
        except LLMTimeout:
            raise
        except LLMError as exc:
            logger.warning("follow-up not rewritten, the model failed: %s", exc)
            return None
        finally:
            session.timings_ms["rewrite_ms"] = (time.perf_counter() - t0) * 1000

    async def _tool(
        self, session: Session, request: TurnRequest, analysis: Analysis, state: ToolState
    ) -> Draft | None:
        """Orders, returns and the catalogue; None when the documents should answer."""
        tools = self._tools
        if tools is None:
            return None
        ctx = ToolContext(
            request.message,
            session.lang,
            analysis.intent.label,
            session.conversation.customer_id,
            state,
            tools.today(),
        )
        t0 = time.perf_counter()
        done = await call_in_thread(lambda _: tools.handle(ctx))  # it may phrase with the model
        if ctx.state.dump() != session.conversation.tool_state:  # most turns change nothing
            await run_in_threadpool(self._store.set_tool_state, session.id, ctx.state.dump())
        if done is None:
            return None
        session.timings_ms["tool_ms"] = (time.perf_counter() - t0) * 1000
        if done.verified_customer is not None:
            await run_in_threadpool(self._store.set_customer, session.id, done.verified_customer)
        # every fact in a tool reply comes from the tool
        return Draft(done.text, "tool", done.citations, grounded=True, actions=done.actions)

    async def _answer(
        self, session: Session, request: TurnRequest, analysis: Analysis, rewritten: str | None
    ) -> AsyncIterator[str | Draft]:
        """The documents' answer (FAQ, model or refusal), checked sentences as they pass.

        An upset customer's answer starts with an apology, sent with the first sentence; a
        second refusal in a row hands off instead.
        """
        apology = ""
        if analysis.sentiment.label == "negative":
            apology = self._prompts.render("apology", session.lang)
            apology += "" if session.lang == "zh" else " "
        unsent = apology
        result: AnswerResult | None = None
        async for item in self._answers.stream(
            rewritten or request.message, session.lang, request.filters
        ):
            if isinstance(item, AnswerResult):
                result = item
            else:
                yield unsent + item
                unsent = ""
        assert result is not None
        session.timings_ms.update(result.timings_ms)
        earlier = [m.outcome for m in session.history if m.role == "assistant"]
        late = policy.after_answer(result.outcome, earlier)
        if late is not None:  # a refusal streams nothing, so nothing was sent yet
            yield await self._hand_off(session, late, result.outcome, result)
            return
        yield Draft(
            apology + result.answer,
            result.outcome,
            result.citations,
            result.grounded,
            refusal_reason=result.refusal_reason,
        )

    async def _hand_off(
        self,
        session: Session,
        reason: policy.HandoffReason,
        outcome: Outcome,
        result: AnswerResult | None = None,
    ) -> Draft:
        ticket = await run_in_threadpool(self._store.open_ticket, session.id, reason)
        text = self._prompts.render("handoff", session.lang, reason=reason, ticket_id=ticket.id)
        if result is None:
            return Draft(text, outcome, ticket=ticket, new_ticket=True)
        return Draft(
            text,
            outcome,
            result.citations,
            result.grounded,
            refusal_reason=result.refusal_reason,
            ticket=ticket,
            new_ticket=True,
        )

    def _save_user(
        self, session: Session, analysis: Analysis | None, rewritten: str | None
    ) -> MessageRecord:
        return self._store.add_message(
            session.id,
            "user",
            session.message,
            lang=session.lang,
            intent=analysis.intent.label if analysis else None,
            intent_confidence=analysis.intent.confidence if analysis else None,
            sentiment=analysis.sentiment.label if analysis else None,
            sentiment_score=analysis.sentiment.score if analysis else None,
            anger=analysis.sentiment.anger if analysis else False,
            rewritten=rewritten,
        )

    async def _finish(self, session: Session, draft: Draft) -> TurnReply:
        """Store the reply, log the turn, tell the observer: the one exit of every turn."""
        session.timings_ms["total_ms"] = (time.perf_counter() - session.started) * 1000
        await run_in_threadpool(self._save_reply, session, draft)
        reply = _reply(session, draft)
        _log_turn(session, reply)
        if draft.new_ticket and draft.ticket is not None:
            await run_in_threadpool(self._log_handoff, draft.ticket)
        if self._observer is not None:
            reason = draft.ticket.reason if draft.new_ticket and draft.ticket else None
            self._observer.turn_finished(draft.outcome, session.timings_ms, reason)
        return reply

    def _save_reply(self, session: Session, draft: Draft) -> MessageRecord:
        return self._store.add_message(
            session.id,
            "assistant",
            draft.text,
            message_id=session.message_id,
            lang=session.lang,
            outcome=draft.outcome,
            refusal_reason=draft.refusal_reason,
            citations=[vars(c) for c in draft.citations],
            actions=draft.actions,
            timings=session.timings_ms,
            response_ms=session.timings_ms.get("total_ms"),
        )

    def _log_handoff(self, ticket: TicketRecord) -> None:
        """The new ticket with a masked copy of its transcript.

        The database keeps the transcript as it was written, for the agent who takes
        over; only this copy, which goes wherever logs go, is masked.
        """
        if not logger.isEnabledFor(logging.INFO):
            return
        messages = self._store.history(ticket.conversation_id)
        transcript = " | ".join(
            f"{m.role}: {_log_copy(m.text, LOGGED_TRANSCRIPT_MESSAGE_CHARS)}" for m in messages
        )
        logger.info(
            "handoff ticket=%s session=%s reason=%s messages=%d transcript=%r",
            ticket.id,
            ticket.conversation_id,
            ticket.reason,
            len(messages),
            transcript,
        )


def _reply(session: Session, draft: Draft) -> TurnReply:
    """The typed reply: the draft, with what the analysis found in the customer's message."""
    ticket, a = draft.ticket, session.analysis
    return TurnReply(
        session_id=session.id,
        message_id=session.message_id,
        answer=draft.text,
        citations=[CitationOut.of(c) for c in draft.citations],
        grounded=draft.grounded and ticket is None,
        outcome=draft.outcome,
        lang=session.lang,
        timings_ms={k: round(v, 1) for k, v in session.timings_ms.items()},
        intent=None
        if a is None
        else IntentOut(label=a.intent.label, confidence=round(a.intent.confidence, 3)),
        sentiment=None
        if a is None
        else SentimentOut(
            label=a.sentiment.label,
            score=round(a.sentiment.score, 3),
            anger=a.sentiment.anger,
            cues=list(a.sentiment.cues),
        ),
        handoff=None if ticket is None else HandoffOut(ticket_id=ticket.id, reason=ticket.reason),
        rewritten=session.rewritten,
        actions=draft.actions,
    )


def _log_turn(session: Session, reply: TurnReply) -> None:
    """One line per turn: what was decided and how long it took, the message masked."""
    logger.info(
        "turn session=%s message=%s lang=%s intent=%s sentiment=%s outcome=%s "
        "total_ms=%.1f text=%r",
        session.id,
        session.message_id,
        session.lang,
        reply.intent.label if reply.intent else "-",
        reply.sentiment.label if reply.sentiment else "-",
        reply.outcome,
        session.timings_ms.get("total_ms", 0.0),
        _log_copy(session.message, LOGGED_MESSAGE_CHARS),
    )


def _log_copy(text: str, limit: int) -> str:
    """`text` masked, then cut: cutting first could leave half a card number unrecognised."""
    masked = mask_pii(text)
    return masked if len(masked) <= limit else masked[:limit] + "…"


def answered_messages(history: Sequence[MessageRecord]) -> list[str]:
    """The customer's earlier messages that got a reply, oldest first.

    A message without one is a turn that failed (model error or timeout, a crash): sending
    it again is a retry, not the same question asked again after an unhelpful answer.
    """
    return [m.text for m, after in pairwise(history) if m.role == "user" and after.role != "user"]
