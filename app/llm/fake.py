"""A deterministic chat model for unit tests: echoes the first passage it was given."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence

from app.llm.base import ChatMessage, Deadline

_PASSAGE = re.compile(r"^\[1\][^\n]*\n(?P<text>[^\n]+)", re.MULTILINE)


class FakeLLM:
    """Answers with the first line of passage [1] and cites it; or "I don't know".

    Keeps a given deadline between pieces, like the real backends.
    """

    def __init__(self, context_window: int = 4096) -> None:
        self._ctx = context_window
        self.calls: list[list[ChatMessage]] = []
        self.deadlines: list[Deadline | None] = []  # what each call was given

    @property
    def name(self) -> str:
        return "fake"

    @property
    def context_window(self) -> int:
        return self._ctx

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 3)

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        stop: threading.Event | None = None,
        deadline: Deadline | None = None,
    ) -> Iterator[str]:
        self.calls.append(list(messages))
        self.deadlines.append(deadline)
        match = _PASSAGE.search(messages[-1].content)
        answer = f"{match.group('text').strip()} [1]" if match else "I don't know."
        for word in answer.split(" ")[:max_tokens]:
            if stop is not None and stop.is_set():
                return
            if deadline is not None:
                deadline.check()  # between pieces, as the real backends do
            yield word + " "
