"""The chat-model Protocol and the message type every backend takes."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol


@dataclass(frozen=True)
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    content: str


class LLMError(RuntimeError):
    """The model failed to produce an answer."""


class LLM(Protocol):
    """A chat model that streams text pieces; one generation at a time."""

    @property
    def name(self) -> str: ...

    @property
    def context_window(self) -> int: ...

    def count_tokens(self, text: str) -> int: ...

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        stop: threading.Event | None = None,
    ) -> Iterator[str]:
        """Yield text pieces; stop early (and free the model) once `stop` is set."""
        ...
