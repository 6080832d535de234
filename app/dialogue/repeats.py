"""Whether a customer asks the same question again: the one definition of "a repeat".

A repeat is a reason to hand off (the first answer did not help) and an anger
cue; both use `repeats`. The same question is the same text once case, spaces
and punctuation are dropped, most of the same words (Chinese: character pairs),
or, when the caller has embeddings, a near-identical meaning.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from app.domain import Lang

REPEAT_WINDOW = 3
"""How many earlier customer messages are compared for "asked again"."""
MIN_CHARS = 4
"""Shorter messages ("ok", "hi", "在吗") said twice are not a grievance."""
OVERLAP = 0.7
"""Jaccard overlap of words (Chinese: character bigrams) from which two texts are the same."""

_NOISE = re.compile(r"[\s\W_]+", re.UNICODE)


def normalise(text: str) -> str:
    """Lower case without spaces and punctuation: "Where is my order?!" == "where is my order"."""
    return _NOISE.sub("", text.lower())


def overlap(a: str, b: str, lang: Lang) -> float:
    """Jaccard overlap: of character bigrams for Chinese, of words for English."""
    if lang == "zh":
        sa = {a[i : i + 2] for i in range(len(a) - 1)}
        sb = {b[i : i + 2] for i in range(len(b) - 1)}
    else:
        sa, sb = set(re.findall(r"\w+", a.lower())), set(re.findall(r"\w+", b.lower()))
    return len(sa & sb) / len(sa | sb) if sa and sb else 0.0


def repeats(
    message: str,
    earlier: Sequence[str],
    lang: Lang,
    same_meaning: Callable[[str], bool] | None = None,
) -> bool:
    """Whether `message` says again what one of the last `REPEAT_WINDOW` earlier messages said.

    `earlier`: the customer's previous messages, oldest first. `same_meaning(other)`,
    when given, adds a semantic test (the analyser compares embeddings), asked only
    of messages the text tests did not already match.
    """
    key = normalise(message)
    if len(key) < MIN_CHARS:
        return False
    for other in earlier[-REPEAT_WINDOW:]:
        if not other.strip():
            continue
        if normalise(other) == key or overlap(message, other, lang) >= OVERLAP:
            return True
        if same_meaning is not None and same_meaning(other):
            return True
    return False
