"""The last check before text reaches a customer: no system prompt, no stranger's data.

Prompt-side defences lower the odds that the model follows an injected order;
this check does not depend on the model at all:
- **system prompt**: any run of `window` characters (after folding case and
  spaces) that also occurs in one of our system prompts blocks the answer;
- **personal data**: an email address, phone number, order number or card-like
  number in the answer must occur in what the model was shown (the passages and
  the customer's own message); anything else is someone else's data, or made up.

While streaming, `app.rag.answer.CheckedText` applies it to each sentence (with the
tail of what was sent before) before the sentence is sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from app.tools.identity import DEFAULT_ORDER_ID_PATTERN

_SPACES = re.compile(r"\s+")
_CJK = re.compile(r"[\u4e00-\u9fff]")
_WORDLIKE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+|" + DEFAULT_ORDER_ID_PATTERN)
"""Emails and order numbers: compared as written (case folded)."""
_NUMBER = re.compile(r"(?<![\w-])\+?\d[\d ()-]{8,}\d(?![\w-])")
"""Phone or card numbers: 10+ digits with separators, compared as digits."""


def _fold(text: str) -> str:
    return _SPACES.sub(" ", text).strip().lower()


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


class OutputGuard:
    """Why an answer must not be shown (`violation`), or None."""

    def __init__(
        self, system_prompts: Iterable[str], *, window: int = 24, cjk_window: int = 10
    ) -> None:
        """`window` characters of an English prompt, `cjk_window` of a Chinese one (a
        Chinese character carries about a word)."""
        self._shingles: dict[int, set[str]] = {window: set(), cjk_window: set()}
        for prompt in system_prompts:
            folded = _fold(prompt)
            size = cjk_window if len(_CJK.findall(folded)) > len(folded) / 4 else window
            self._shingles[size].update(
                folded[start : start + size] for start in range(max(0, len(folded) - size + 1))
            )

    def leaks_system_prompt(self, text: str) -> bool:
        folded = _fold(text)
        return any(
            folded[start : start + size] in shingles
            for size, shingles in self._shingles.items()
            for start in range(max(0, len(folded) - size + 1))
        )

    @staticmethod
    def unknown_personal_data(text: str, shown: Shown | str) -> list[str]:
        """Personal data in `text` that is not in `shown` (compared as digits for numbers)."""
        seen = Shown.of(shown) if isinstance(shown, str) else shown
        unknown = [
            m.group(0) for m in _WORDLIKE.finditer(text) if m.group(0).lower() not in seen.folded
        ]
        for match in _NUMBER.finditer(text):
            digits = _digits(match.group(0))
            if len(digits) >= 10 and digits not in seen.digits:
                unknown.append(match.group(0))
        return unknown

    def violation(self, text: str, shown: Shown | str) -> str | None:
        if self.leaks_system_prompt(text):
            return "blocked_system_prompt"
        if self.unknown_personal_data(text, shown):
            return "blocked_personal_data"
        return None


@dataclass(frozen=True)
class Shown:
    """What the model was shown, read once for the personal-data check."""

    folded: str
    digits: frozenset[str]

    @classmethod
    def of(cls, text: str) -> Shown:
        return cls(text.lower(), frozenset(_digits(m.group(0)) for m in _NUMBER.finditer(text)))
