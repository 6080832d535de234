"""The generation gate and the gated model: one call at a time, FIFO, a bounded queue, one
deadline from joining the queue to the last token, and the gate freed however a call ends.

Threads stand in for the worker threads model calls run in. Nothing sleeps for its
timing: each step waits for the state it needs (`_until`) or for an event.
"""

import asyncio
import threading
import time
from collections.abc import Callable, Iterator, Sequence

import pytest

import app.llm.gated as gated_module
from app.llm.base import ChatMessage, Deadline, LLMError, LLMTimeout
from app.llm.fake import FakeLLM
from app.llm.gate import GenerationGate, QueueFullError, QueueTimeout, stream_in_thread
from app.llm.gated import GatedLLM
from app.retrieval.hybrid import rrf

pytestmark = pytest.mark.unit

ASK = [ChatMessage("user", "hello there")]
LONG = 30.0  # a deadline no test reaches


def _until(condition: Callable[[], bool], limit_s: float = 5.0) -> None:
    """Wait (briefly polling) until `condition` holds; fail the test after `limit_s`."""
    end = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < end, "the state the test waits for never came"
        time.sleep(0.001)


def _held(gate: GenerationGate) -> bool:
    """Whether someone holds a gate that lets nobody wait (max_waiting=0)."""
    return gate.full


class _Call(threading.Thread):
    """One model call in its own thread; keeps what it got and what it raised."""

    def __init__(self, target: Callable[[], object]) -> None:
        super().__init__(daemon=True)
        self._target_fn = target
        self.result: object = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self._target_fn()
        except BaseException as exc:
            self.error = exc

    def finish(self) -> None:
        self.join(5.0)
        assert not self.is_alive(), "the call never ended"


class _Holding(FakeLLM):
    """A fake model that keeps the gate (announced by `entered`) until `go` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.go = threading.Event()

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        stop: threading.Event | None = None,
        deadline: Deadline | None = None,
    ) -> Iterator[str]:
        self.entered.set()
        assert self.go.wait(5.0), "the test never let the model go on"
        yield from super().stream(messages, max_tokens=max_tokens, stop=stop, deadline=deadline)


# -- the gate ---------------------------------------------------------------------------


def test_the_gate_refuses_beyond_the_queue_at_once() -> None:
    gate = GenerationGate(max_waiting=1, retry_after_s=7)
    assert gate.acquire(Deadline(LONG))  # "a" holds the model
    log = ["a"]

    def b() -> None:
        assert gate.acquire(Deadline(LONG))
        log.append("b")
        gate.release()

    waiter = _Call(b)
    waiter.start()
    _until(lambda: gate.waiting == 1)
    assert gate.full
    started = time.monotonic()
    with pytest.raises(QueueFullError) as info:
        gate.acquire(Deadline(LONG))
    assert time.monotonic() - started < 1.0  # refused, not queued
    assert info.value.retry_after_s == 7
    with pytest.raises(QueueFullError):
        gate.check()  # what the HTTP layer asks before a stream's 200
    assert gate.waiting == 1  # the refused call never joined

    gate.release()
    waiter.finish()
    assert waiter.error is None
    assert log == ["a", "b"]
    assert (gate.waiting, gate.full) == (0, False)
    gate.check()


def test_the_gate_serves_waiters_in_arrival_order() -> None:
    gate = GenerationGate(max_waiting=8, retry_after_s=1)
    assert gate.acquire(Deadline(LONG))
    order: list[int] = []

    def client(n: int) -> Callable[[], None]:
        def call() -> None:
            assert gate.acquire(Deadline(LONG))
            order.append(n)
            gate.release()

        return call

    calls = []
    for n in range(6):
        calls.append(_Call(client(n)))
        calls[-1].start()
        _until(lambda n=n: gate.waiting == n + 1)  # client n queues before client n + 1
    gate.release()
    for call in calls:
        call.finish()
    assert order == [0, 1, 2, 3, 4, 5]
    assert gate.waiting == 0


def test_a_waiter_whose_deadline_passes_raises_and_leaves_the_queue() -> None:
    gate = GenerationGate(max_waiting=2, retry_after_s=1)
    assert gate.acquire(Deadline(LONG))
    waiter = _Call(lambda: gate.acquire(Deadline(0.2)))
    waiter.start()
    waiter.finish()  # within the 0.2 s, plus one poll
    assert isinstance(waiter.error, QueueTimeout)
    assert isinstance(waiter.error, LLMTimeout)  # the HTTP layer's 504 model_timeout
    assert "0.2 s" in str(waiter.error)
    assert gate.waiting == 0
    gate.release()
    assert gate.acquire(Deadline(0.2))  # free again: nobody holds a stale turn
    gate.release()


def test_a_waiter_whose_caller_left_gives_up_its_place() -> None:
    gate = GenerationGate(max_waiting=2, retry_after_s=1)
    assert gate.acquire(Deadline(LONG))
    stop = threading.Event()
    waiter = _Call(lambda: gate.acquire(Deadline(LONG), stop))
    waiter.start()
    _until(lambda: gate.waiting == 1)
    stop.set()
    waiter.finish()
    assert (waiter.result, waiter.error) == (False, None)  # gave up: no turn, no error
    assert gate.waiting == 0
    gate.release()
    assert not gate.acquire(Deadline(LONG), stop)  # already stopped: not even queued
    assert gate.acquire(Deadline(LONG))  # and the gate is free
    gate.release()


# -- the gated model --------------------------------------------------------------------


def test_the_inner_model_gets_the_deadline_started_when_the_call_joined() -> None:
    fake = FakeLLM()
    model = GatedLLM(fake, GenerationGate(max_waiting=2, retry_after_s=1), timeout_s=12.5)
    assert "".join(model.stream(ASK, max_tokens=16)) == "I don't know. "
    (deadline,) = fake.deadlines
    assert deadline is not None
    assert deadline.timeout_s == 12.5

    given = Deadline(3.0)
    list(model.stream(ASK, max_tokens=16, deadline=given))
    assert fake.deadlines[-1] is given  # a caller's own deadline is kept
    assert (model.name, model.context_window) == (fake.name, fake.context_window)
    assert model.count_tokens("abcdef") == fake.count_tokens("abcdef")
    assert model.inner is fake


def test_time_spent_queued_counts_against_the_generation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [0.0]
    monkeypatch.setattr(
        gated_module, "Deadline", lambda timeout_s: Deadline(timeout_s, clock=lambda: now[0])
    )

    class Ticking(FakeLLM):
        """Each piece takes one second of the fake clock."""

        def stream(
            self,
            messages: Sequence[ChatMessage],
            *,
            max_tokens: int,
            stop: threading.Event | None = None,
            deadline: Deadline | None = None,
        ) -> Iterator[str]:
            for piece in super().stream(
                messages, max_tokens=max_tokens, stop=stop, deadline=deadline
            ):
                now[0] += 1.0
                yield piece

    gate = GenerationGate(max_waiting=1, retry_after_s=1)
    model = GatedLLM(Ticking(), gate, timeout_s=10.0)
    assert gate.acquire(Deadline(LONG))
    call = _Call(lambda: list(model.stream(ASK, max_tokens=16)))
    call.start()
    _until(lambda: gate.waiting == 1)
    now[0] = 9.5  # queued for 9.5 of its 10 s
    gate.release()
    call.finish()
    assert isinstance(call.error, LLMTimeout)  # the model had only half a second left
    assert not isinstance(call.error, QueueTimeout)  # it did get its turn
    assert gate.acquire(Deadline(LONG))
    gate.release()


def test_a_gated_call_refused_or_timed_out_never_reaches_the_model() -> None:
    fake = FakeLLM()
    gate = GenerationGate(max_waiting=0, retry_after_s=4)
    model = GatedLLM(fake, gate, timeout_s=0.2)
    assert gate.acquire(Deadline(LONG))
    with pytest.raises(QueueFullError):
        list(model.stream(ASK, max_tokens=16))

    roomy = GenerationGate(max_waiting=1, retry_after_s=4)
    model = GatedLLM(fake, roomy, timeout_s=0.2)
    assert roomy.acquire(Deadline(LONG))
    with pytest.raises(QueueTimeout):
        list(model.stream(ASK, max_tokens=16))
    assert roomy.waiting == 0
    assert fake.calls == []


def test_a_gated_call_stopped_while_queued_leaves_without_an_answer() -> None:
    fake = FakeLLM()
    gate = GenerationGate(max_waiting=1, retry_after_s=1)
    model = GatedLLM(fake, gate, timeout_s=LONG)
    assert gate.acquire(Deadline(LONG))
    stop = threading.Event()
    call = _Call(lambda: list(model.stream(ASK, max_tokens=16, stop=stop)))
    call.start()
    _until(lambda: gate.waiting == 1)
    stop.set()
    call.finish()
    assert (call.result, call.error) == ([], None)
    assert gate.waiting == 0
    assert fake.calls == []
    gate.release()


def test_the_gate_is_released_when_the_consumer_closes_the_stream_early() -> None:
    gate = GenerationGate(max_waiting=0, retry_after_s=1)
    model = GatedLLM(FakeLLM(), gate, timeout_s=LONG)
    pieces = model.stream(
        [ChatMessage("user", "[1] doc\nmany words in this answer")], max_tokens=16
    )
    assert next(pieces) == "many "
    assert _held(gate)
    pieces.close()
    assert not _held(gate)


def test_the_gate_is_released_when_the_model_raises_or_finishes() -> None:
    class Failing(FakeLLM):
        def stream(
            self,
            messages: Sequence[ChatMessage],
            *,
            max_tokens: int,
            stop: threading.Event | None = None,
            deadline: Deadline | None = None,
        ) -> Iterator[str]:
            yield "x"
            raise LLMError("generation failed: out of memory")

    gate = GenerationGate(max_waiting=0, retry_after_s=1)
    with pytest.raises(LLMError, match="out of memory"):
        list(GatedLLM(Failing(), gate, timeout_s=LONG).stream(ASK, max_tokens=16))
    assert not _held(gate)
    list(GatedLLM(FakeLLM(), gate, timeout_s=LONG).stream(ASK, max_tokens=16))
    assert not _held(gate)


def test_calls_queue_behind_a_generation_and_are_counted_while_they_wait() -> None:
    holding = _Holding()
    gate = GenerationGate(max_waiting=4, retry_after_s=1)
    model = GatedLLM(holding, gate, timeout_s=LONG)
    first = _Call(lambda: "".join(model.stream(ASK, max_tokens=16)))
    first.start()
    assert holding.entered.wait(5.0)
    others = [_Call(lambda: "".join(model.stream(ASK, max_tokens=16))) for _ in range(3)]
    for n, call in enumerate(others, start=1):
        call.start()
        _until(lambda n=n: gate.waiting == n)
    assert gate.waiting == 3  # what the queue-depth metric reads
    holding.go.set()
    for call in [first, *others]:
        call.finish()
        assert (call.result, call.error) == ("I don't know. ", None)
    assert gate.waiting == 0
    assert len(holding.calls) == 4


def test_warm_holds_the_gate_and_is_skipped_for_models_without_it() -> None:
    class Warmable(FakeLLM):
        def __init__(self, gate: GenerationGate) -> None:
            super().__init__()
            self.gate = gate
            self.warmed: list[list[ChatMessage]] = []

        def warm(self, messages: Sequence[ChatMessage]) -> None:
            assert _held(self.gate)
            self.warmed.append(list(messages))

    gate = GenerationGate(max_waiting=0, retry_after_s=1)
    inner = Warmable(gate)
    GatedLLM(inner, gate, timeout_s=LONG).warm(ASK)
    assert inner.warmed == [ASK]
    assert not _held(gate)
    GatedLLM(FakeLLM(), gate, timeout_s=LONG).warm(ASK)  # nothing to warm: no error
    assert not _held(gate)


# -- bridging threads into the event loop -----------------------------------------------


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


def test_a_consumer_leaving_the_bridge_takes_its_queued_call_out() -> None:
    gate = GenerationGate(max_waiting=1, retry_after_s=1)
    model = GatedLLM(FakeLLM(), gate, timeout_s=LONG)
    assert gate.acquire(Deadline(LONG))

    async def scenario() -> None:
        agen = stream_in_thread(lambda stop: model.stream(ASK, max_tokens=16, stop=stop))
        task = asyncio.ensure_future(agen.__anext__())
        await asyncio.to_thread(_until, lambda: gate.waiting == 1)
        task.cancel()  # the client went away while its call was queued
        with pytest.raises(asyncio.CancelledError):
            await task
        await agen.aclose()

    asyncio.run(asyncio.wait_for(scenario(), 5.0))
    assert gate.waiting == 0
    gate.release()


def test_weighted_rrf_prefers_the_heavier_ranking() -> None:
    fused = rrf([(["a", "b"], 1.0), (["b", "c"], 0.25)], k=60)
    assert max(fused, key=fused.__getitem__) in {"a", "b"}
    assert fused["a"] > fused["c"]
    assert rrf([(["a"], 0.0)], k=60) == {}
