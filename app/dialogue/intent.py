"""What a shopper's message asks for: one of ten intents, from its embedding.

The app already loads a multilingual embedder, so a message's query vector is
free; a softmax (multinomial logistic) regression on top learns the ten
intents from a few hundred labelled lines in well under a second. Labels are
data (``data/dialogue/intents.jsonl``), the fitted weights are cached keyed by
that file's content. An explicit request for a person ("转人工", "real
person") can be made to override the model (`keyword_override`); it is off by
default because it measured no better (see `_HUMAN_REQUEST`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast, get_args

import numpy as np
import numpy.typing as npt

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
Floats = npt.NDArray[np.float64]

# Bump when the fit or the cache layout changes (the hyper-parameters below are
# part of the cache key already), so old caches are not reused.
_CACHE_VERSION = "softmax-v1"
# L2 penalty and steps chosen by 5-fold cross-validation on the train split only
# (accuracy 0.946, log-loss 0.17, mean confidence 0.93 with embeddinggemma-300m).
_L2 = 1e-5
_STEPS = 300
_LEARNING_RATE = 0.1

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


def fit_softmax(vectors: Floats, targets: npt.NDArray[np.int64], n_classes: int) -> Floats:
    """L2-regularised multinomial logistic regression by full-batch Adam.

    Returns a (dim + 1, n_classes) matrix whose last row is the bias. Zero
    start and full batches make it deterministic; the loss is convex, so the
    fixed step count only has to be enough (checked by cross-validation).
    """
    n = vectors.shape[0]
    x = np.hstack([vectors, np.ones((n, 1))])
    onehot = np.eye(n_classes)[targets]
    weights = np.zeros((x.shape[1], n_classes))
    m = np.zeros_like(weights)
    v = np.zeros_like(weights)
    beta1, beta2 = 0.9, 0.999
    for step in range(1, _STEPS + 1):
        probs = _softmax(x @ weights)
        grad = x.T @ (probs - onehot) / n
        grad[:-1] += _L2 * weights[:-1]
        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * grad**2
        m_hat = m / (1 - beta1**step)
        v_hat = v / (1 - beta2**step)
        weights -= _LEARNING_RATE * m_hat / (np.sqrt(v_hat) + 1e-8)
    return weights


def _fit_signature() -> str:
    return f"{_CACHE_VERSION}:l2={_L2}:steps={_STEPS}:lr={_LEARNING_RATE}"


def _softmax(logits: Floats) -> Floats:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return cast(Floats, shifted / shifted.sum(axis=-1, keepdims=True))


def _as_intents(names: Sequence[str]) -> tuple[Intent, ...]:
    unknown = [n for n in names if n not in INTENTS]
    if unknown:
        raise ValueError(f"unknown intent labels: {', '.join(unknown)}")
    return tuple(cast(Intent, n) for n in names)


class IntentClassifier:
    """Softmax regression over the embedder's query vectors, plus the hand-off rule."""

    def __init__(
        self,
        embedder: Embedder,
        labels: Sequence[str],
        weights: Floats,
        *,
        keyword_override: bool = False,
    ) -> None:
        self.labels = _as_intents(labels)
        if weights.shape != (embedder.dim + 1, len(self.labels)):
            raise ValueError(
                f"weights of shape {weights.shape} do not fit an embedder of dim {embedder.dim}"
                f" and {len(self.labels)} labels"
            )
        self._embedder = embedder
        self._weights = weights
        self.keyword_override = keyword_override

    @classmethod
    def train(
        cls, embedder: Embedder, rows: Sequence[LabelledText], *, keyword_override: bool = False
    ) -> IntentClassifier:
        """Embeds every row as a query and fits the labels present (at least two)."""
        labels = [label for label in INTENTS if any(r.intent == label for r in rows)]
        if len(labels) < 2:
            raise ValueError("training needs examples of at least two intents")
        vectors = np.stack([embedder.embed_query(r.text) for r in rows]).astype(np.float64)
        targets = np.array([labels.index(r.intent) for r in rows], dtype=np.int64)
        weights = fit_softmax(vectors, targets, len(labels))
        return cls(embedder, labels, weights, keyword_override=keyword_override)

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
        The cache key hashes the file's bytes, the model name and the embedding
        size: editing the examples or switching models retrains; a restart does not
        re-embed.
        """
        raw = examples.read_bytes()
        rows = load_examples(examples)
        key = hashlib.sha256(
            b"\0".join(
                [raw, model_name.encode(), str(embedder.dim).encode(), _fit_signature().encode()]
            )
        ).hexdigest()[:24]
        path = cache_dir / f"intent-{key}.npz"
        if path.exists():
            try:
                with np.load(path, allow_pickle=False) as data:
                    labels = [str(s) for s in data["labels"]]
                    weights = np.asarray(data["weights"], dtype=np.float64)
                clf = cls(embedder, labels, weights, keyword_override=keyword_override)
                logger.info("intent classifier loaded from %s", path)
                return clf
            except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
                logger.warning("intent cache %s unreadable (%s); retraining", path, exc)
        train_rows = [r for r in rows if r.split == "train"]
        clf = cls.train(embedder, train_rows, keyword_override=keyword_override)
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")  # then an atomic rename
        with tmp.open("wb") as fh:
            np.savez(fh, labels=np.array(clf.labels), weights=clf._weights)
        os.replace(tmp, path)
        logger.info("intent classifier trained on %d rows, cached at %s", len(train_rows), path)
        return clf

    def with_keyword_override(self, enabled: bool) -> IntentClassifier:
        """The same fitted model with the hand-off rule switched on or off."""
        return IntentClassifier(
            self._embedder, self.labels, self._weights, keyword_override=enabled
        )

    def predict(self, text: str, vector: Vectors | None = None) -> IntentResult:
        """Classifies one message; pass `vector` when the query embedding is at hand."""
        if vector is None:
            vector = self._embedder.embed_query(text)
        if vector.shape != (self._embedder.dim,):
            raise ValueError(f"vector of shape {vector.shape}; expected ({self._embedder.dim},)")
        x = np.append(vector.astype(np.float64), 1.0)
        probs = _softmax(x @ self._weights)
        scores: dict[str, float] = {
            label: float(p) for label, p in zip(self.labels, probs, strict=True)
        }
        if self.keyword_override and explicit_human_request(text):
            return IntentResult("human_agent", 1.0, scores, by_rule=True)
        best = int(np.argmax(probs))
        return IntentResult(self.labels[best], float(probs[best]), scores)
