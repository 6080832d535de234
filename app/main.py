"""The app factory: `create_app(settings)` builds everything once in the lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool

from app.api import admin, agent, chat, conversations, errors, health, search
from app.config import Settings, load_settings
from app.container import build_container, build_dialogue, warm_up
from app.llm.base import LLM

logger = logging.getLogger(__name__)


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

    @app.middleware("http")
    async def limit_body(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (
            not length.isdigit() or int(length) > settings.server.max_body_bytes
        ):
            return errors.error_response(
                413,
                "payload_too_large",
                f"request body over {settings.server.max_body_bytes} bytes",
            )
        return await call_next(request)

    app.include_router(health.router)
    app.include_router(chat.router)
    app.include_router(search.router)
    app.include_router(conversations.router)
    app.include_router(agent.router)
    app.include_router(admin.router)
    return app
