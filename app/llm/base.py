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
    """The end of one model call's time: `check` between tokens raises LLMTimeout past it.

    Started when the call joins the model's queue (`GatedLLM`), else by the backend. A
    backend that can also stop a step under way (llama.cpp reading a long prompt
    before the first token) asks `passed` from inside it.
    """

    def __init__(self, timeout_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._timeout_s = timeout_s
        self._clock = clock
        self._end = clock() + timeout_s

    @property
    def timeout_s(self) -> float:
        return self._timeout_s

    def passed(self) -> bool:
        return self._clock() > self._end

    def remaining(self) -> float:
        """Seconds left on its clock (0 once passed): how long a waiter may still block."""
        return max(0.0, self._end - self._clock())

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
        deadline: Deadline | None = None,
    ) -> Iterator[str]:
        """Yield text pieces; stop early (and free the model) once `stop` is set.

        `deadline`, when given, bounds the call instead of one the backend would start
        itself: the gated model (`app.llm.gate.GatedLLM`) starts it when the call joins
        the queue, so waiting and generating share one `llm.timeout_s`.
        """
        ...


class WrappedLLM:
    """Base of an adapter around another `LLM` (the gate, a cache, a recorder): name,
    context window and token counting pass through; each subclass writes its `stream`."""

    def __init__(self, inner: LLM) -> None:
        self._inner = inner

    @property
    def inner(self) -> LLM:
        """The wrapped model (its own extras, e.g. llama.cpp's generation stats)."""
        return self._inner

    @property
    def name(self) -> str:
        return self._inner.name

    @property
    def context_window(self) -> int:
        return self._inner.context_window

    def count_tokens(self, text: str) -> int:
        """Not wrapped: tokenising needs no turn at the model and no record."""
        return self._inner.count_tokens(text)
