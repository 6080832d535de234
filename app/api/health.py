"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from app.api.errors import ApiError

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> dict[str, Any]:
    """Models loaded and documents ingested: the bot can answer."""
    container = request.app.state.container
    chunks = container.store.count()
    if chunks == 0:
        raise ApiError(503, "not_ready", "no documents ingested yet (run `shopdesk ingest`)")
    return {"status": "ready", "chunks": chunks, "model": container.llm.name}
