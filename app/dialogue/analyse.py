"""What one customer message says besides its question: language, intent, mood, repetition."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from app.dialogue.intent import IntentResult
from app.dialogue.sentiment import Sentiment, analyse_sentiment
from app.domain import Lang
from app.embeddings import Embedder, Vectors

REPEAT_WINDOW = 3
"""How many earlier customer messages are compared for "asked again"."""

_NOISE = re.compile(r"[\s\W_]+", re.UNICODE)


class IntentModel(Protocol):
    """Labels a message; `vector` is its query embedding when the caller has it."""

    def predict(self, text: str, vector: Vectors | None = None) -> IntentResult: ...


@dataclass(frozen=True)
class Analysis:
    lang: Lang
    intent: IntentResult
    sentiment: Sentiment
    repeats_earlier_question: bool


def normalise(text: str) -> str:
    """Lower case without spaces and punctuation: "Where is my order?!" == "where is my order"."""
    return _NOISE.sub("", text.lower())


class Analyser:
    """Intent (embedding classifier), sentiment (lexicon and cues) and repetition (cosine)."""

    def __init__(
        self, embedder: Embedder, classifier: IntentModel, repeat_similarity: float
    ) -> None:
        self._embedder = embedder
        self._classifier = classifier
        self._repeat_similarity = repeat_similarity

    def analyse(
        self, message: str, lang: Lang, earlier: Sequence[str], standalone: str | None = None
    ) -> Analysis:
        """`earlier`: the customer's previous messages, oldest first; `standalone`: the
        follow-up rewritten, whose intent is the one that counts ("What about Singapore?"
        alone reads like small talk)."""
        vector = self._embedder.embed_query(message)
        intent = (
            self._classifier.predict(message, vector)
            if standalone is None
            else self._classifier.predict(standalone)
        )
        return Analysis(
            lang=lang,
            intent=intent,
            sentiment=analyse_sentiment(message, lang, earlier),
            repeats_earlier_question=self._repeats(message, vector, earlier[-REPEAT_WINDOW:]),
        )

    def _repeats(self, message: str, vector: np.ndarray, earlier: Sequence[str]) -> bool:
        key = normalise(message)
        if not key:
            return False
        for text in earlier:
            if normalise(text) == key:
                return True
            other = self._embedder.embed_query(text)
            if float(np.dot(vector, other)) >= self._repeat_similarity:
                return True
        return False
