"""A logistic-regression layer on sentence embeddings: fitted by scikit-learn, kept as arrays.

Both dialogue classifiers (intent, sentiment polarity) are one linear layer on the
embedder's query vectors. scikit-learn fits it (L2-regularised multinomial
logistic regression, lbfgs); what is kept is only its ``coef_``, ``intercept_``
and the class names, as numpy arrays in an ``.npz`` file read with
``allow_pickle=False``. So a cache file cannot run code when loaded, and
prediction needs numpy alone (the same softmax scikit-learn's
``predict_proba`` computes).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import cast

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]


def sklearn_version() -> str:
    """Part of every cache key: another scikit-learn may fit (slightly) other weights."""
    return version("scikit-learn")


def cache_key(*parts: bytes | str) -> str:
    """A short hex digest of the parts (files' bytes, model name, fit signature)."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "little"))  # unambiguous boundaries
        digest.update(data)
    return digest.hexdigest()[:24]


def softmax(logits: Floats) -> Floats:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return cast(Floats, shifted / shifted.sum(axis=-1, keepdims=True))


@dataclass(frozen=True)
class LinearModel:
    """Class probabilities = softmax(coef @ x + intercept), one row of `coef` per label."""

    labels: tuple[str, ...]
    coef: Floats
    """(n_labels, dim)."""
    intercept: Floats
    """(n_labels,)."""

    def __post_init__(self) -> None:
        n = len(self.labels)
        if n < 2 or len(set(self.labels)) != n:
            raise ValueError(f"a model needs two or more distinct labels, not {self.labels}")
        if self.coef.ndim != 2 or self.coef.shape[0] != n or self.intercept.shape != (n,):
            raise ValueError(
                f"coef {self.coef.shape} / intercept {self.intercept.shape} do not fit {n} labels"
            )

    @property
    def dim(self) -> int:
        return int(self.coef.shape[1])

    def probabilities(self, vectors: npt.NDArray[np.floating]) -> Floats:
        """Probabilities per label for one vector (dim,) or a batch (n, dim)."""
        if vectors.shape[-1] != self.dim or vectors.ndim not in (1, 2):
            raise ValueError(f"vector of shape {vectors.shape}; expected (..., {self.dim})")
        return softmax(vectors.astype(np.float64) @ self.coef.T + self.intercept)

    def save(self, path: Path) -> None:
        """Writes the arrays (no pickled objects) to a temporary file, then renames it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with tmp.open("wb") as fh:
            np.savez(fh, labels=np.array(self.labels), coef=self.coef, intercept=self.intercept)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> LinearModel:
        """Reads what `save` wrote; OSError, KeyError, ValueError or BadZipFile if it cannot."""
        with np.load(path, allow_pickle=False) as data:
            return cls(
                tuple(str(s) for s in data["labels"]),
                np.asarray(data["coef"], dtype=np.float64),
                np.asarray(data["intercept"], dtype=np.float64),
            )


def fit_logistic(
    vectors: npt.NDArray[np.floating],
    targets: Sequence[str],
    labels: Sequence[str],
    *,
    c: float,
    balanced: bool = False,
    max_iter: int = 1000,
) -> LinearModel:
    """Fits multinomial logistic regression of `targets` on `vectors`, labels in `labels` order.

    `c` is scikit-learn's inverse L2 strength; `balanced` weighs each class by the
    inverse of its frequency. lbfgs on a convex loss from a zero start is
    deterministic. Two labels give scikit-learn's one-row binary model, stored as
    two rows (0 and w) so that the softmax equals its sigmoid.
    """
    from sklearn.linear_model import LogisticRegression  # only training needs it

    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({t for t in targets if t not in index})
    if unknown:
        raise ValueError(f"targets outside the labels: {', '.join(unknown)}")
    y = np.array([index[t] for t in targets], dtype=np.int64)
    if len(set(y.tolist())) != len(labels):
        raise ValueError(f"every label needs at least one example: {', '.join(labels)}")
    model = LogisticRegression(
        C=c, max_iter=max_iter, class_weight="balanced" if balanced else None
    )
    model.fit(np.asarray(vectors, dtype=np.float64), y)
    coef = np.asarray(model.coef_, dtype=np.float64)
    intercept = np.asarray(model.intercept_, dtype=np.float64)
    if coef.shape[0] == 1:  # binary: p(1) = sigmoid(w.x + b) = softmax([0, w.x + b])[1]
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.concatenate([[0.0], intercept])
    return LinearModel(tuple(labels), coef, intercept)
