"""The app factory: `create_app(settings)` builds everything once in the lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool

from app.api import (
    admin,
    agent,
    chat,
    conversations,
    documents,
    errors,
    health,
    openai_compat,
    ratelimit,
    search,
    widget,
)
from app.api import metrics as metrics_route
from app.api.bodylimit import BodyLimitMiddleware
from app.config import Settings, load_settings
from app.container import build_container, build_pipeline, follow_store, warm_up
from app.documents import DocumentService
from app.llm.base import LLM
from app.observability.asgi import ObservedFastAPI
from app.observability.metrics import Metrics
from app.observability.request_id import HEADER as REQUEST_ID_HEADER

logger = logging.getLogger(__name__)
# The request headers the API reads; a browser on an allowed origin may send these.
_CORS_HEADERS = [
    "Content-Type",
    "Authorization",
    "X-API-Key",
    "X-Customer-Token",
    REQUEST_ID_HEADER,
]


def create_app(settings: Settings | None = None, *, llm: LLM | None = None) -> FastAPI:
    """The ShopDesk app; `llm` replaces the configured model (tests, embedding in other apps)."""
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        container = await run_in_threadpool(lambda: build_container(settings, llm=llm))
        await run_in_threadpool(warm_up, container)
        app.state.container = container
        app.state.documents = DocumentService(
            settings, container.store, container.embedder, container.documents_changed
        )
        metrics.watch_queue(container.gate)
        app.state.pipeline = await run_in_threadpool(build_pipeline, container, metrics)
        logger.info("ShopDesk ready: %d chunks in the store", container.store.count())
        # A chroma server shared with other replicas: follow ingests made elsewhere.
        follower = asyncio.create_task(follow_store(container))
        try:
            yield
        finally:
            follower.cancel()
            with suppress(asyncio.CancelledError):
                await follower

    # One registry per app; the request id and the HTTP metrics wrap everything, 500s too.
    metrics = Metrics()
    app = ObservedFastAPI(metrics, title="ShopDesk", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.metrics = metrics
    errors.install(app)
    ratelimit.install(app, settings.server)

    # Counts the body as it is read: a chunked body has no Content-Length to check.
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.server.max_body_bytes,
        larger={documents.UPLOAD_PATH: settings.server.max_upload_bytes},
    )

    # Added last, so outermost: preflights and error replies get the CORS headers too.
    if settings.server.cors_origins:  # none = same origin only (the widget's case)
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.server.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=_CORS_HEADERS,
            expose_headers=["Retry-After", REQUEST_ID_HEADER],
        )

    app.include_router(health.router)
    app.include_router(chat.router)
    app.include_router(openai_compat.router)
    app.include_router(search.router)
    app.include_router(conversations.router)
    app.include_router(agent.router)
    app.include_router(admin.router)
    app.include_router(documents.router)
    app.include_router(metrics_route.router)
    app.include_router(widget.router)  # GET /, /widget.js, /assets/*: the chat page
    return app
