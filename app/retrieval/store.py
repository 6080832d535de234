"""Vector stores behind one Protocol: chromadb on disk, and an in-memory fake.

Scores are cosine similarities (higher is closer) whatever the backend keeps
internally, so the answerability gate reads the same number everywhere. A chroma
server (`ChromaHttpStore`) is shared by several app servers, so it also carries a
version of its contents, which tells each of them when to rebuild its BM25 index.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import numpy as np

from app.domain import Chunk, Filters, Metadata
from app.embeddings import Vectors

logger = logging.getLogger(__name__)


class VectorStore(Protocol):
    def upsert(self, chunks: Sequence[Chunk], vectors: Vectors) -> None: ...

    def delete_documents(self, doc_ids: Iterable[str]) -> None: ...

    def query(
        self, vector: Vectors, k: int, filters: Filters | None = None
    ) -> list[tuple[Chunk, float]]: ...

    def get(self, ids: Sequence[str]) -> list[Chunk]: ...

    def scan(self) -> Iterator[Chunk]: ...

    def count(self) -> int: ...


@runtime_checkable
class VersionedStore(Protocol):
    """A store shared between processes that says which ingest its contents come from.

    The version is the BM25 fingerprint of the chunks the last ingest left (see
    `app.retrieval.bm25.refresh_bm25`, which publishes it): a server whose index has
    another fingerprint rebuilds it, without scanning the store on every check.
    """

    def version(self) -> str | None: ...

    def set_version(self, version: str) -> None: ...


def matches(metadata: Metadata, filters: Filters | None) -> bool:
    """Equality on every filter key (the one filter language all backends share)."""
    return not filters or all(metadata.get(key) == value for key, value in filters.items())


def _chroma_where(filters: Filters | None) -> dict[str, Any] | None:
    if not filters:
        return None
    clauses = [{key: {"$eq": value}} for key, value in sorted(filters.items())]
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _chunk(chunk_id: str, text: str | None, meta: Any) -> Chunk:
    metadata: Metadata = dict(meta or {})
    return Chunk(
        id=chunk_id, doc_id=str(metadata.get("doc_id", "")), text=text or "", metadata=metadata
    )


class ChromaStore:
    """chromadb `PersistentClient` in the data directory; embeddings come from us."""

    def __init__(self, path: Path, collection: str, *, batch_size: int = 256) -> None:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        path.mkdir(parents=True, exist_ok=True)
        client = chromadb.PersistentClient(
            path=str(path), settings=ChromaSettings(anonymized_telemetry=False)
        )
        self._attach(client, collection, batch_size)

    def _attach(self, client: Any, collection: str, batch_size: int) -> None:
        self._client = client
        self._collection = client.get_or_create_collection(
            collection, embedding_function=None, metadata={"hnsw:space": "cosine"}
        )
        self._batch = max(1, min(batch_size, client.get_max_batch_size()))

    def upsert(self, chunks: Sequence[Chunk], vectors: Vectors) -> None:
        for start in range(0, len(chunks), self._batch):
            part = chunks[start : start + self._batch]
            self._collection.upsert(
                ids=[c.id for c in part],
                documents=[c.text for c in part],
                metadatas=[dict(c.metadata) for c in part],
                embeddings=np.asarray(vectors[start : start + self._batch], dtype=np.float32),
            )

    def delete_documents(self, doc_ids: Iterable[str]) -> None:
        ids = list(doc_ids)
        for start in range(0, len(ids), self._batch):
            where: Any = {"doc_id": {"$in": ids[start : start + self._batch]}}
            self._collection.delete(where=where)

    def query(
        self, vector: Vectors, k: int, filters: Filters | None = None
    ) -> list[tuple[Chunk, float]]:
        if k <= 0 or self._collection.count() == 0:
            return []
        result = self._collection.query(
            query_embeddings=np.asarray([vector], dtype=np.float32),
            n_results=k,
            where=_chroma_where(filters),
            include=["documents", "metadatas", "distances"],
        )
        ids = result["ids"][0]
        docs = (result["documents"] or [[]])[0]
        metas = (result["metadatas"] or [[]])[0]
        dists = (result["distances"] or [[]])[0]
        return [
            (_chunk(i, d, m), 1.0 - float(dist))
            for i, d, m, dist in zip(ids, docs, metas, dists, strict=True)
        ]

    def get(self, ids: Sequence[str]) -> list[Chunk]:
        if not ids:
            return []
        result = self._collection.get(ids=list(ids), include=["documents", "metadatas"])
        found = {
            i: _chunk(i, d, m)
            for i, d, m in zip(
                result["ids"], result["documents"] or [], result["metadatas"] or [], strict=True
            )
        }
        return [found[i] for i in ids if i in found]

    def scan(self) -> Iterator[Chunk]:
        offset = 0
        while True:
            page = self._collection.get(
                limit=self._batch * 8, offset=offset, include=["documents", "metadatas"]
            )
            if not page["ids"]:
                return
            for i, d, m in zip(
                page["ids"], page["documents"] or [], page["metadatas"] or [], strict=True
            ):
                yield _chunk(i, d, m)
            offset += len(page["ids"])

    def count(self) -> int:
        return int(self._collection.count())


VERSION_KEY = "shopdesk:version"
"""The collection metadata key holding the contents' version."""


class StoreUnavailable(RuntimeError):
    """The configured vector store cannot be reached or opened."""


class ChromaHttpStore(ChromaStore):
    """A chroma server (`chroma run`): one copy of the vectors for every app server.

    The ingest CLI and the documents API write to it from any machine; each server
    keeps its own BM25 index (a file in its data dir), rebuilt from the server when
    the version in the collection's metadata changes (`VersionedStore`).
    """

    def __init__(self, url: str, collection: str, *, batch_size: int = 256) -> None:
        import chromadb
        import httpx
        from chromadb.config import Settings as ChromaSettings
        from chromadb.errors import ChromaError

        parts = urlsplit(url)
        https = parts.scheme == "https"
        try:
            client = chromadb.HttpClient(
                host=parts.hostname or "127.0.0.1",
                port=parts.port or (443 if https else 8000),
                ssl=https,
                settings=ChromaSettings(anonymized_telemetry=False),
            )
            self._attach(client, collection, batch_size)
        except (ValueError, ChromaError, httpx.HTTPError) as exc:  # "could not connect": ValueError
            raise StoreUnavailable(f"chroma server at {url} cannot be used: {exc}") from exc
        self._name = collection

    def version(self) -> str | None:
        """The version the last ingest published (None before the first one)."""
        fresh = self._client.get_collection(self._name, embedding_function=None)
        value = (fresh.metadata or {}).get(VERSION_KEY)
        return value if isinstance(value, str) else None

    def set_version(self, version: str) -> None:
        # Only this key: chroma refuses a metadata update that names the distance again
        # (the collection's configuration keeps it, cosine).
        self._collection.modify(metadata={VERSION_KEY: version})


class MemoryStore:
    """Brute-force cosine search over a dict. Unit tests only."""

    def __init__(self) -> None:
        self._rows: dict[str, tuple[Chunk, Vectors]] = {}

    def upsert(self, chunks: Sequence[Chunk], vectors: Vectors) -> None:
        for chunk, vector in zip(chunks, vectors, strict=True):
            self._rows[chunk.id] = (chunk, np.asarray(vector, dtype=np.float32))

    def delete_documents(self, doc_ids: Iterable[str]) -> None:
        gone = set(doc_ids)
        self._rows = {k: v for k, v in self._rows.items() if v[0].doc_id not in gone}

    def query(
        self, vector: Vectors, k: int, filters: Filters | None = None
    ) -> list[tuple[Chunk, float]]:
        scored = [
            (chunk, float(np.dot(vec, vector)))
            for chunk, vec in self._rows.values()
            if matches(chunk.metadata, filters)
        ]
        scored.sort(key=lambda pair: (-pair[1], pair[0].id))
        return scored[:k]

    def get(self, ids: Sequence[str]) -> list[Chunk]:
        return [self._rows[i][0] for i in ids if i in self._rows]

    def scan(self) -> Iterator[Chunk]:
        for chunk, _ in list(self._rows.values()):
            yield chunk

    def count(self) -> int:
        return len(self._rows)
