"""What one customer message says besides its question: language, intent, mood, repetition."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from app.config import DialogueSettings
from app.dialogue.fake import KeywordIntentClassifier
from app.dialogue.intent import IntentClassifier, IntentResult
from app.dialogue.repeats import REPEAT_WINDOW, normalise, repeats
from app.dialogue.sentiment import LexiconPolarity, PolarityModel, Sentiment, assess
from app.dialogue.sentiment_model import SentimentClassifier, TrainingSources
from app.domain import Lang
from app.embeddings import Embedder, Vectors

__all__ = [
    "REPEAT_WINDOW",
    "Analyser",
    "Analysis",
    "IntentModel",
    "build_analyser",
    "build_intent_model",
    "build_polarity_model",
    "normalise",
    "sentiment_backend",
]


class IntentModel(Protocol):
    """Labels a message; `vector` is its query embedding when the caller has it."""

    def predict(self, text: str, vector: Vectors | None = None) -> IntentResult: ...


@dataclass(frozen=True)
class Analysis:
    lang: Lang
    intent: IntentResult
    sentiment: Sentiment
    repeats_earlier_question: bool


class Analyser:
    """Intent (embedding classifier), sentiment (polarity model + anger rules), repetition."""

    def __init__(
        self,
        embedder: Embedder,
        classifier: IntentModel,
        repeat_similarity: float,
        polarity: PolarityModel | None = None,
    ) -> None:
        """`polarity`: the configured model (`build_analyser`); None = the lexicon."""
        self._embedder = embedder
        self._classifier = classifier
        self._polarity = polarity if polarity is not None else LexiconPolarity()
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

        def same_meaning(other: str) -> bool:
            similarity = float(np.dot(vector, self._embedder.embed_query(other)))
            return similarity >= self._repeat_similarity

        repeated = repeats(message, earlier, lang, same_meaning)
        return Analysis(
            lang=lang,
            intent=intent,
            sentiment=assess(message, self._polarity.polarity(message, vector), repeated),
            repeats_earlier_question=repeated,
        )


def sentiment_backend(settings: DialogueSettings) -> Literal["embedding", "lexicon"]:
    """The polarity backend in force: "auto" follows the intent backend (fake → lexicon)."""
    if settings.sentiment_backend != "auto":
        return settings.sentiment_backend
    return "lexicon" if settings.intent_backend == "fake" else "embedding"


def build_intent_model(
    embedder: Embedder, settings: DialogueSettings, cache_dir: Path, embedding_name: str
) -> IntentModel:
    """The configured intent model: the embedding classifier, loaded from
    `cache_dir/intent` or trained there first (`shopdesk models prepare` does that at
    set-up), or the keyword fake, which needs nothing."""
    match settings.intent_backend:
        case "embedding":
            return IntentClassifier.load_or_train(
                embedder, settings.intent_examples, cache_dir / "intent", embedding_name
            )
        case "fake":
            return KeywordIntentClassifier()


def build_polarity_model(
    embedder: Embedder, settings: DialogueSettings, cache_dir: Path, embedding_name: str
) -> PolarityModel:
    """The configured polarity model: the classifier, loaded from `cache_dir/sentiment`
    or trained there first (a few minutes on 2 cores; `shopdesk models prepare`), or the
    lexicon, which needs nothing."""
    match sentiment_backend(settings):
        case "embedding":
            sources = TrainingSources(
                tuple(settings.sentiment_examples),
                settings.intent_examples,
                settings.sentiment_reviews_per_class,
            )
            return SentimentClassifier.load_or_train(
                embedder, sources, cache_dir / "sentiment", embedding_name
            )
        case "lexicon":
            return LexiconPolarity()


def build_analyser(
    embedder: Embedder, settings: DialogueSettings, cache_dir: Path, embedding_name: str
) -> Analyser:
    """The analyser with the configured intent and polarity models (see above).

    `cache_dir` is the model cache; `embedding_name` names the embedding model, so a
    classifier fitted on another model's vectors is never reused.
    """
    return Analyser(
        embedder,
        build_intent_model(embedder, settings, cache_dir, embedding_name),
        settings.repeat_similarity,
        build_polarity_model(embedder, settings, cache_dir, embedding_name),
    )
