"""Query vectors of many texts at once, for training the dialogue classifiers.

The classifiers see a message's query vector (`Embedder.embed_query`), so they
are trained on query vectors too. The protocol embeds queries one at a time,
which for thousands of training texts costs several times what batches do
(embeddinggemma-300m on 2 cores: 0.8 s a short review in batches of 16, 4.9 s
one by one, on a loaded machine). A sentence-transformers model, bare or behind
the query cache, is therefore asked for batches with its query prompt, which is
what `embed_query` does for one text; any other embedder goes one by one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from app.embeddings import Embedder, QueryCache, SentenceTransformerEmbedder, Vectors


def embed_queries(embedder: Embedder, texts: Sequence[str]) -> Vectors:
    """The query vectors of `texts`, one row each, as `embed_query` gives them."""
    if not texts:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    inner = embedder.inner if isinstance(embedder, QueryCache) else embedder
    if isinstance(inner, SentenceTransformerEmbedder):
        model = inner.model
        vectors = model.encode(
            list(texts),
            prompt_name="query" if "query" in (model.prompts or {}) else None,
            batch_size=inner.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)
    return np.stack([embedder.embed_query(text) for text in texts])
