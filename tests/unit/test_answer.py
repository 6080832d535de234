"""The answer service and the HTTP routes, over fakes (hash embedder, memory store, fake LLM)."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.support.chunks import policy_chunk, seed
from tests.support.settings import RETRIEVAL, fake_settings

pytestmark = pytest.mark.unit


CHUNKS = [
    policy_chunk("returns", "Items can be returned within 30 days of delivery."),
    policy_chunk("shipping", "Shipping is free on orders over 99 yuan."),
    policy_chunk(
        "faq-track",
        "How do I track my order?\nOpen My Orders and click Track.",
        kind="faq",
        question="How do I track my order?",
        answer="Open My Orders and click Track.",
    ),
]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(fake_settings(tmp_path, retrieval=RETRIEVAL))) as test_client:
        # an FAQ is embedded from its question, as ingest does
        seed(test_client, CHUNKS, [str(c.metadata.get("question") or c.text) for c in CHUNKS])
        yield test_client


def test_answer_cites_the_retrieved_passage(client: TestClient) -> None:
    body = client.post("/v1/chat", json={"message": "returned within 30 days of delivery?"}).json()
    assert body["outcome"] == "generated"
    assert body["grounded"] is True
    assert body["citations"][0]["doc_id"] == "returns"
    assert "[1]" in body["answer"]
    assert body["session_id"]
    assert body["message_id"]


def test_faq_question_is_answered_directly(client: TestClient) -> None:
    body = client.post("/v1/chat", json={"message": "How do I track my order?"}).json()
    assert body["outcome"] == "faq"
    assert body["answer"].startswith("Open My Orders")
    assert body["citations"][0]["doc_id"] == "faq-track"


def test_off_topic_question_is_refused_without_citations(client: TestClient) -> None:
    body = client.post("/v1/chat", json={"message": "volcano eruption forecast Iceland"}).json()
    assert body["outcome"] == "refused"
    assert body["citations"] == []
    assert "human" in body["answer"]


def test_filters_limit_retrieval(client: TestClient) -> None:
    body = client.post(
        "/v1/chat", json={"message": "returned within 30 days", "filters": {"kind": "faq"}}
    ).json()
    assert all(c["doc_id"] == "faq-track" for c in body["citations"])


def test_search_ranks_passages_and_honours_filters(client: TestClient) -> None:
    body = client.post("/v1/search", json={"query": "returned within 30 days", "k": 2}).json()
    assert 1 <= len(body["passages"]) <= 2
    assert {"doc_id", "text", "score", "dense_score", "bm25_score"} <= set(body["passages"][0])
    faq_only = client.post(
        "/v1/search", json={"query": "returned within 30 days", "filters": {"kind": "faq"}}
    ).json()
    assert {p["doc_id"] for p in faq_only["passages"]} == {"faq-track"}
    for payload in ({"query": ""}, {"query": "x", "k": 0}, {"query": "x", "mode": "magic"}):
        r = client.post("/v1/search", json=payload)
        assert r.status_code == 422
        assert set(r.json()["error"]) == {"code", "message"}


def test_a_session_continues_and_an_unknown_one_is_404(client: TestClient) -> None:
    first = client.post("/v1/chat", json={"message": "shipping free?"}).json()
    again = client.post(
        "/v1/chat", json={"message": "shipping free?!", "session_id": first["session_id"]}
    ).json()
    assert again["session_id"] == first["session_id"]
    r = client.post("/v1/chat", json={"message": "shipping free?", "session_id": "abc"})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "session_not_found"
    r = client.post("/v1/chat/stream", json={"message": "hi there", "session_id": "abc"})
    assert r.status_code == 404


def test_stream_sends_meta_tokens_done(client: TestClient) -> None:
    with client.stream(
        "POST", "/v1/chat/stream", json={"message": "free shipping over 99 yuan"}
    ) as r:
        assert r.status_code == 200
        text = "".join(r.iter_text())
    events = [line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("event: ")]
    assert events[0] == "meta"
    assert "token" in events
    assert events[-1] == "done"
    assert text.rstrip().endswith("data: [DONE]")


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"message": ""}, "empty_message"),
        ({"message": "   \n "}, "empty_message"),
        ({"message": "x" * 5000}, "message_too_long"),
        ({"message": 42}, "invalid_request"),
        ({}, "invalid_request"),
        ({"message": "hi", "lang": "fr"}, "invalid_request"),
        ({"message": "hi", "surprise": 1}, "invalid_request"),
        ({"message": "hi", "filters": {f"k{i}": i for i in range(40)}}, "invalid_request"),
    ],
)
def test_bad_input_gets_one_error_shape(client: TestClient, payload: object, code: str) -> None:
    r = client.post("/v1/chat", json=payload)
    assert r.status_code == 422
    assert r.json() == {"error": {"code": code, "message": r.json()["error"]["message"]}}
    assert "Traceback" not in r.text


def test_invalid_json_and_huge_body(client: TestClient) -> None:
    r = client.post("/v1/chat", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_request"
    r = client.post(
        "/v1/chat", content=b"x" * 100_000, headers={"content-type": "application/json"}
    )
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"


def test_unknown_route_uses_the_error_shape(client: TestClient) -> None:
    r = client.get("/v1/nope")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


def test_health_and_ready(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready"
    assert ready["chunks"] == 3


def test_full_queue_answers_503_with_retry_after(tmp_path: Path) -> None:
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from app.llm.fake import FakeLLM

    class SlowLLM(FakeLLM):
        def stream(  # type: ignore[no-untyped-def]
            self, messages, *, max_tokens, stop=None, deadline=None
        ):
            for piece in super().stream(
                messages, max_tokens=max_tokens, stop=stop, deadline=deadline
            ):
                time.sleep(0.2)
                yield piece

    settings = fake_settings(
        tmp_path,
        llm={"queue_size": 0, "retry_after_s": 3},
        retrieval=RETRIEVAL,
        dialogue={"intent_backend": "embedding"},  # the default: this test never used the fake
    )
    with TestClient(create_app(settings, llm=SlowLLM())) as test_client:
        seed(test_client, CHUNKS)
        barrier = threading.Barrier(3)

        def ask() -> tuple[int, str | None]:
            barrier.wait()
            r = test_client.post("/v1/chat", json={"message": "returned within 30 days?"})
            return r.status_code, r.headers.get("retry-after")

        with ThreadPoolExecutor(3) as pool:
            results = list(pool.map(lambda _: ask(), range(3)))
    assert sorted(code for code, _ in results)[0] == 200
    busy = [r for r in results if r[0] == 503]
    assert busy, results
    assert all(retry == "3" for _, retry in busy)
