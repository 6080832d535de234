"""What a support lead watches: resolution, hand-offs, "don't know", speed, satisfaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from app.api.auth import ApiKey
from app.api.deps import StoreDep
from app.api.schemas import ErrorBody, StatsOut, UnansweredOut

router = APIRouter(prefix="/v1/admin", tags=["admin"])
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (401, 403, 422)}


@router.get("/stats", response_model=StatsOut, responses=_ERRORS)
async def stats(_: ApiKey, store: StoreDep, since: datetime | None = None) -> StatsOut:
    """Support KPIs over conversations since `since` (ISO 8601; all time when omitted)."""
    s = await run_in_threadpool(store.stats, since)
    return StatsOut(
        **{k: v for k, v in vars(s).items() if k != "top_unanswered"},
        top_unanswered=[UnansweredOut(question=q, count=n) for q, n in s.top_unanswered],
    )
