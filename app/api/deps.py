"""Shared route dependencies: the services the lifespan put on `app.state`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.db.repository import ConversationStore
from app.dialogue.service import DialogueService


def _dialogue(request: Request) -> DialogueService:
    service: DialogueService = request.app.state.dialogue
    return service


def _store(request: Request) -> ConversationStore:
    return _dialogue(request).store


DialogueDep = Annotated[DialogueService, Depends(_dialogue)]
StoreDep = Annotated[ConversationStore, Depends(_store)]
