"""One generation at a time, a bounded fair queue in front, and thread bridging.

llama.cpp's calls block, so they run in a worker thread; tokens cross back
into the event loop through an asyncio queue. A caller that goes away sets
the stop event and the worker ends the generation at the next token.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager


class QueueFullError(Exception):
    """More requests are waiting for the model than the queue allows."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__("the assistant is busy; try again shortly")
        self.retry_after_s = retry_after_s


class GenerationGate:
    """FIFO access to the model: `max_waiting` may wait, the rest are refused at once."""

    def __init__(self, max_waiting: int, retry_after_s: int) -> None:
        self._lock = asyncio.Lock()
        self._waiting = 0
        self._max_waiting = max_waiting
        self._retry_after_s = retry_after_s

    @property
    def waiting(self) -> int:
        return self._waiting

    @property
    def full(self) -> bool:
        """A new request would be refused right now."""
        return self._lock.locked() and self._waiting >= self._max_waiting

    def check(self) -> None:
        """Refuse early (before a response has started) when the queue is full."""
        if self.full:
            raise QueueFullError(self._retry_after_s)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        self.check()
        self._waiting += 1
        try:
            await self._lock.acquire()
        finally:
            self._waiting -= 1
        try:
            yield
        finally:
            self._lock.release()


_DONE = object()


async def stream_in_thread(
    produce: Callable[[threading.Event], Iterator[str]],
) -> AsyncGenerator[str, None]:
    """Run a blocking token iterator in a thread; yield its pieces in the event loop."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()
    stop = threading.Event()

    def work() -> None:
        try:
            for piece in produce(stop):
                loop.call_soon_threadsafe(queue.put_nowait, piece)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            loop.call_soon_threadsafe(queue.put_nowait, exc)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, _DONE)

    worker = loop.run_in_executor(None, work)
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
        await asyncio.shield(worker)
