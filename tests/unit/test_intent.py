import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from app.dialogue.intent import (
    INTENTS,
    ExamplesError,
    IntentClassifier,
    LabelledText,
    explicit_human_request,
    load_examples,
)
from app.dialogue.linear import LinearModel
from app.dialogue.sentiment_model import PolarityText, SentimentClassifier
from app.embeddings import HashEmbedder
from eval import dialogue
from tests.support.embedders import CountingEmbedder

pytestmark = pytest.mark.unit

ROWS = [
    LabelledText("where is my parcel", "order_status", "en"),
    LabelledText("track parcel status", "order_status", "en"),
    LabelledText("我的包裹到哪了", "order_status", "zh"),
    LabelledText("refund my money", "return_refund", "en"),
    LabelledText("return refund policy", "return_refund", "en"),
    LabelledText("我要退款", "return_refund", "zh"),
    LabelledText("hello there", "greeting", "en"),
    LabelledText("thanks bye", "greeting", "en"),
    LabelledText("你好", "greeting", "zh"),
    LabelledText("toaster wattage voltage", "product_question", "en"),
]


def _write(path: Path, rows: Sequence[LabelledText], extra: Sequence[dict[str, str]] = ()) -> Path:
    lines = [
        json.dumps({"text": r.text, "intent": r.intent, "lang": r.lang, "split": r.split})
        for r in rows
    ]
    lines += [json.dumps(e) for e in extra]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_train_then_predict_returns_the_trained_labels() -> None:
    clf = IntentClassifier.train(HashEmbedder(), ROWS)
    assert not clf.keyword_override  # measured no better; off unless asked for
    assert set(clf.labels) == {"order_status", "return_refund", "greeting", "product_question"}
    for row in ROWS:
        result = clf.predict(row.text)
        assert result.label == row.intent, row.text
        assert result.confidence == pytest.approx(result.scores[row.intent])
        assert sum(result.scores.values()) == pytest.approx(1.0)
        assert not result.by_rule


def test_a_given_vector_is_used_instead_of_embedding() -> None:
    embedder = CountingEmbedder()
    clf = IntentClassifier.train(embedder, ROWS)
    before = embedder.calls
    vector = HashEmbedder().embed_query("我要退款")
    assert clf.predict("我要退款", vector).label == "return_refund"
    assert embedder.calls == before
    with pytest.raises(ValueError, match="shape"):
        clf.predict("x", vector[:10])


def test_training_needs_two_intents_and_known_labels() -> None:
    with pytest.raises(ValueError, match="two intents"):
        IntentClassifier.train(HashEmbedder(), ROWS[:3])
    coef, intercept = np.zeros((2, HashEmbedder().dim)), np.zeros(2)
    with pytest.raises(ValueError, match="unknown intent"):
        IntentClassifier(
            HashEmbedder(), LinearModel(("order_status", "smalltalk"), coef, intercept)
        )
    with pytest.raises(ValueError, match="does not fit"):
        IntentClassifier(
            HashEmbedder(dim=8), LinearModel(("order_status", "greeting"), coef, intercept)
        )


def test_keyword_rule_overrides_the_model_for_explicit_requests() -> None:
    clf = IntentClassifier.train(HashEmbedder(), ROWS, keyword_override=True)
    with_rule = clf.predict("hello, can I talk to a real person")
    assert (with_rule.label, with_rule.by_rule, with_rule.confidence) == ("human_agent", True, 1.0)
    without = clf.with_keyword_override(False).predict("hello, can I talk to a real person")
    assert without.label != "human_agent"
    assert not without.by_rule
    assert clf.predict("转人工").label == "human_agent"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I want to speak to an AGENT", True),
        ("human please", True),
        ("人工客服在吗", True),
        ("转人工", True),
        ("人工！", True),
        ("我要找真人", True),
        ("is the case made of artificial leather", False),
        ("人工智能音箱有货吗", False),
        ("where is my order", False),
    ],
)
def test_explicit_human_request(text: str, expected: bool) -> None:
    assert explicit_human_request(text) is expected


def test_a_cache_of_the_old_hand_written_softmax_is_not_reused(tmp_path: Path) -> None:
    """The fit's signature is in the key: caches of the former fit are retrained, not read."""
    examples = _write(tmp_path / "intents.jsonl", ROWS)
    IntentClassifier.load_or_train(CountingEmbedder(), examples, tmp_path, "m")
    (current,) = tmp_path.glob("intent-*.npz")
    with np.load(current, allow_pickle=False) as data:
        assert set(data.files) == {"labels", "coef", "intercept"}  # arrays only, no pickle
    current.unlink()
    old = tmp_path / "intent-0123456789abcdef01234567.npz"  # an old key, old layout
    np.savez(old, labels=np.array(["greeting", "other"]), weights=np.zeros((65, 2)))
    embedder = CountingEmbedder()
    IntentClassifier.load_or_train(embedder, examples, tmp_path, "m")
    assert embedder.calls == len(ROWS)


def test_load_or_train_caches_and_reuses_the_fit(tmp_path: Path) -> None:
    examples = _write(tmp_path / "intents.jsonl", ROWS)
    cache = tmp_path / "cache"
    first = CountingEmbedder()
    clf = IntentClassifier.load_or_train(first, examples, cache, "hash-64")
    assert first.calls == len(ROWS)
    assert len(list(cache.glob("intent-*.npz"))) == 1

    second = CountingEmbedder()
    again = IntentClassifier.load_or_train(second, examples, cache, "hash-64")
    assert second.calls == 0
    vector = HashEmbedder().embed_query("where is my parcel")
    assert again.predict("where is my parcel", vector) == clf.predict("where is my parcel", vector)

    other_model = CountingEmbedder()
    IntentClassifier.load_or_train(other_model, examples, cache, "another-model")
    assert other_model.calls == len(ROWS)


def test_changed_examples_retrain(tmp_path: Path) -> None:
    examples = _write(tmp_path / "intents.jsonl", ROWS)
    cache = tmp_path / "cache"
    IntentClassifier.load_or_train(CountingEmbedder(), examples, cache, "m")
    _write(examples, [*ROWS, LabelledText("pay with card", "payment", "en")])
    embedder = CountingEmbedder()
    clf = IntentClassifier.load_or_train(embedder, examples, cache, "m")
    assert embedder.calls == len(ROWS) + 1
    assert "payment" in clf.labels
    assert len(list(cache.glob("intent-*.npz"))) == 2


def test_only_the_train_split_is_learned(tmp_path: Path) -> None:
    held_out = LabelledText("pay with card", "payment", "en", "test")
    examples = _write(tmp_path / "intents.jsonl", [*ROWS, held_out])
    clf = IntentClassifier.load_or_train(CountingEmbedder(), examples, tmp_path, "m")
    assert "payment" not in clf.labels


def test_an_unreadable_cache_is_retrained(tmp_path: Path) -> None:
    examples = _write(tmp_path / "intents.jsonl", ROWS)
    IntentClassifier.load_or_train(CountingEmbedder(), examples, tmp_path, "m")
    (cached,) = tmp_path.glob("intent-*.npz")
    for garbage in (b"not an npz", cached.read_bytes()[:100]):
        cached.write_bytes(garbage)
        embedder = CountingEmbedder()
        IntentClassifier.load_or_train(embedder, examples, tmp_path, "m")
        assert embedder.calls == len(ROWS)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ('{"text": "hi", "intent": "smalltalk", "lang": "en", "split": "train"}', "intent"),
        ('{"text": "hi", "intent": "greeting", "lang": "fr", "split": "train"}', "lang"),
        ('{"text": "", "intent": "greeting", "lang": "en", "split": "train"}', "text"),
        ('{"text": "hi", "intent": "greeting", "lang": "en", "split": "dev"}', "split"),
        ('{"text": "hi", "intent": "greeting"', "Expecting"),
        ('["hi", "greeting"]', "JSON object"),
    ],
)
def test_a_bad_line_names_file_and_line(tmp_path: Path, bad: str, message: str) -> None:
    path = _write(tmp_path / "intents.jsonl", ROWS[:2])
    path.write_text(path.read_text(encoding="utf-8") + "\n" + bad + "\n", encoding="utf-8")
    with pytest.raises(ExamplesError, match=rf"intents\.jsonl:4: .*{message}"):
        load_examples(path)


def test_the_shipped_examples_are_valid_and_balanced() -> None:
    rows = load_examples(Path(__file__).parents[2] / "data" / "dialogue" / "intents.jsonl")
    for intent in INTENTS:
        for lang in ("en", "zh"):
            cell = [r for r in rows if r.intent == intent and r.lang == lang]
            assert len(cell) >= 30, (intent, lang)
            assert any(r.split == "test" for r in cell)
    assert len({r.text for r in rows}) == len(rows)


def test_eval_runs_with_a_fake_embedder(tmp_path: Path) -> None:
    test_rows = [
        LabelledText("where is my parcel now", "order_status", "en", "test"),
        LabelledText("退款", "return_refund", "zh", "test"),
    ]
    examples = _write(tmp_path / "intents.jsonl", [*ROWS, *test_rows])
    sentiment = tmp_path / "sentiment.jsonl"
    sentiment.write_text(
        json.dumps(
            {
                "text": "great, thanks",
                "label": "positive",
                "anger": False,
                "lang": "en",
                "split": "test",
            }
        )
        + "\n",
        encoding="utf-8",
    )
    golden = tmp_path / "golden.jsonl"
    golden.write_text(
        json.dumps(
            {
                "question": "track my order 123",
                "dataset": dialogue.BITEXT_DATASET,
                "origin": {"intent": "track_order"},
            }
        )
        + "\n",
        encoding="utf-8",
    )
    polarity = SentimentClassifier.train(
        HashEmbedder(),
        [
            PolarityText("great, thanks", "positive", "en", "t"),
            PolarityText("awful, broken", "negative", "en", "t"),
            PolarityText("what size", "neutral", "en", "t"),
        ],
    )
    extra = {"reviews": [PolarityText("差评 很差", "negative", "zh", "t")]}
    report = dialogue.run(
        HashEmbedder(), examples, sentiment, golden, polarity=polarity, extra_sentiment=extra
    )
    assert report["intent"]["en"]["model"]["n"] == 1
    assert report["bitext"]["model+keyword"]["n"] == 1
    shop = report["sentiment"]["shop"]["en"]
    assert shop["lexicon"]["accuracy"] == shop["classifier"]["accuracy"] == 1.0
    assert shop["classifier"]["anger_support"] == 0
    assert report["sentiment"]["reviews"]["zh"]["classifier"]["n"] == 1
    text = dialogue.markdown(report)
    assert "Confusion: test zh" in text
    assert "| reviews | zh | 1 |" in text
    assert "lexicon acc | lexicon macro-F1 | classifier acc" in text
    missing = dialogue.run(HashEmbedder(), examples, sentiment, tmp_path / "absent.jsonl")
    assert "skipped" in missing["bitext"]


def test_every_bitext_intent_has_a_mapping() -> None:
    assert len(dialogue.BITEXT_TO_INTENT) == 27
    assert set(dialogue.BITEXT_TO_INTENT.values()) <= set(INTENTS)


def test_classification_metrics() -> None:
    result = dialogue.classification(["a", "a", "b"], ["a", "b", "b"], ["a", "b", "c"])
    assert result["accuracy"] == pytest.approx(2 / 3)
    assert result["macro_f1"] == pytest.approx(2 / 3)  # F1(a) = F1(b) = 2/3; c has no gold
    assert result["confusion"] == [[1, 1, 0], [0, 1, 0], [0, 0, 0]]
