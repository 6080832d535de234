"""A BM25 (Okapi) index over chunks, with jieba for Chinese, kept beside the vector store.

The vector store is the source of truth: the index is rebuilt from it after
every ingest and carries a fingerprint of the chunks it was built from, so a
server can tell a stale index (e.g. after a crashed ingest) and rebuild it.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import math
import os
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from app.domain import Chunk, Filters, Metadata
from app.retrieval.store import VectorStore, VersionedStore, matches
from app.text import words

_FORMAT = 1


def fingerprint(chunks: Iterable[Chunk]) -> str:
    """Order-independent digest of chunk ids and their document's content hash."""
    rows = sorted(f"{c.id}\t{c.metadata.get('content_hash', '')}" for c in chunks)
    return hashlib.sha256("\n".join(rows).encode("utf-8")).hexdigest()[:16]


def index_text(chunk: Chunk) -> str:
    return f"{chunk.title}\n{chunk.text}"


class BM25Index:
    """Okapi BM25 over pre-tokenised chunks; filters are metadata equalities."""

    def __init__(
        self,
        ids: list[str],
        metas: list[Metadata],
        tokens: list[list[str]],
        *,
        fingerprint: str,
        k1: float = 1.2,
        b: float = 0.75,
    ) -> None:
        self.ids = ids
        self.metas = metas
        self.fingerprint = fingerprint
        self._tokens = tokens
        self._k1, self._b = k1, b
        lengths = np.array([len(t) for t in tokens], dtype=np.float32)
        self._avgdl = float(lengths.mean()) if len(tokens) else 1.0
        self._norm = k1 * (1 - b + b * lengths / max(self._avgdl, 1e-9))
        postings: dict[str, dict[int, int]] = defaultdict(dict)
        for doc, toks in enumerate(tokens):
            for tok in toks:
                postings[tok][doc] = postings[tok].get(doc, 0) + 1
        n = len(tokens)
        self._postings: dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.float32], float]] = {
            term: (
                np.fromiter(p.keys(), dtype=np.int64, count=len(p)),
                np.fromiter(p.values(), dtype=np.float32, count=len(p)),
                math.log(1.0 + (n - len(p) + 0.5) / (len(p) + 0.5)),
            )
            for term, p in postings.items()
        }

    @classmethod
    def build(cls, chunks: Iterable[Chunk]) -> BM25Index:
        chunk_list = sorted(chunks, key=lambda c: c.id)
        return cls(
            [c.id for c in chunk_list],
            [dict(c.metadata) for c in chunk_list],
            [words(index_text(c)) for c in chunk_list],
            fingerprint=fingerprint(chunk_list),
        )

    def idf(self, term: str) -> float:
        """Inverse document frequency; a word the corpus never saw weighs the most."""
        hit = self._postings.get(term)
        if hit is not None:
            return hit[2]
        n = len(self.ids)
        return math.log(1.0 + (n + 0.5) / 0.5)

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, query: str, k: int, filters: Filters | None = None) -> list[tuple[str, float]]:
        """Top-k (chunk id, BM25 score) with score > 0 among chunks that pass the filters."""
        if not self.ids or k <= 0:
            return []
        scores = np.zeros(len(self.ids), dtype=np.float32)
        for term in set(words(query)):
            hit = self._postings.get(term)
            if hit is None:
                continue
            docs, tf, idf = hit
            scores[docs] += idf * tf * (self._k1 + 1) / (tf + self._norm[docs])
        candidates = np.flatnonzero(scores > 0)
        ranked = candidates[np.argsort(-scores[candidates], kind="stable")]
        if filters:
            # Walk best-first and stop at k: the metadata check runs on the top of
            # the list, not on every chunk that shares a word with the query.
            ranked = np.fromiter(
                itertools.islice((i for i in ranked if matches(self.metas[i], filters)), k),
                dtype=np.int64,
            )
        return [(self.ids[i], float(scores[i])) for i in ranked[:k]]

    def save(self, path: Path) -> None:
        """Write atomically: a crash leaves the old index or the new one, never half."""
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": _FORMAT,
            "fingerprint": self.fingerprint,
            "ids": self.ids,
            "metas": self.metas,
            "tokens": self._tokens,
        }
        tmp = path.with_suffix(path.suffix + ".tmp")
        with gzip.open(tmp, "wt", encoding="utf-8") as fh:
            json.dump(payload, fh, ensure_ascii=False)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> BM25Index | None:
        """The saved index, or None when there is none or it has an old format."""
        if not path.is_file():
            return None
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            payload = json.load(fh)
        if payload.get("format") != _FORMAT:
            return None
        return cls(
            payload["ids"], payload["metas"], payload["tokens"], fingerprint=payload["fingerprint"]
        )


def refresh_bm25(store: VectorStore, path: Path, *, force: bool = False) -> bool:
    """Rebuild the BM25 file from the store when forced or when it disagrees with it.

    `force` means the caller (an ingest) has just changed the store: a store shared by
    several servers (`VersionedStore`) then gets the new fingerprint as its version, so
    the other servers rebuild their own index from it. A shared store with no version
    yet (ingested before versions existed) gets one from whoever looks first.
    """
    chunks = list(store.scan())
    version = fingerprint(chunks)
    current = None if force else BM25Index.load(path)
    rebuilt = current is None or current.fingerprint != version
    if rebuilt:
        BM25Index.build(chunks).save(path)
    if isinstance(store, VersionedStore) and (force or store.version() is None):
        store.set_version(version)
    return rebuilt
