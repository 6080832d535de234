"""Embedders for unit tests: the deterministic hash fake, counting what it embeds."""

from collections.abc import Sequence

from app.embeddings import HashEmbedder, Vectors


class CountingEmbedder:
    """Wraps the hash fake and counts the texts it embeds (`calls`), so a test can tell
    a classifier loaded from its cache from one trained again."""

    def __init__(self) -> None:
        self.inner = HashEmbedder()
        self.calls = 0

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        self.calls += len(texts)
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> Vectors:
        self.calls += 1
        return self.inner.embed_query(text)
