"""One model call at a time, a bounded fair queue in front, and thread bridging.

llama.cpp's calls block, so every model call (the answer, the follow-up rewrite, the
order-status phrasing) runs in a worker thread and takes its turn at the model there,
through the thread-safe `GenerationGate`; `GatedLLM` (app/llm/gated.py) does that for
each `stream`. Tokens cross back into the event loop through `stream_in_thread`: a
caller that goes away sets the stop event, which also takes a call still waiting for
its turn out of the queue.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import TypeVar

from app.llm.base import Deadline, LLMTimeout

_POLL_S = 0.05
"""How often a waiter looks at its stop event and its deadline's (possibly fake) clock."""
_MIN_WAIT_S = 0.001
"""A waiter's shortest wait: no busy loop at the very instant of its deadline."""


class QueueFullError(Exception):
    """More calls are waiting for the model than the queue allows: HTTP 503 + Retry-After."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__("the assistant is busy; try again shortly")
        self.retry_after_s = retry_after_s


class QueueTimeout(LLMTimeout):
    """The call's deadline passed while it waited for its turn: HTTP 504 `model_timeout`.

    An LLMTimeout, so every layer that handles a slow model handles a long queue too.
    """

    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"no turn at the model within {timeout_s:g} s")


class GenerationGate:
    """FIFO access to the model for threads: one holder, `max_waiting` may wait, more are
    refused at once with QueueFullError.

    Thread-safe and loop-free, so it can be built anywhere (the container) and used from
    any worker thread. A release hands the model straight to the oldest waiter, so a
    newcomer never overtakes the queue. `waiting` is the queue depth the metrics read.
    """

    def __init__(self, max_waiting: int, retry_after_s: int) -> None:
        self._mutex = threading.Lock()  # guards the two fields below; held only briefly
        self._held = False
        self._queue: deque[threading.Event] = deque()  # one event per waiter, oldest first
        self._max_waiting = max_waiting
        self._retry_after_s = retry_after_s

    @property
    def waiting(self) -> int:
        """Calls queued behind the holder (not counting it)."""
        with self._mutex:
            return len(self._queue)

    @property
    def full(self) -> bool:
        """A new call would be refused right now."""
        with self._mutex:
            return self._held and len(self._queue) >= self._max_waiting

    def check(self) -> None:
        """Refuse early (before a response has started) when the queue is full."""
        if self.full:
            raise QueueFullError(self._retry_after_s)

    def acquire(self, deadline: Deadline, stop: threading.Event | None = None) -> bool:
        """Block this thread until it holds the model; the caller then must `release()`.

        Returns True once held. Returns False, holding nothing and out of the queue, when
        `stop` is (or gets) set before its turn: the caller has gone, which is no error.
        Raises QueueFullError at once when `max_waiting` calls already wait, and
        QueueTimeout (out of the queue) when `deadline` passes before its turn.
        """
        if stop is not None and stop.is_set():
            return False
        with self._mutex:
            if not self._held:  # nobody holds it, so nobody waits either
                self._held = True
                return True
            if len(self._queue) >= self._max_waiting:
                raise QueueFullError(self._retry_after_s)
            turn = threading.Event()
            self._queue.append(turn)
        while not turn.wait(min(max(deadline.remaining(), _MIN_WAIT_S), _POLL_S)):
            timed_out = deadline.passed()
            if timed_out or (stop is not None and stop.is_set()):
                self._leave(turn)
                if timed_out:
                    raise QueueTimeout(deadline.timeout_s)
                return False
        return True

    def release(self) -> None:
        """Give the model up: to the oldest waiter, or free it when none waits."""
        with self._mutex:
            self._hand_on()

    def _leave(self, turn: threading.Event) -> None:
        """Take a waiter that gives up out of the queue (or pass on a turn it just got)."""
        with self._mutex:
            if turn.is_set():  # handed the model between its wait and this lock
                self._hand_on()
            else:
                self._queue.remove(turn)

    def _hand_on(self) -> None:
        if not self._held:
            raise RuntimeError("release of a generation gate that is not held")
        if self._queue:
            self._queue.popleft().set()  # stays held: the next waiter has it now
        else:
            self._held = False


_DONE = object()
T = TypeVar("T")


async def call_in_thread(work: Callable[[threading.Event], T]) -> T:
    """`work(stop)` in a thread of its own, awaited; `stop` is set if the caller goes away.

    For blocking steps that may wait in the model's queue (a follow-up rewrite, a tool
    that phrases with the model): like each answer stream, they hold a thread while they
    wait, and the shared worker pool (40 threads) must not cap how many can queue.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    stop = threading.Event()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            result = work(stop)
        except BaseException as exc:  # handed to the awaiting task, which re-raises it
            loop.call_soon_threadsafe(settle, None, exc)
        else:
            loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=run, name="model-call", daemon=True).start()
    try:
        return await asyncio.shield(future)
    finally:
        stop.set()


async def stream_in_thread(
    produce: Callable[[threading.Event], Iterator[str]],
) -> AsyncGenerator[str, None]:
    """Run a blocking token iterator in a thread; yield its pieces in the event loop.

    Each stream gets a thread of its own, not one of the event loop's default executor
    (min(32, CPUs + 4) threads: 6 on 2 cores): a call waiting in the model's queue holds
    its thread, and with a shared pool the calls past the pool's size would wait unseen,
    outside the queue, with no deadline running.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()
    stop = threading.Event()
    finished = asyncio.Event()

    def work() -> None:
        try:
            for piece in produce(stop):
                loop.call_soon_threadsafe(queue.put_nowait, piece)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            loop.call_soon_threadsafe(queue.put_nowait, exc)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, _DONE)
            loop.call_soon_threadsafe(finished.set)

    threading.Thread(target=work, name="model-stream", daemon=True).start()
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                break
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, str)
            yield item
    finally:
        stop.set()
        await asyncio.shield(finished.wait())
