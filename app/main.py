"""The app factory: `create_app(settings)` builds everything once in the lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool

from app.api import admin, agent, chat, conversations, errors, health, ratelimit, search
from app.api.bodylimit import BodyLimitMiddleware
from app.config import Settings, load_settings
from app.container import build_container, build_dialogue, warm_up
from app.llm.base import LLM

logger = logging.getLogger(__name__)
# The request headers the API reads; a browser on an allowed origin may send these.
_CORS_HEADERS = ["Content-Type", "Authorization", "X-API-Key", "X-Customer-Token"]


def create_app(settings: Settings | None = None, *, llm: LLM | None = None) -> FastAPI:
    """The ShopDesk app; `llm` replaces the configured model (tests, embedding in other apps)."""
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        container = await run_in_threadpool(lambda: build_container(settings, llm=llm))
        await run_in_threadpool(warm_up, container)
        app.state.container = container
        gate = container.gate()
        app.state.dialogue = await run_in_threadpool(build_dialogue, container, gate)
        logger.info("ShopDesk ready: %d chunks in the store", container.store.count())
        yield

    app = FastAPI(title="ShopDesk", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    errors.install(app)
    ratelimit.install(app, settings.server)

    # Counts the body as it is read: a chunked body has no Content-Length to check.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.server.max_body_bytes)

    # Added last, so outermost: preflights and error replies get the CORS headers too.
    if settings.server.cors_origins:  # none = same origin only (the widget's case)
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.server.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=_CORS_HEADERS,
            expose_headers=["Retry-After"],
        )

    app.include_router(health.router)
    app.include_router(chat.router)
    app.include_router(search.router)
    app.include_router(conversations.router)
    app.include_router(agent.router)
    app.include_router(admin.router)
    return app
