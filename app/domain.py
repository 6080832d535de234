"""Typed objects that travel between ingest, retrieval and answering."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["product", "policy", "faq"]
Lang = Literal["zh", "en"]
MetaValue = str | int | float | bool
Metadata = dict[str, MetaValue]
Filters = dict[str, MetaValue]

KINDS: tuple[Kind, ...] = ("product", "policy", "faq")


@dataclass(frozen=True)
class Document:
    """One source document: a policy page, a product row, an FAQ pair."""

    id: str
    title: str
    text: str
    source: str
    kind: Kind
    lang: Lang
    metadata: Metadata = field(default_factory=dict)
    question: str | None = None
    """For FAQ rows: the question; `text` then holds the answer."""

    @property
    def content_hash(self) -> str:
        """Stable hash of everything that ends up in the store."""
        payload = json.dumps(
            [
                self.title,
                self.text,
                self.source,
                self.kind,
                self.lang,
                self.question,
                sorted(self.metadata.items()),
            ],
            ensure_ascii=False,
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Chunk:
    """A passage of a document, the unit that is embedded and retrieved."""

    id: str
    doc_id: str
    text: str
    metadata: Metadata
    embed_text: str | None = None
    """What the embedder sees when it differs from `text` (an FAQ's question)."""

    @property
    def title(self) -> str:
        return str(self.metadata.get("title", ""))

    @property
    def kind(self) -> str:
        return str(self.metadata.get("kind", ""))


@dataclass(frozen=True)
class RetrievedChunk:
    """A chunk with the scores that put it in the result list."""

    chunk: Chunk
    score: float
    dense_score: float | None = None
    bm25_score: float | None = None


@dataclass(frozen=True)
class Citation:
    n: int
    doc_id: str
    title: str
    source: str
    snippet: str


def chunk_id(doc_id: str, n: int) -> str:
    """Deterministic chunk id, so re-ingest upserts in place."""
    return f"{doc_id}#{n}"
