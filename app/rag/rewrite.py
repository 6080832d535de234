"""Follow-up questions → standalone questions, before retrieval.

"And for the espresso machine?" retrieves nothing useful on its own. Two ways
to make it standalone, chosen by `dialogue.rewrite` and measured with
`python -m eval.followups` (see the README):

- concat: the follow-up with the previous question attached
  ("And for the espresso machine? (follow-up to: How long is the warranty on
  headphones?)"). No model call; the embedding and BM25 see both.
- llm: the chat model rewrites it with `prompts/rewrite.*.j2` (a few seconds
  on a CPU).

Only messages that look like follow-ups are rewritten, so a change of topic
is not polluted: an opener or a pronoun ("and…", "what about…", "is it…",
"那…", "…呢", "它…") is a strong cue; mere shortness ("Do you ship to
Malaysia?") is a weak one, acted on only when the message alone retrieves
weakly (best cosine below `dialogue.follow_up_max_score`).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from app.domain import Lang
from app.llm.base import LLM, ChatMessage
from app.prompts import PromptLibrary
from app.text import words

RewriteMode = Literal["off", "concat", "llm"]
Cue = Literal["strong", "weak"]

_EN_OPENERS = re.compile(
    r"^\s*(?:and|also|so|but|then|what about|how about|and what|what if|same for|or|"
    r"is it|are they|does it|do they|can it|will it|is that|how much is it|which one)\b",
    re.IGNORECASE,
)
_EN_REFERS = re.compile(r"\b(?:it|its|they|them|their|this|that|these|those|one)\b", re.IGNORECASE)
_ZH_OPENERS = re.compile(r"^\s*(?:那|那么|还有|另外|它|这个|那个|这款|那款|如果是|要是|换成)")
_ZH_REFERS = re.compile(r"它|这个|那个|这款|那款|这台|那台|这件")
_ZH_TAIL = re.compile(r"呢[？?。！!]*\s*$")
MAX_FOLLOW_UP_WORDS = 4
MAX_FOLLOW_UP_CJK = 8


@dataclass(frozen=True)
class Turn:
    """One earlier message as the rewriter sees it."""

    role: Literal["user", "assistant"]
    text: str
    standalone: str | None = None
    """For user turns: the standalone form used when it was answered."""


def follow_up_cue(message: str, lang: Lang) -> Cue | None:
    """How strongly a message leans on what was said before."""
    content = words(message)
    if lang == "zh":
        cjk = sum(1 for ch in message if "\u4e00" <= ch <= "\u9fff")
        if (
            _ZH_OPENERS.search(message)
            or _ZH_TAIL.search(message)
            or (_ZH_REFERS.search(message) and cjk <= 2 * MAX_FOLLOW_UP_CJK)
        ):
            return "strong"
        return "weak" if cjk <= MAX_FOLLOW_UP_CJK else None
    if _EN_OPENERS.search(message) or (
        _EN_REFERS.search(message) and len(content) <= MAX_FOLLOW_UP_WORDS + 2
    ):
        return "strong"
    return "weak" if len(content) <= MAX_FOLLOW_UP_WORDS else None


def previous_question(history: Sequence[Turn]) -> str | None:
    """The standalone form of the latest user question, if any."""
    for turn in reversed(history):
        if turn.role == "user":
            return turn.standalone or turn.text
    return None


def concat(message: str, previous: str, lang: Lang) -> str:
    # Only the question itself is carried, not what it was a follow-up to, so
    # chains of follow-ups do not grow without bound.
    core = re.split(r"\s*[（(](?:follow-up to|接上一个问题)[:：]", previous)[0].strip()
    if lang == "zh":
        return f"{message}（接上一个问题：{core}）"
    return f"{message} (follow-up to: {core})"


def _same(a: str, b: str) -> bool:
    return words(a) == words(b)


class Rewriter:
    """Makes the latest message standalone with the configured method."""

    def __init__(
        self,
        mode: RewriteMode,
        llm: LLM,
        prompts: PromptLibrary,
        history_tokens: int,
        weak_max_score: float,
        max_tokens: int = 64,
    ) -> None:
        self._mode = mode
        self._llm = llm
        self._prompts = prompts
        self._history_tokens = history_tokens
        self._weak_max_score = weak_max_score
        self._max_tokens = max_tokens

    @property
    def mode(self) -> RewriteMode:
        return self._mode

    def needs_rewrite(
        self,
        message: str,
        lang: Lang,
        history: Sequence[Turn],
        probe: Callable[[str], float | None] | None = None,
    ) -> bool:
        """A follow-up with an earlier question to lean on; `probe` scores the message alone."""
        if self._mode == "off" or previous_question(history) is None:
            return False
        cue = follow_up_cue(message, lang)
        if cue == "weak" and probe is not None:
            score = probe(message)
            return score is None or score < self._weak_max_score
        return cue is not None

    def rewrite(
        self,
        message: str,
        lang: Lang,
        history: Sequence[Turn],
        probe: Callable[[str], float | None] | None = None,
        stop: threading.Event | None = None,
    ) -> str | None:
        """The standalone question, or None when the message is used as it is; `stop` (the
        caller went away) ends the model call."""
        if not self.needs_rewrite(message, lang, history, probe):
            return None
        previous = previous_question(history)
        assert previous is not None  # checked by needs_rewrite
        if self._mode == "concat":
            return concat(message, previous, lang)
        rewritten = self._with_llm(message, lang, history, stop)
        if (
            rewritten is None
            or _same(rewritten, previous)  # the earlier question instead of the new one
            or set(words(rewritten)) <= set(words(message))  # nothing added: still elliptic
        ):
            return concat(message, previous, lang)
        return rewritten

    def bounded(self, history: Sequence[Turn]) -> list[Turn]:
        """The latest turns that fit `history_tokens` (model tokenizer), oldest first."""
        kept: list[Turn] = []
        budget = self._history_tokens
        for turn in reversed(history):
            cost = self._llm.count_tokens(turn.text) + 4
            if cost > budget:
                break
            kept.append(turn)
            budget -= cost
        return kept[::-1]

    def _with_llm(
        self, message: str, lang: Lang, history: Sequence[Turn], stop: threading.Event | None
    ) -> str | None:
        turns = [{"role": t.role, "text": t.text} for t in self.bounded(history)]
        prompt = self._prompts.render("rewrite", lang, turns=turns, message=message)
        messages = [ChatMessage("user", prompt)]
        raw = "".join(self._llm.stream(messages, max_tokens=self._max_tokens, stop=stop))
        line = raw.strip().splitlines()[0].strip().strip('"“”') if raw.strip() else ""
        return line or None
