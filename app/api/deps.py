"""Every route dependency in one place: the services the lifespan put on `app.state`, the
settings, the keys and the rate limit, as `Annotated` aliases routes declare."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from app.api.auth import require_api_key
from app.api.ratelimit import rate_limit
from app.config import Settings
from app.container import Container
from app.db.repository import ConversationStore
from app.documents import DocumentService
from app.orchestrator import TurnPipeline


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


def _pipeline(request: Request) -> TurnPipeline:
    pipeline: TurnPipeline = request.app.state.pipeline
    return pipeline


def _store(request: Request) -> ConversationStore:
    return _pipeline(request).store


def _documents(request: Request) -> DocumentService:
    service: DocumentService = request.app.state.documents
    return service


def _key_unless_public(request: Request) -> None:
    """`/metrics` needs the admin key unless `server.metrics_public` is set."""
    if not _settings(request).server.metrics_public:
        require_api_key(request)


SettingsDep = Annotated[Settings, Depends(_settings)]
ContainerDep = Annotated[Container, Depends(_container)]
PipelineDep = Annotated[TurnPipeline, Depends(_pipeline)]
StoreDep = Annotated[ConversationStore, Depends(_store)]
DocumentsDep = Annotated[DocumentService, Depends(_documents)]
ApiKey = Annotated[None, Depends(require_api_key)]
"""The agent and admin routes' key (see `app.api.auth`)."""
METRICS_KEY = [Depends(_key_unless_public)]

RATE_LIMITED = [Depends(rate_limit)]
"""Chat routes spend the client's rate-limit token first, before any other work."""

CustomerToken = Annotated[
    str | None,
    Header(
        alias="X-Customer-Token",
        description="Signed by the shop's site for a logged-in customer (see `shopdesk token`).",
    ),
]
