"""`GET /metrics`: the Prometheus text format, for a scraper.

It needs the admin key unless `server.metrics_public` is set. The figures hold no
personal data, but they tell traffic, hand-off and refusal rates, which
`/v1/admin/stats` keeps behind the key too; Prometheus sends a key as easily
(`authorization: {credentials: KEY}` in the scrape config). A shop whose scraper reaches
the server only over a private network may open the route instead.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from app.api.deps import METRICS_KEY
from app.api.schemas import ErrorBody
from app.observability.metrics import Metrics

router = APIRouter(tags=["observability"])
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/plain": {}}, "description": "Prometheus text exposition format"},
    **{code: {"model": ErrorBody} for code in (401, 403)},
}


@router.get(
    "/metrics",
    response_class=Response,
    responses=_RESPONSES,
    dependencies=METRICS_KEY,
)
async def metrics(request: Request) -> Response:
    """Request counts and latencies by route and outcome, the model's queue depth, tokens
    generated, retrieval and generation time, answers by outcome, hand-offs by reason."""
    registry: Metrics = request.app.state.metrics
    body, content_type = registry.render()
    return Response(body, media_type=content_type)
