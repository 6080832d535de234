"""The chat model behind the generation gate: the one way every model call is made.

The answer, the follow-up rewrite and the order-status phrasing all stream through
`GatedLLM`, so each takes its turn in the same FIFO queue: a full queue refuses it
(QueueFullError, 503) and its time limit, `llm.timeout_s`, runs from when it joined the
queue, so waiting and generating together are bounded (QueueTimeout or the backend's
LLMTimeout, 504). Before, a call made outside the queue waited on the model's own lock
without a limit, and a queued answer's deadline started only once the model took it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

from app.llm.base import LLM, ChatMessage, Deadline, WrappedLLM
from app.llm.gate import GenerationGate


@runtime_checkable
class _Warmable(Protocol):
    def warm(self, messages: Sequence[ChatMessage]) -> None: ...


class GatedLLM(WrappedLLM):
    """Wraps any `LLM`; implements the same Protocol, each `stream` holding `gate`.

    Build one per model and hand it to every caller: two GatedLLMs on one model would
    be two queues. Calls block, so they belong in worker threads (`stream_in_thread`).
    Tokenising (`count_tokens`) needs no turn at the model and is not gated.
    """

    def __init__(self, inner: LLM, gate: GenerationGate, timeout_s: float) -> None:
        super().__init__(inner)
        self._gate = gate
        self._timeout_s = timeout_s

    @property
    def gate(self) -> GenerationGate:
        """The queue in front of the model: `check()` before a stream's 200, `waiting`."""
        return self._gate

    def warm(self, messages: Sequence[ChatMessage]) -> None:
        """The inner model's `warm` (prefix caching), holding the gate; else nothing.

        Meant for start-up: it waits its turn (at most `timeout_s`) like any call.
        """
        if not isinstance(self._inner, _Warmable):
            return
        self._gate.acquire(Deadline(self._timeout_s))  # no stop: True, or it raises
        try:
            self._inner.warm(messages)
        finally:
            self._gate.release()

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        stop: threading.Event | None = None,
        deadline: Deadline | None = None,
    ) -> Iterator[str]:
        """The inner model's pieces, once this call's turn has come.

        A generator: the call joins the queue at the first `next()`, which is when its
        deadline (`timeout_s`, unless one is given) starts and when QueueFullError or
        QueueTimeout is raised. The inner model gets the same deadline. A call whose
        `stop` is set while it waits leaves the queue and yields nothing, as a stopped
        model would. The gate is released however the stream ends: finished, raised,
        or closed early by its consumer.
        """
        if deadline is None:
            deadline = Deadline(self._timeout_s)
        if not self._gate.acquire(deadline, stop):
            return
        try:
            yield from self._inner.stream(
                messages, max_tokens=max_tokens, stop=stop, deadline=deadline
            )
        finally:
            self._gate.release()
