"""Dense + BM25 retrieval, fused by weighted reciprocal rank, with metadata filters.

Plain (equal-weight) RRF lost to dense alone on the shared data. Two fusions are
offered and measured (`make eval-shared` with `--system` overrides; README § How it
decides): weighted RRF, and a convex combination of the dense cosine with BM25 scaled
per query (`retrieval.fusion`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from app.config import RetrievalSettings
from app.domain import Chunk, Filters, RetrievedChunk
from app.embeddings import Embedder
from app.retrieval.bm25 import BM25Index
from app.retrieval.store import VectorStore

logger = logging.getLogger(__name__)

Mode = Literal["hybrid", "dense", "bm25"]


@dataclass
class Retrieval:
    """Ranked passages plus what the answer step needs to judge the evidence."""

    passages: list[RetrievedChunk]
    best_dense: float | None
    """Highest cosine similarity of any dense candidate: the gate's signal."""
    timings_ms: dict[str, float] = field(default_factory=dict)


def rrf(rankings: list[tuple[list[str], float]], k: int) -> dict[str, float]:
    """Weighted reciprocal-rank fusion: sum of weight / (k + rank) over rankings."""
    fused: dict[str, float] = {}
    for ids, weight in rankings:
        if weight <= 0:
            continue
        for rank, chunk_id in enumerate(ids, start=1):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + weight / (k + rank)
    return fused


def convex(dense: dict[str, float], bm25: dict[str, float], weight: float) -> dict[str, float]:
    """Cosine plus `weight` * BM25 scaled to this query's best BM25 score.

    Unlike RRF, a passage that BM25 ranks first on one common word cannot
    jump over passages the embedding finds much closer: the dense cosine is
    calibrated across queries, BM25 only adds a bounded lexical bonus. A
    passage outside the dense candidates gets the lowest candidate cosine,
    an upper bound of its own.
    """
    floor = min(dense.values(), default=0.0)
    top = max(bm25.values(), default=0.0) or 1.0
    return {
        cid: dense.get(cid, floor) + weight * bm25.get(cid, 0.0) / top
        for cid in dense.keys() | bm25.keys()
    }


class HybridRetriever:
    def __init__(
        self,
        embedder: Embedder,
        store: VectorStore,
        bm25: Callable[[], BM25Index],
        settings: RetrievalSettings,
    ) -> None:
        self._embedder = embedder
        self._store = store
        self._bm25 = bm25
        self._settings = settings

    def term_weight(self, term: str) -> float:
        """IDF of a word in the current corpus (used to weigh citation support)."""
        return self._bm25().idf(term)

    def retrieve(
        self,
        query: str,
        filters: Filters | None = None,
        *,
        k: int | None = None,
        mode: Mode | None = None,
    ) -> Retrieval:
        s = self._settings
        k = k or s.top_k
        mode = mode or s.mode
        timings: dict[str, float] = {}

        dense: list[tuple[Chunk, float]] = []
        if mode in ("hybrid", "dense"):
            t0 = time.perf_counter()
            vector = self._embedder.embed_query(query)
            timings["embed_ms"] = (time.perf_counter() - t0) * 1000
            t0 = time.perf_counter()
            dense = self._store.query(vector, s.candidates, filters)
            timings["dense_ms"] = (time.perf_counter() - t0) * 1000

        lexical: list[tuple[str, float]] = []
        if mode in ("hybrid", "bm25"):
            t0 = time.perf_counter()
            lexical = self._bm25().search(query, s.candidates, filters)
            timings["bm25_ms"] = (time.perf_counter() - t0) * 1000

        dense_scores = {chunk.id: score for chunk, score in dense}
        bm25_scores = dict(lexical)
        if mode == "dense":
            order = [chunk.id for chunk, _ in dense]
            fused = {cid: dense_scores[cid] for cid in order}
        elif mode == "bm25":
            order = [cid for cid, _ in lexical]
            fused = dict(lexical)
        elif s.fusion == "convex":
            fused = convex(dense_scores, bm25_scores, s.bm25_weight)
            order = sorted(fused, key=lambda cid: (-fused[cid], cid))
        else:
            fused = rrf(
                [
                    ([c.id for c, _ in dense], s.dense_weight),
                    ([i for i, _ in lexical], s.bm25_weight),
                ],
                s.rrf_k,
            )
            order = sorted(fused, key=lambda cid: (-fused[cid], cid))
        top = order[:k]

        chunks = {chunk.id: chunk for chunk, _ in dense}
        missing = [cid for cid in top if cid not in chunks]
        chunks.update((c.id, c) for c in self._store.get(missing))
        passages = [
            RetrievedChunk(
                chunk=chunks[cid],
                score=fused[cid],
                dense_score=dense_scores.get(cid),
                bm25_score=bm25_scores.get(cid),
            )
            for cid in top
            if cid in chunks
        ]
        best = max(dense_scores.values()) if dense_scores else None
        return Retrieval(passages=passages, best_dense=best, timings_ms=timings)
