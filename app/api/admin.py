"""What a support lead watches: resolution, hand-offs, "don't know", speed, satisfaction."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from app.api.deps import ApiKey, StoreDep
from app.api.schemas import ErrorBody, UtcDatetime
from app.db.stats import Stats

router = APIRouter(prefix="/v1/admin", tags=["admin"])
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (401, 403, 422)}


@router.get("/stats", response_model=Stats, responses=_ERRORS)
async def stats(_: ApiKey, store: StoreDep, since: UtcDatetime | None = None) -> Stats:
    """Support KPIs over conversations since `since` (ISO 8601; all time when omitted).

    The fields and how each is counted are documented on `app.db.stats.Stats`.
    """
    return await run_in_threadpool(store.stats, since)
