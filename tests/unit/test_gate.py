import asyncio
import threading
from collections.abc import Iterator

import pytest

from app.llm.gate import GenerationGate, QueueFullError, stream_in_thread
from app.retrieval.hybrid import rrf

pytestmark = pytest.mark.unit


def test_gate_refuses_beyond_the_queue() -> None:
    async def scenario() -> list[str]:
        gate = GenerationGate(max_waiting=1, retry_after_s=7)
        release = asyncio.Event()
        log: list[str] = []

        async def holder(name: str) -> None:
            async with gate.slot():
                log.append(name)
                await release.wait()

        first = asyncio.create_task(holder("a"))
        await asyncio.sleep(0)
        second = asyncio.create_task(holder("b"))
        await asyncio.sleep(0)
        with pytest.raises(QueueFullError) as info:
            async with gate.slot():
                pass
        assert info.value.retry_after_s == 7
        release.set()
        await asyncio.gather(first, second)
        return log

    assert asyncio.run(scenario()) == ["a", "b"]


def test_stream_in_thread_stops_the_producer_when_consumer_leaves() -> None:
    produced: list[int] = []
    saw_stop = threading.Event()

    def produce(stop: threading.Event) -> Iterator[str]:
        for i in range(1000):
            if i >= 3 and stop.wait(timeout=10):  # wait until the consumer has gone
                saw_stop.set()
                return
            produced.append(i)
            yield str(i)

    async def scenario() -> list[str]:
        got: list[str] = []
        agen = stream_in_thread(produce)
        async for piece in agen:
            got.append(piece)
            if len(got) == 3:
                break
        await agen.aclose()
        return got

    assert asyncio.run(scenario()) == ["0", "1", "2"]
    assert saw_stop.is_set()
    assert produced == [0, 1, 2]


def test_stream_in_thread_reraises_producer_errors() -> None:
    def produce(stop: threading.Event) -> Iterator[str]:
        yield "x"
        raise RuntimeError("boom")

    async def scenario() -> None:
        async for _ in stream_in_thread(produce):
            pass

    with pytest.raises(RuntimeError, match="boom"):
        asyncio.run(scenario())


def test_weighted_rrf_prefers_the_heavier_ranking() -> None:
    fused = rrf([(["a", "b"], 1.0), (["b", "c"], 0.25)], k=60)
    assert max(fused, key=fused.__getitem__) in {"a", "b"}
    assert fused["a"] > fused["c"]
    assert rrf([(["a"], 0.0)], k=60) == {}
