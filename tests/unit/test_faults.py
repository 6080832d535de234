"""The model failing or running past its deadline: one clean error, and the session goes on.

The JSON route answers 502 `model_error` or 504 `model_timeout` in the one error shape;
the stream, whose 200 has gone out, ends with an `error` event in that shape and [DONE].
The customer's message is kept, the model is free for the next turn (the queue admits
no waiting request here, so a slot left taken would show as a 503), and asking the same
thing again is a retry, not a repeated question that hands the customer off.
"""

import json
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.llm.base import ChatMessage, Deadline, LLMError, LLMTimeout
from app.llm.fake import FakeLLM
from app.main import create_app
from tests.support.chunks import policy_chunk, seed
from tests.support.settings import RETRIEVAL, fake_settings

pytestmark = pytest.mark.unit

QUESTION = "Can items be returned within 30 days of delivery?"


class FaultyLLM(FakeLLM):
    """The fake model; each queued fault is raised by one call, after its first piece."""

    def __init__(self) -> None:
        super().__init__()
        self.faults: list[Exception] = []

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        stop: threading.Event | None = None,
        deadline: Deadline | None = None,
    ) -> Iterator[str]:
        fault = self.faults.pop(0) if self.faults else None
        for piece in super().stream(messages, max_tokens=max_tokens, stop=stop, deadline=deadline):
            yield piece
            if fault is not None:
                raise fault


class SlowLLM(FakeLLM):
    """Every piece takes a second of its own clock; the deadline is kept as LlamaCppLLM
    keeps it (checked between pieces), so no test waits for real time."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self.timeout_s = timeout_s
        self.now = 0.0

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        stop: threading.Event | None = None,
        deadline: Deadline | None = None,
    ) -> Iterator[str]:
        own = Deadline(self.timeout_s, clock=lambda: self.now)  # the given one is real time
        for piece in super().stream(messages, max_tokens=max_tokens, stop=stop, deadline=deadline):
            self.now += 1.0
            own.check()
            yield piece


def _client(tmp_path: Path, llm: FakeLLM) -> TestClient:
    settings = fake_settings(tmp_path, llm={"queue_size": 0}, retrieval=RETRIEVAL)
    return TestClient(create_app(settings, llm=llm))


@pytest.fixture
def faulty() -> FaultyLLM:
    return FaultyLLM()


@pytest.fixture
def client(tmp_path: Path, faulty: FaultyLLM) -> Iterator[TestClient]:
    with _client(tmp_path, faulty) as test_client:
        _shop(test_client)
        yield test_client


def _shop(client: TestClient) -> None:
    seed(client, [policy_chunk("returns", "Items can be returned within 30 days of delivery.")])


def _chat(client: TestClient, message: str, session: str | None = None) -> tuple[int, dict]:
    payload = {"message": message} | ({"session_id": session} if session else {})
    r = client.post("/v1/chat", json=payload)
    return r.status_code, r.json()


def _stream(client: TestClient, message: str, session: str) -> list[tuple[str, str]]:
    """(event, data) in order; [DONE] comes as ("message", "[DONE]")."""
    with client.stream(
        "POST", "/v1/chat/stream", json={"message": message, "session_id": session}
    ) as r:
        assert r.status_code == 200
        text = "".join(r.iter_text())
    events: list[tuple[str, str]] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in fields:
            events.append((fields.get("event", "message"), fields["data"]))
    return events


def _transcript(client: TestClient, session: str) -> list[tuple[str, str]]:
    messages = client.get(f"/v1/sessions/{session}").json()["messages"]
    return [(m["role"], m["text"]) for m in messages]


def test_the_deadline_passes_only_after_its_time() -> None:
    now = [100.0]
    deadline = Deadline(2.0, clock=lambda: now[0])
    now[0] = 102.0
    deadline.check()  # at the deadline, still in time
    now[0] = 102.5
    with pytest.raises(LLMTimeout, match="within 2 s"):
        deadline.check()
    assert issubclass(LLMTimeout, LLMError)  # every model failure is still an LLMError


def test_a_model_failure_is_a_502_and_the_retry_answers(
    client: TestClient, faulty: FaultyLLM
) -> None:
    status, first = _chat(client, QUESTION)
    assert (status, first["outcome"]) == (200, "generated")
    session = first["session_id"]

    faulty.faults.append(LLMError("generation failed: out of memory"))
    status, body = _chat(client, "Can I return opened items within 30 days?", session)
    assert status == 502
    assert body == {"error": {"code": "model_error", "message": body["error"]["message"]}}
    assert "out of memory" not in body["error"]["message"]  # details stay in the log

    # the same question again is a retry: answered, not handed off as a repeat
    status, again = _chat(client, "Can I return opened items within 30 days?", session)
    assert status == 200, again
    assert (again["session_id"], again["outcome"], again["handoff"]) == (
        session,
        "generated",
        None,
    )
    assert [role for role, _ in _transcript(client, session)] == [
        "user",
        "assistant",
        "user",  # the failed turn's question is kept; it has no reply
        "user",
        "assistant",
    ]


def test_a_slow_model_is_a_504_then_the_next_turn_answers(tmp_path: Path) -> None:
    slow = SlowLLM(timeout_s=2.5)
    with _client(tmp_path, slow) as client:
        _shop(client)
        status, first = _chat(client, "hello")
        assert (status, first["outcome"]) == (200, "greeting")  # no model needed
        session = first["session_id"]

        status, body = _chat(client, QUESTION, session)
        assert status == 504
        assert body == {"error": {"code": "model_timeout", "message": body["error"]["message"]}}
        assert _transcript(client, session)[-1] == ("user", QUESTION)

        slow.timeout_s = 1000.0
        status, again = _chat(client, QUESTION, session)
        assert (status, again["outcome"], again["handoff"]) == (200, "generated", None)


@pytest.mark.parametrize(
    ("fault", "code"),
    [(LLMError("boom"), "model_error"), (LLMTimeout("no answer within 1 s"), "model_timeout")],
)
def test_the_stream_ends_with_an_error_event_in_the_one_shape(
    client: TestClient, faulty: FaultyLLM, fault: LLMError, code: str
) -> None:
    session = _chat(client, "hello")[1]["session_id"]
    faulty.faults.append(fault)
    events = _stream(client, QUESTION, session)
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "meta"
    assert kinds[-2:] == ["error", "message"]
    assert "done" not in kinds
    error = json.loads(events[-2][1])
    assert error == {"error": {"code": code, "message": error["error"]["message"]}}
    assert events[-1][1] == "[DONE]"
    assert _transcript(client, session)[-1] == ("user", QUESTION)

    after = _stream(client, QUESTION, session)  # the model is free again
    assert [kind for kind, _ in after][-2:] == ["done", "message"]
    assert json.loads(after[-2][1])["outcome"] == "generated"


def test_an_unexpected_failure_mid_stream_is_an_error_event_too(
    client: TestClient, faulty: FaultyLLM
) -> None:
    faulty.faults.append(RuntimeError("a bug, not a model failure"))
    events = _stream(client, QUESTION, _chat(client, "hello")[1]["session_id"])
    assert [kind for kind, _ in events][-2:] == ["error", "message"]
    assert json.loads(events[-2][1])["error"]["code"] == "internal_error"


def test_a_failed_rewrite_falls_back_to_the_message_as_it_is(
    client: TestClient, faulty: FaultyLLM
) -> None:
    session = _chat(client, QUESTION)[1]["session_id"]
    faulty.faults.append(LLMError("boom"))  # the follow-up's rewrite is the next model call
    status, body = _chat(client, "And what about opened items?", session)
    assert status == 200, body
    assert body["rewritten"] is None
    assert not faulty.faults  # the rewrite did call the model
