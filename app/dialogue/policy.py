"""What the bot does before it looks for an answer: hand off, greet, or go on.

Before answering, in this order: the customer asked for a person
(`requested`), is angry (`anger`), is complaining (`complaint`), or asks the
same question again (`repeated_question`: the first answer did not help); else a
short greeting gets the greeting. After answering: a second "I don't know" in a
row (`repeated_dont_know`). Each reason becomes the ticket's reason code.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from app.dialogue.intent import explicit_human_request
from app.dialogue.sentiment import Sentiment

HandoffReason = Literal[
    "requested", "anger", "repeated_question", "repeated_dont_know", "complaint"
]
Decision = HandoffReason | Literal["greeting"] | None
"""A hand-off reason, "greeting", or None: go on to the tools and the documents."""

GREETING_MAX_WORDS = 6
"""Longer messages classified as greetings ("hi, can I return shoes?") still get answered."""


_QUESTION = re.compile(
    r"[?？]|吗|怎么|如何|什么|几点|多久|哪|"
    r"\b(?:how|what|when|where|which|why|who|do you|does|is there|are there)\b",
    re.IGNORECASE,
)


def asks_for_person(text: str, intent: str) -> bool:
    """A request to talk to a person, not a question *about* the support team.

    "转人工" / "I want a real person" hand off; "What time does your support team
    stop answering?" is classified human_agent too, but the FAQ answers it (measured:
    without this distinction 2 of 30 English sample-shop questions were handed off).
    """
    return explicit_human_request(text) or (intent == "human_agent" and not _QUESTION.search(text))


@dataclass(frozen=True)
class Signals:
    """What the analysis found in one customer message."""

    intent: str
    sentiment: Sentiment
    repeats_earlier_question: bool
    asks_for_person: bool = False
    answers_bot_question: bool = False
    """The bot asked for details (an email, "shall I start the return?") and this is the
    reply: sending details again is not being stuck, and "thanks, yes" is not small talk."""
    rewritten: bool = False
    """The message was a follow-up, made standalone: it continues a topic."""
    words: int = 0


def before_answer(signals: Signals) -> Decision:
    """A reason to hand off before the bot tries to answer, "greeting", or None."""
    if signals.asks_for_person:
        return "requested"
    mood = signals.sentiment
    # 投诉 / "complaint" is itself an anger cue; alone it makes a complaint, not an outburst.
    if mood.anger and mood.label == "negative" and set(mood.cues) - {"complaint_word"}:
        return "anger"
    if signals.intent == "complaint" or "complaint_word" in mood.cues:
        return "complaint"
    if signals.answers_bot_question:
        return None
    if signals.intent == "greeting":
        greets = not signals.rewritten and signals.words <= GREETING_MAX_WORDS
        return "greeting" if greets else None
    if signals.repeats_earlier_question:
        return "repeated_question"
    return None


def after_answer(outcome: str, earlier_outcomes: Sequence[str | None]) -> HandoffReason | None:
    """A second "I don't know" in a row hands off: the customer is stuck.

    `earlier_outcomes` are the outcomes of the bot's earlier replies, oldest first.
    """
    if outcome == "refused" and earlier_outcomes and earlier_outcomes[-1] == "refused":
        return "repeated_dont_know"
    return None
