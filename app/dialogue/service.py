"""One turn of a conversation: session → rewrite → analyse → hand-off policy → answer → persist.

The answering itself (retrieval, gate, FAQ fast path, model, citations) is the
stateless `ChatService`; this layer adds what makes it a conversation. Every
turn is stored, the customer's message before the bot answers, so a crash
half way loses no question.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import asdict, replace
from itertools import pairwise
from typing import Any, Protocol

from starlette.concurrency import run_in_threadpool

from app.db.records import ConversationRecord
from app.db.repository import ConversationStore, MessageRecord, TicketRecord
from app.dialogue import policy
from app.dialogue.analyse import Analyser, Analysis
from app.domain import Citation, Lang
from app.llm.base import LLMError
from app.llm.gate import GenerationGate
from app.orchestrator import AnsweredTurn, ChatService, TurnEvent, TurnReply, TurnRequest
from app.privacy import mask_pii
from app.prompts import PromptLibrary
from app.rag.rewrite import Rewriter, Turn
from app.text import detect_lang, words
from app.tools.base import ToolContext, ToolReply, ToolState
from app.tools.router import ShopTools

logger = logging.getLogger(__name__)

GREETING_MAX_WORDS = 6
"""Longer messages classified as greetings ("hi, can I return shoes?") still get answered."""
LOGGED_MESSAGE_CHARS = 200
"""How much of the customer's message a turn's log line keeps (masked first, then cut)."""
LOGGED_TRANSCRIPT_MESSAGE_CHARS = 500
"""The same for each message of a hand-off's transcript copy in the log."""


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


class DialogueService:
    def __init__(
        self,
        chat: ChatService,
        store: ConversationStore,
        analyser: Analyser,
        rewriter: Rewriter,
        prompts: PromptLibrary,
        probe: Callable[[str], float | None],
        history_turns: int,
        tools: ShopTools | None = None,
        observer: TurnObserver | None = None,
    ) -> None:
        self._chat = chat
        self._store = store
        self._analyser = analyser
        self._rewriter = rewriter
        self._prompts = prompts
        self._probe = probe
        self._history_turns = history_turns
        self._tools = tools
        self._observer = observer

    @property
    def gate(self) -> GenerationGate:
        return self._chat.gate

    @property
    def store(self) -> ConversationStore:
        return self._store

    async def reply(self, request: TurnRequest) -> dict[str, Any]:
        final: dict[str, Any] = {}
        async for event in self.events(request):
            if event.kind == "done":
                final = event.data
        return final

    async def events(self, request: TurnRequest) -> AsyncIterator[TurnEvent]:
        started = time.perf_counter()
        lang: Lang = request.lang or detect_lang(request.message)
        conversation = await run_in_threadpool(self._conversation, request, lang)
        conversation_id, status = conversation.id, conversation.status
        message_id = uuid.uuid4().hex
        yield TurnEvent("meta", {"session_id": conversation_id, "message_id": message_id})
        history = await run_in_threadpool(self._store.history, conversation_id, self._history_turns)
        turn = _Turn(conversation_id, message_id, request.message, lang, started)

        if status == "handed_off":
            ticket = await run_in_threadpool(self._store.open_ticket_for, conversation_id)
            if ticket is not None:
                await run_in_threadpool(turn.save_user, self._store, None, None)
                text = self._prompts.render("queued", lang, ticket_id=ticket.id)
                yield TurnEvent("token", {"text": text})
                yield TurnEvent("done", await self._finish(turn, text, "queued", ticket=ticket))
                return

        t0 = time.perf_counter()
        turns = [Turn("user" if m.role == "user" else "assistant", m.text, m.rewritten)
                 for m in history if m.role in ("user", "assistant")]  # fmt: skip
        tool_state = ToolState.load(conversation.tool_state)
        standalone = None
        if tool_state.pending is None:  # an answer to the bot's own question needs no rewrite
            standalone = await run_in_threadpool(self._rewrite, request.message, lang, turns)
        turn.timings_ms["rewrite_ms"] = (time.perf_counter() - t0) * 1000
        turn.rewritten = standalone

        earlier = answered_messages(history)
        analysis = await run_in_threadpool(
            self._analyser.analyse, request.message, lang, earlier, standalone
        )
        turn.analysis = analysis
        reason = policy.before_answer(
            policy.Signals(
                intent=analysis.intent.label,
                sentiment=analysis.sentiment,
                # Sending details again because the bot asked for them is not being stuck.
                repeats_earlier_question=analysis.repeats_earlier_question
                and analysis.intent.label != "greeting"
                and tool_state.pending is None,
                asks_for_person=policy.asks_for_person(request.message, analysis.intent.label),
            )
        )
        if reason is not None:
            await run_in_threadpool(turn.save_user, self._store, analysis, standalone)
            ticket = await run_in_threadpool(self._store.open_ticket, conversation_id, reason)
            text = self._prompts.render("handoff", lang, reason=reason, ticket_id=ticket.id)
            yield TurnEvent("token", {"text": text})
            yield TurnEvent("done", await self._finish(turn, text, "handoff", ticket=ticket))
            return

        if (
            analysis.intent.label == "greeting"
            and tool_state.pending is None  # "yes please" answers the bot's question
            and standalone is None
            and len(words(request.message, keep_stopwords=True)) <= GREETING_MAX_WORDS
        ):
            await run_in_threadpool(turn.save_user, self._store, analysis, None)
            text = self._prompts.render("greeting", lang)
            yield TurnEvent("token", {"text": text})
            yield TurnEvent("done", await self._finish(turn, text, "greeting"))
            return

        if self._tools is not None:
            ctx = ToolContext(
                request.message,
                lang,
                analysis.intent.label,
                conversation.customer_id,
                tool_state,
                self._tools.today(),
            )
            t0 = time.perf_counter()
            done = await run_in_threadpool(self._tools.handle, ctx)
            if ctx.state.dump() != conversation.tool_state:  # most turns change nothing
                await run_in_threadpool(
                    self._store.set_tool_state, conversation_id, ctx.state.dump()
                )
            if done is not None:
                turn.timings_ms["tool_ms"] = (time.perf_counter() - t0) * 1000
                await run_in_threadpool(self._tool_turn, turn, done, analysis, standalone)
                yield TurnEvent("token", {"text": done.text})
                yield TurnEvent("done", await self._finish(turn, done.text, "tool"))
                return

        await run_in_threadpool(turn.save_user, self._store, analysis, standalone)

        prefix = ""
        if analysis.sentiment.label == "negative":
            prefix = self._prompts.render("apology", lang) + ("" if lang == "zh" else " ")
            yield TurnEvent("token", {"text": prefix})
        answered = AnsweredTurn(timings_ms=turn.timings_ms)
        async for piece in self._chat.answer(
            standalone or request.message, lang, request.filters, answered
        ):
            yield TurnEvent("token", {"text": piece})
        result = answered.checked()
        turn.citations = [asdict(c) for c in result.citations]
        turn.grounded = result.grounded
        turn.refusal_reason = result.refusal_reason

        earlier_outcomes = [m.outcome for m in history if m.role == "assistant"]
        late = policy.after_answer(result.outcome, earlier_outcomes)
        if late is not None:
            ticket = await run_in_threadpool(self._store.open_ticket, conversation_id, late)
            text = self._prompts.render("handoff", lang, reason=late, ticket_id=ticket.id)
            yield TurnEvent("done", await self._finish(turn, text, result.outcome, ticket=ticket))
            return
        yield TurnEvent("done", await self._finish(turn, prefix + result.answer, result.outcome))

    def _rewrite(self, message: str, lang: Lang, turns: list[Turn]) -> str | None:
        """The standalone question; None (the message as it is) when the model fails on
        the rewrite, which only helps retrieval: the turn goes on to its answer."""
        try:
            return self._rewriter.rewrite(message, lang, turns, self._probe)
        except LLMError as exc:
            logger.warning("follow-up not rewritten, the model failed: %s", exc)
            return None

    def _conversation(self, request: TurnRequest, lang: Lang) -> ConversationRecord:
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
        return record

    def _tool_turn(
        self, turn: _Turn, done: ToolReply, analysis: Analysis, standalone: str | None
    ) -> None:
        turn.save_user(self._store, analysis, standalone)
        if done.verified_customer is not None:
            self._store.set_customer(turn.conversation_id, done.verified_customer)
        turn.citations = [asdict(c) for c in done.citations]
        turn.actions = done.actions
        turn.grounded = True  # every fact in a tool reply comes from the tool

    async def _finish(
        self, turn: _Turn, text: str, outcome: str, *, ticket: TicketRecord | None = None
    ) -> dict[str, Any]:
        turn.timings_ms["total_ms"] = (time.perf_counter() - turn.started) * 1000
        await run_in_threadpool(turn.save_reply, self._store, text, outcome)
        turn.log(outcome)
        opened = ticket if outcome != "queued" else None  # "queued": the ticket was opened before
        if opened is not None:
            await run_in_threadpool(self._log_handoff, opened)
        if self._observer is not None:
            reason = opened.reason if opened is not None else None
            self._observer.turn_finished(outcome, turn.timings_ms, reason)
        return turn.reply(text, outcome, ticket).as_dict()

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


class _Turn:
    """What one turn has gathered so far, and how it is stored and shown."""

    def __init__(
        self, conversation_id: str, message_id: str, message: str, lang: Lang, started: float
    ) -> None:
        self.conversation_id = conversation_id
        self.message_id = message_id
        self.message = message
        self.lang = lang
        self.started = started
        self.analysis: Analysis | None = None
        self.rewritten: str | None = None
        self.citations: list[dict[str, Any]] = []
        self.grounded = False
        self.refusal_reason: str | None = None
        self.timings_ms: dict[str, float] = {}
        self.actions: list[dict[str, Any]] = []

    def save_user(
        self, store: ConversationStore, analysis: Analysis | None, rewritten: str | None
    ) -> MessageRecord:
        return store.add_message(
            self.conversation_id,
            "user",
            self.message,
            lang=self.lang,
            intent=analysis.intent.label if analysis else None,
            intent_confidence=analysis.intent.confidence if analysis else None,
            sentiment=analysis.sentiment.label if analysis else None,
            sentiment_score=analysis.sentiment.score if analysis else None,
            anger=analysis.sentiment.anger if analysis else False,
            rewritten=rewritten,
        )

    def save_reply(self, store: ConversationStore, text: str, outcome: str) -> MessageRecord:
        return store.add_message(
            self.conversation_id,
            "assistant",
            text,
            message_id=self.message_id,
            lang=self.lang,
            outcome=outcome,
            refusal_reason=self.refusal_reason,
            citations=self.citations,
            actions=self.actions,
            timings=self.timings_ms,
            response_ms=self.timings_ms.get("total_ms"),
        )

    def log(self, outcome: str) -> None:
        """One line per turn: what was decided and how long it took, the message masked."""
        a = self.analysis
        logger.info(
            "turn session=%s message=%s lang=%s intent=%s sentiment=%s outcome=%s "
            "total_ms=%.1f text=%r",
            self.conversation_id,
            self.message_id,
            self.lang,
            a.intent.label if a else "-",
            a.sentiment.label if a else "-",
            outcome,
            self.timings_ms.get("total_ms", 0.0),
            _log_copy(self.message, LOGGED_MESSAGE_CHARS),
        )

    def reply(self, text: str, outcome: str, ticket: TicketRecord | None) -> TurnReply:
        a = self.analysis
        return TurnReply(
            session_id=self.conversation_id,
            message_id=self.message_id,
            answer=text,
            citations=[Citation(**c) for c in self.citations],
            grounded=self.grounded and ticket is None,
            outcome=outcome,
            lang=self.lang,
            timings_ms=self.timings_ms,
            intent=None
            if a is None
            else {"label": a.intent.label, "confidence": round(a.intent.confidence, 3)},
            sentiment=None
            if a is None
            else {
                "label": a.sentiment.label,
                "score": round(a.sentiment.score, 3),
                "anger": a.sentiment.anger,
                "cues": list(a.sentiment.cues),
            },
            handoff=None if ticket is None else {"ticket_id": ticket.id, "reason": ticket.reason},
            rewritten=self.rewritten,
            actions=self.actions,
        )
