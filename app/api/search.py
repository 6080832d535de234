"""Retrieval on its own: the passages a question would be answered from, with their scores.

Shops use it to see why the bot answered as it did; the eval harness uses it
to score a running server's retrieval.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from app.api.deps import ContainerDep
from app.api.errors import ApiError
from app.api.schemas import ErrorBody, SearchRequest, SearchResponse, is_blank
from app.config import Settings

router = APIRouter(prefix="/v1", tags=["search"])


@router.post("/search", response_model=SearchResponse, responses={422: {"model": ErrorBody}})
async def search(body: SearchRequest, container: ContainerDep) -> dict[str, Any]:
    """Top-k passages for a query, best first, with dense, BM25 and fused scores."""
    settings: Settings = container.settings
    query = body.query.strip()
    if is_blank(query):
        raise ApiError(422, "empty_query", "query must not be empty")
    if len(query) > settings.server.max_message_chars:
        raise ApiError(
            422,
            "query_too_long",
            f"query is longer than {settings.server.max_message_chars} characters",
        )
    result = await run_in_threadpool(
        container.retriever.retrieve, query, body.filters, k=body.k, mode=body.mode
    )
    return {
        "passages": [
            {
                "chunk_id": p.chunk.id,
                "doc_id": p.chunk.doc_id,
                "title": p.chunk.title,
                "text": p.chunk.text,
                "score": p.score,
                "dense_score": p.dense_score,
                "bm25_score": p.bm25_score,
            }
            for p in result.passages
        ],
        "best_dense": result.best_dense,
        "timings_ms": {k: round(v, 1) for k, v in result.timings_ms.items()},
    }
