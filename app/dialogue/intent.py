"""What a shopper's message asks for: one of ten intents, from its embedding.

The app already loads a multilingual embedder, so a message's query vector is
free; a multinomial logistic regression on top (scikit-learn, see
`app.dialogue.linear`) learns the ten intents from a few hundred labelled lines
in about a second. Labels are data (``data/dialogue/intents.jsonl``), the
fitted weights are cached as plain arrays keyed by that file's content. An
explicit request for a person ("转人工", "real person") can be made to override
the model (`keyword_override`); it is off by default because it measured no
better (see `_HUMAN_REQUEST`).
"""

from __future__ import annotations

import json
import logging
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast, get_args

import numpy as np

from app.dialogue.linear import LinearModel, cache_key, fit_logistic, sklearn_version
from app.dialogue.vectors import embed_queries
from app.domain import Lang
from app.embeddings import Embedder, Vectors

logger = logging.getLogger(__name__)

Intent = Literal[
    "product_question",
    "order_status",
    "return_refund",
    "shipping",
    "payment",
    "complaint",
    "recommendation",
    "human_agent",
    "greeting",
    "other",
]
INTENTS: tuple[Intent, ...] = get_args(Intent)
Split = Literal["train", "test"]

# Bump when the fit or the cache layout changes (C and the scikit-learn version
# are part of the cache key already), so old caches are not reused.
_CACHE_VERSION = "sklearn-logreg-v1"
# scikit-learn's inverse L2 strength, chosen by 5-fold cross-validation on the train split
# only (embeddinggemma-300m; accuracy / log-loss): C=3 0.944 / 0.46, 10 0.946 / 0.29,
# 30 0.950 / 0.21, 100 0.952 / 0.18, 1000 0.952 / 0.17. The hand-written softmax it
# replaces had 0.946 / 0.17.
_C = 100.0

# Explicit requests for a person. Measured (eval/dialogue.py, embeddinggemma-300m):
# no change on the held-out split (en, zh) or on Bitext, where the model already
# finds every explicit request; in 5-fold cross-validation on the train split it
# fixed one message ("Operator!") and broke two complaints that mention an agent
# ("your agent was rude", "人工客服态度太恶劣"). So the model decides by default;
# the rule stays as an option for shops that want a hard guarantee of hand-off.
_HUMAN_REQUEST = re.compile(
    r"\b(?:human|real person|live agent|agent|representative|operator)s?\b"
    r"|转人工|人工客服|人工服务|找人工|接人工|真人|活人|^\W*人工\W*$",
    re.IGNORECASE,
)


class ExamplesError(ValueError):
    """A bad labelled-examples file; the message names the file and line."""


@dataclass(frozen=True)
class LabelledText:
    """One labelled shopper message."""

    text: str
    intent: Intent
    lang: Lang
    split: Split = "train"


@dataclass(frozen=True)
class IntentResult:
    label: Intent
    confidence: float
    """Probability of `label` (1.0 when the keyword rule chose it)."""
    scores: dict[str, float]
    """The model's probability for every label it was trained on."""
    by_rule: bool = False
    """True when the explicit-request rule, not the model, chose `label`."""


def explicit_human_request(text: str) -> bool:
    """Whether the message names a person to talk to ("agent", "转人工", "真人")."""
    return _HUMAN_REQUEST.search(text.strip()) is not None


def _field(row: dict[str, object], name: str, allowed: Sequence[str] | None) -> str:
    value = row.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"'{name}' must be a non-empty string")
    if allowed is not None and value not in allowed:
        raise ValueError(f"'{name}' is {value!r}; expected one of {', '.join(allowed)}")
    return value


def load_examples(path: Path) -> list[LabelledText]:
    """Reads labelled JSONL rows {text, intent, lang, split}; a bad row names file:line."""
    rows: list[LabelledText] = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
                if not isinstance(raw, dict):
                    raise ValueError("a row must be a JSON object")
                rows.append(
                    LabelledText(
                        text=_field(raw, "text", None),
                        intent=cast(Intent, _field(raw, "intent", INTENTS)),
                        lang=cast(Lang, _field(raw, "lang", ("en", "zh"))),
                        split=cast(Split, _field(raw, "split", ("train", "test"))),
                    )
                )
            except ValueError as exc:  # json.JSONDecodeError is a ValueError too
                raise ExamplesError(f"{path}:{number}: {exc}") from exc
    if not rows:
        raise ExamplesError(f"{path}: no labelled rows")
    return rows


def _fit_signature() -> str:
    return f"{_CACHE_VERSION}:C={_C}:sklearn={sklearn_version()}"


def _as_intents(names: Sequence[str]) -> tuple[Intent, ...]:
    unknown = [n for n in names if n not in INTENTS]
    if unknown:
        raise ValueError(f"unknown intent labels: {', '.join(unknown)}")
    return tuple(cast(Intent, n) for n in names)


class IntentClassifier:
    """Logistic regression over the embedder's query vectors, plus the hand-off rule."""

    def __init__(
        self, embedder: Embedder, model: LinearModel, *, keyword_override: bool = False
    ) -> None:
        self.labels = _as_intents(model.labels)
        if model.dim != embedder.dim:
            raise ValueError(
                f"a model of dim {model.dim} does not fit an embedder of dim {embedder.dim}"
            )
        self._embedder = embedder
        self._model = model
        self.keyword_override = keyword_override

    @classmethod
    def train(
        cls, embedder: Embedder, rows: Sequence[LabelledText], *, keyword_override: bool = False
    ) -> IntentClassifier:
        """Embeds every row as a query and fits the labels present (at least two)."""
        labels = [label for label in INTENTS if any(r.intent == label for r in rows)]
        if len(labels) < 2:
            raise ValueError("training needs examples of at least two intents")
        vectors = embed_queries(embedder, [r.text for r in rows])
        model = fit_logistic(vectors, [r.intent for r in rows], labels, c=_C)
        return cls(embedder, model, keyword_override=keyword_override)

    @classmethod
    def load_or_train(
        cls,
        embedder: Embedder,
        examples: Path,
        cache_dir: Path,
        model_name: str,
        *,
        keyword_override: bool = False,
    ) -> IntentClassifier:
        """Loads the cached fit for this examples file + embedder, or trains and caches it.

        Trains on the ``split == "train"`` rows only, so the test rows stay held
        out and the measurement in ``eval/dialogue.py`` describes this very model.
        The cache key hashes the file's bytes, the model name, the embedding size
        and the fit's signature: editing the examples, switching models or changing
        the fit retrains; a restart does not re-embed.
        """
        raw = examples.read_bytes()
        rows = load_examples(examples)
        key = cache_key(raw, model_name, str(embedder.dim), _fit_signature())
        path = cache_dir / f"intent-{key}.npz"
        if path.exists():
            try:
                clf = cls(embedder, LinearModel.load(path), keyword_override=keyword_override)
                logger.info("intent classifier loaded from %s", path)
                return clf
            except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
                logger.warning("intent cache %s unreadable (%s); retraining", path, exc)
        train_rows = [r for r in rows if r.split == "train"]
        clf = cls.train(embedder, train_rows, keyword_override=keyword_override)
        clf._model.save(path)
        logger.info("intent classifier trained on %d rows, cached at %s", len(train_rows), path)
        return clf

    def with_keyword_override(self, enabled: bool) -> IntentClassifier:
        """The same fitted model with the hand-off rule switched on or off."""
        return IntentClassifier(self._embedder, self._model, keyword_override=enabled)

    def predict(self, text: str, vector: Vectors | None = None) -> IntentResult:
        """Classifies one message; pass `vector` when the query embedding is at hand."""
        if vector is None:
            vector = self._embedder.embed_query(text)
        if vector.shape != (self._embedder.dim,):
            raise ValueError(f"vector of shape {vector.shape}; expected ({self._embedder.dim},)")
        probs = self._model.probabilities(vector)
        scores: dict[str, float] = {
            label: float(p) for label, p in zip(self.labels, probs, strict=True)
        }
        if self.keyword_override and explicit_human_request(text):
            return IntentResult("human_agent", 1.0, scores, by_rule=True)
        best = int(np.argmax(probs))
        return IntentResult(self.labels[best], float(probs[best]), scores)
