"""Every model call of a turn waits in the model's one queue, over HTTP.

The answer, the follow-up rewrite (`dialogue.rewrite = "llm"`) and the order-status
phrasing all go through the container's one `GatedLLM`, so a rewrite or a phrasing held
inside the model fills the queue (503 `busy` for the next call), and each is counted by
the queue-depth gauge while it waits. A call still queued at `llm.timeout_s` leaves the
queue then: a queued answer ends the turn with 504 `model_timeout` (an `error` event on
the stream), a queued phrasing gives way to the plain template.

The app is the real one with the fake model, embedder, store and keyword intent
classifier, and the sample shop's orders; requests run in threads, and the fake model
records which prompt it was given, so each test knows which call holds the model.
Nothing sleeps for its timing: each step waits for an event or for the state it needs,
every wait has a limit, and every hold is let go in a `finally`.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.db.engine import database_url, make_engine
from app.domain import Chunk
from app.llm.base import ChatMessage, Deadline
from app.llm.fake import FakeLLM
from app.main import create_app
from app.prompts import DEFAULT_DIR
from app.tools.identity import issue_token
from app.tools.seed import load_orders
from app.tools.sql_orders import SqlOrderRepository

pytestmark = pytest.mark.unit

SECRET = "unit-test-token-secret"
ORDERS = Path(__file__).resolve().parents[2] / "data" / "sample_shop" / "orders.jsonl"
QUESTION = "Can items be returned within 30 days of delivery?"
FOLLOW_UP = "And what about opened items?"  # a strong follow-up cue: "and …"
ORDER = "LL-2026-100002"  # Wang Fang's (C001), shipped with SF0000000002
ASK_ORDER = f"Where is my order {ORDER}?"
EMAIL = "my email is Wang.Fang@example.com"
STANDALONE = "Can opened items be returned within 30 days of delivery?"
"""What the fake model makes of any follow-up it is asked to rewrite."""
WAIT_S = 10.0  # the most any step waits for an event; no passing run comes near it
RETRY_AFTER = "3"
Response = Any
"""A TestClient response: httpx's, or httpx2's where starlette finds that package."""


def _opening(task: str) -> str:
    """The first line of a prompt template (fixed text, no variables)."""
    return (DEFAULT_DIR / f"{task}.en.j2").read_text(encoding="utf-8").splitlines()[0].strip()


KINDS = {task: _opening(task) for task in ("rewrite", "order_phrase", "answer_system")}


def _kind(messages: Sequence[ChatMessage]) -> str:
    """Which prompt a model call was given: rewrite, order_phrase, answer_system."""
    text = "\n".join(m.content for m in messages)
    found = [task for task, opening in KINDS.items() if opening in text]
    assert len(found) == 1, text[:300]
    return found[0]


_FACTS = re.compile(r"Facts:\n(.+?)\n\s*Reply:", re.DOTALL)


class HeldLLM(FakeLLM):
    """The fake model (a rewrite is STANDALONE, an order's phrasing its facts, an answer
    the first passage), which records the kind of each prompt as the call enters the model
    and keeps the call there (announced by `entered`) while `hold` is clear.

    It does not keep the deadline it is given: a call held for as long as a test needs
    must not time out once let go. The deadlines under test are those of calls still in
    the queue, which the gate keeps, not the model.
    """

    def __init__(self) -> None:
        super().__init__()
        self.kinds: list[str] = []
        self.prompts: list[str] = []
        self.hold = threading.Event()
        self.hold.set()
        self.entered = threading.Event()

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        stop: threading.Event | None = None,
        deadline: Deadline | None = None,
    ) -> Iterator[str]:
        self.kinds.append(_kind(messages))
        self.prompts.append(messages[-1].content)
        self.entered.set()
        assert self.hold.wait(WAIT_S), "the test never let the model go on"
        match self.kinds[-1]:
            case "rewrite":
                yield STANDALONE
            case "order_phrase":  # the facts as they are: a faithful phrasing
                yield _FACTS.search(messages[-1].content).group(1)  # type: ignore[union-attr]
            case _:
                yield from super().stream(messages, max_tokens=max_tokens, stop=stop)


@contextmanager
def _app(
    tmp_path: Path, llm: HeldLLM, *, queue_size: int, timeout_s: float = 30.0
) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path,
        llm={
            "backend": "fake",
            "queue_size": queue_size,
            "retry_after_s": int(RETRY_AFTER),
            "timeout_s": timeout_s,
        },
        embedding={"backend": "fake"},
        store={"backend": "memory"},
        retrieval={"min_dense_score": 0.2, "faq_direct_score": 0.95},
        dialogue={"intent_backend": "fake", "rewrite": "llm"},
        tools={"today": date(2026, 10, 16), "customer_token_secret": SECRET},
        server={"metrics_public": True, "rate_limit_per_minute": 0},  # one client: no limit
    )
    with TestClient(create_app(settings, llm=llm)) as client:
        container = client.app.state.container  # type: ignore[attr-defined]
        meta: dict[str, str | int | float | bool] = {
            "doc_id": "returns",
            "title": "Returns",
            "source": "returns.md",
            "kind": "policy",
            "lang": "en",
            "content_hash": "h",
            "n_chunks": 1,
            "chunk_index": 0,
        }
        text = "Items can be returned within 30 days of delivery."
        chunk = Chunk("returns#0", "returns", text, meta)
        container.store.upsert([chunk], container.embedder.embed_documents([text]))
        container.lexical.reload()
        engine = make_engine(database_url(settings.data_dir, settings.db.url))
        load_orders(ORDERS, SqlOrderRepository(engine))
        engine.dispose()
        yield client


def _waiting(client: TestClient) -> int:
    return client.app.state.container.gate.waiting  # type: ignore[attr-defined,no-any-return]


def _until(condition: Callable[[], bool], limit_s: float = WAIT_S) -> None:
    """Wait (briefly polling) until `condition` holds; fail the test after `limit_s`."""
    end = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < end, "the state the test waits for never came"
        time.sleep(0.002)


def _headers(customer: str | None) -> dict[str, str]:
    return {"X-Customer-Token": issue_token(customer, SECRET)} if customer else {}


def _post(
    client: TestClient, message: str, session: str | None = None, customer: str | None = None
) -> Response:
    payload = {"message": message} | ({"session_id": session} if session else {})
    return client.post("/v1/chat", json=payload, headers=_headers(customer))


def _say(
    client: TestClient, message: str, session: str | None = None, customer: str | None = None
) -> dict[str, Any]:
    r = _post(client, message, session, customer)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _stream(client: TestClient, message: str) -> Response:
    """`/v1/chat/stream`, read to its end."""
    with client.stream("POST", "/v1/chat/stream", json={"message": message}) as r:
        r.read()
    return r


def _events(r: Response) -> list[tuple[str, str]]:
    """A stream's (event, data) pairs in order; an unnamed event's name is ""."""
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    events: list[tuple[str, str]] = []
    for block in r.text.replace("\r\n", "\n").split("\n\n"):
        lines = [line.split(": ", 1) for line in block.split("\n") if ": " in line]
        fields = {name: value for name, value in lines if name in ("event", "data")}
        if "data" in fields:
            events.append((fields.get("event", ""), fields["data"]))
    return events


def _is_error(body: dict[str, Any], code: str) -> bool:
    """The one error shape, with this code and a message."""
    return body == {"error": {"code": code, "message": body["error"]["message"]}} and bool(
        body["error"]["message"]
    )


def _is_busy(r: Response) -> bool:
    return (
        r.status_code == 503
        and r.headers.get("retry-after") == RETRY_AFTER
        and _is_error(r.json(), "busy")
    )


@contextmanager
def _held(llm: HeldLLM, start: Callable[[], object]) -> Iterator[Future[Any]]:
    """`start()` in a thread, once it is inside the model and kept there; the model is let
    go when the block ends, however it ends, and the call's result awaited."""
    llm.hold.clear()
    llm.entered.clear()
    with ThreadPoolExecutor(1) as pool:
        try:
            future = pool.submit(start)
            assert llm.entered.wait(WAIT_S), "the call never reached the model"
            yield future
        finally:
            llm.hold.set()
        future.result(timeout=WAIT_S)


# -- 1. a follow-up's rewrite takes the model's turn -------------------------------------


def test_a_held_rewrite_fills_the_queue_and_the_next_call_is_refused(tmp_path: Path) -> None:
    llm = HeldLLM()
    with _app(tmp_path, llm, queue_size=0) as client:
        first = _say(client, QUESTION)
        assert first["outcome"] == "generated"
        assert llm.kinds == ["answer_system"]
        session = first["session_id"]
        other = _say(client, QUESTION)["session_id"]  # a conversation to follow up in too

        with _held(llm, lambda: _post(client, FOLLOW_UP, session)) as follow_up:
            # the call inside the model is the follow-up's rewrite, not an answer
            assert llm.kinds[-1] == "rewrite"
            assert FOLLOW_UP in llm.prompts[-1]
            assert QUESTION in llm.prompts[-1]  # the conversation it follows up on
            calls = len(llm.kinds)
            # a new question needs the model for its answer: the JSON route and the stream
            assert _is_busy(_post(client, QUESTION))
            assert _is_busy(_stream(client, QUESTION))  # refused before the stream's 200
            # another follow-up: its own rewrite is refused
            assert _is_busy(_post(client, FOLLOW_UP, other))
            assert len(llm.kinds) == calls  # none of them reached the model
            assert _waiting(client) == 0

        done = follow_up.result()
        assert done.status_code == 200, done.text
        assert done.json()["rewritten"] == STANDALONE  # what the held call came back with
        assert llm.kinds[calls - 1] == "rewrite"
        # the model is free again: the other follow-up is rewritten and answered
        assert _say(client, FOLLOW_UP, other)["session_id"] == other
        assert llm.kinds[-2:] == ["rewrite", "answer_system"]


# -- 2. an order status's phrasing takes the model's turn --------------------------------


def test_a_held_order_phrasing_fills_the_queue_and_the_next_call_is_refused(
    tmp_path: Path,
) -> None:
    llm = HeldLLM()
    with _app(tmp_path, llm, queue_size=0) as client:
        asked = _say(client, ASK_ORDER)
        assert [a["type"] for a in asked["actions"]] == ["verification_requested"]
        assert llm.kinds == []  # asking who the shopper is needs no model

        with _held(llm, lambda: _post(client, EMAIL, asked["session_id"])) as verified:
            assert llm.kinds == ["order_phrase"]  # the verified customer's order status
            assert ORDER in llm.prompts[-1]
            assert _is_busy(_post(client, QUESTION))
            assert _is_busy(_stream(client, QUESTION))  # refused before the stream's 200
            # another customer's order status: its phrasing is refused, no template instead
            assert _is_busy(_post(client, "Where is my order LL-2026-100003?", customer="C002"))
            assert llm.kinds == ["order_phrase"]

        reply = verified.result()
        assert reply.status_code == 200, reply.text
        (action,) = reply.json()["actions"]
        assert action == {
            "type": "order_status",
            "order_id": ORDER,
            "status": "shipped",
            "phrased_by": "model",  # the held call's wording was used
        }
        assert "SF0000000002" in reply.json()["answer"]
        # free again: the other customer's order status now goes through
        again = _say(client, "Where is my order LL-2026-100003?", customer="C002")
        assert again["actions"][0]["type"] == "order_status"
        assert llm.kinds[-1] == "order_phrase"


# -- 3. the queue-depth gauge counts them ------------------------------------------------


def _depth(client: TestClient) -> float:
    r = client.get("/metrics")
    assert r.status_code == 200, r.text
    (line,) = [line for line in r.text.splitlines() if line.startswith("shopdesk_llm_queue_depth ")]
    return float(line.split()[1])


@pytest.mark.parametrize("waiter", ["rewrite", "order_phrase"])
def test_a_rewrite_or_phrasing_waiting_for_the_model_is_counted(
    tmp_path: Path, waiter: str
) -> None:
    llm = HeldLLM()
    with _app(tmp_path, llm, queue_size=1) as client:
        session = _say(client, QUESTION)["session_id"]
        assert _depth(client) == 0
        wait: Callable[[], Response]
        if waiter == "rewrite":
            wait = lambda: _post(client, FOLLOW_UP, session)  # noqa: E731
        else:
            wait = lambda: _post(client, ASK_ORDER, customer="C001")  # noqa: E731
        calls = len(llm.kinds)

        with ThreadPoolExecutor(1) as pool, _held(llm, lambda: _post(client, QUESTION)) as held:
            assert llm.kinds[-1] == "answer_system"
            queued = pool.submit(wait)
            _until(lambda: _waiting(client) == 1)
            assert _depth(client) == 1
            assert _is_busy(_post(client, QUESTION))  # one holds, one waits: full
            assert _depth(client) == 1
            assert len(llm.kinds) == calls + 1  # only the held answer got in so far

        assert held.result().status_code == 200
        assert queued.result(timeout=WAIT_S).status_code == 200
        # the one that waited was let in next: the rewrite or the phrasing
        assert llm.kinds[calls : calls + 2] == ["answer_system", waiter]
        assert _depth(client) == 0


# -- 4. a queued call ends at its deadline -----------------------------------------------

TIMEOUT_S = 0.5


def test_a_queued_answer_ends_at_its_deadline_on_the_json_route_and_the_stream(
    tmp_path: Path,
) -> None:
    llm = HeldLLM()
    with _app(tmp_path, llm, queue_size=1, timeout_s=TIMEOUT_S) as client:
        with _held(llm, lambda: _post(client, QUESTION)) as held:
            assert llm.kinds == ["answer_system"]
            t0 = time.monotonic()
            r = _post(client, QUESTION)  # queued behind the held answer
            waited = time.monotonic() - t0
            assert r.status_code == 504, r.text
            assert _is_error(r.json(), "model_timeout")
            assert TIMEOUT_S <= waited < WAIT_S / 2
            assert not held.done()  # ended while the first still holds the model

            t0 = time.monotonic()
            events = _events(_stream(client, QUESTION))  # the 200 is out before it queues
            waited = time.monotonic() - t0
            assert [e for e, _ in events] == ["meta", "error", ""]
            assert _is_error(json.loads(events[1][1]), "model_timeout")
            assert events[-1][1] == "[DONE]"
            assert TIMEOUT_S <= waited < WAIT_S / 2
            assert not held.done()
            assert _waiting(client) == 0  # the timed-out calls left the queue
            assert llm.kinds == ["answer_system"]  # and never reached the model

        assert held.result().status_code == 200
        assert _say(client, QUESTION)["outcome"] == "generated"
        assert llm.kinds == ["answer_system", "answer_system"]


def test_a_queued_order_phrasing_ends_at_its_deadline_and_the_template_is_sent(
    tmp_path: Path,
) -> None:
    """The phrasing is optional (`model_phrase`): a queue timeout costs the wording only."""
    llm = HeldLLM()
    with _app(tmp_path, llm, queue_size=1, timeout_s=TIMEOUT_S) as client:
        with _held(llm, lambda: _post(client, QUESTION)) as held:
            t0 = time.monotonic()
            reply = _say(client, ASK_ORDER, customer="C001")  # queued behind the answer
            waited = time.monotonic() - t0
            assert TIMEOUT_S <= waited < WAIT_S / 2
            assert not held.done()
            (action,) = reply["actions"]
            assert (action["order_id"], action["phrased_by"]) == (ORDER, "template")
            assert "SF0000000002" in reply["answer"]
            assert _waiting(client) == 0
            assert llm.kinds == ["answer_system"]

        assert held.result().status_code == 200
        again = _say(client, ASK_ORDER, customer="C001")
        assert again["actions"][0]["phrased_by"] == "model"
        assert llm.kinds == ["answer_system", "order_phrase"]
