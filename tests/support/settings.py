"""Settings for tests: the deterministic fakes, or the real models and the shared model cache."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.config import Settings
from tests.support.paths import MODEL_CACHE

FAKES: dict[str, dict[str, Any]] = {
    "llm": {"backend": "fake"},
    "embedding": {"backend": "fake"},
    "store": {"backend": "memory"},
    "dialogue": {"intent_backend": "fake"},
}
"""The sections `fake_settings` starts from: fake model, hash embedder, memory store,
keyword intent classifier."""

RETRIEVAL = {"min_dense_score": 0.2, "faq_direct_score": 0.95}
"""The retrieval gates most app tests use with the hash embedder (whose cosines are not the
real model's): answer from a best cosine of 0.2, an FAQ directly only from 0.95."""


def merged(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `overrides` on top, nested mappings merged key by key (neither is changed)."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def fake_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings on the fakes (`FAKES`) over `data_dir`; `overrides` are merged section by
    section, so `llm={"queue_size": 0}` keeps the fake model and sets its queue."""
    return Settings(data_dir=data_dir, **merged(FAKES, overrides))


def real_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings with the real backends and the shared, already-assembled model cache."""
    return Settings(data_dir=data_dir, model_cache_dir=MODEL_CACHE, **overrides)
