"""The chat-model Protocol and the message type every backend takes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol


@dataclass(frozen=True)
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    content: str


class LLMError(RuntimeError):
    """The model failed to produce an answer."""


class LLMTimeout(LLMError):
    """The model did not finish within its deadline (`llm.timeout_s`)."""


class Deadline:
    """The end of one generation's time: `check` between tokens raises LLMTimeout past it.

    A backend that can also stop a step under way (llama.cpp reading a long prompt
    before the first token) asks `passed` from inside it.
    """

    def __init__(self, timeout_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._timeout_s = timeout_s
        self._clock = clock
        self._end = clock() + timeout_s

    def passed(self) -> bool:
        return self._clock() > self._end

    def timeout(self) -> LLMTimeout:
        return LLMTimeout(f"no answer within {self._timeout_s:g} s")

    def check(self) -> None:
        if self.passed():
            raise self.timeout()


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
