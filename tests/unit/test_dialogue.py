"""The dialogue layer over fakes: hand-off policy, follow-ups, tickets, agents, feedback, stats."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.dialogue import policy
from app.dialogue.sentiment import Sentiment
from app.domain import Chunk
from app.llm.fake import FakeLLM
from app.main import create_app
from app.prompts import DEFAULT_DIR, PromptLibrary
from app.rag.rewrite import Rewriter, Turn, concat, follow_up_cue

pytestmark = pytest.mark.unit

KEY = "test-admin-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
CALM = Sentiment("neutral", 0.0, False, ())


def _chunk(doc_id: str, text: str) -> Chunk:
    meta = {"doc_id": doc_id, "title": doc_id, "source": f"{doc_id}.md", "kind": "policy",
            "lang": "en", "content_hash": "h", "n_chunks": 1, "chunk_index": 0}  # fmt: skip
    return Chunk(f"{doc_id}#0", doc_id, text, meta)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path,
        llm={"backend": "fake"},
        embedding={"backend": "fake"},
        store={"backend": "memory"},
        retrieval={"min_dense_score": 0.2, "faq_direct_score": 0.95},
        dialogue={"intent_backend": "fake"},
        admin_api_key=KEY,
    )
    chunks = [_chunk("returns", "Items can be returned within 30 days of delivery.")]
    with TestClient(create_app(settings)) as test_client:
        container = test_client.app.state.container  # type: ignore[attr-defined]
        container.store.upsert(chunks, container.embedder.embed_documents([chunks[0].text]))
        container.lexical.reload()
        yield test_client


def _say(client: TestClient, message: str, session: str | None = None) -> dict:
    payload = {"message": message} | ({"session_id": session} if session else {})
    r = client.post("/v1/chat", json=payload)
    assert r.status_code == 200, r.text
    return r.json()


def test_the_policy_orders_its_reasons() -> None:
    angry = Sentiment("negative", -0.9, True, ("insult",))
    complaining = Sentiment("negative", -0.5, True, ("complaint_word",))
    assert policy.before_answer(policy.Signals("shipping", complaining, False)) == "complaint"
    assert policy.before_answer(policy.Signals("human_agent", angry, True, True)) == "requested"
    assert policy.asks_for_person("I want to speak to someone", "human_agent")
    assert policy.asks_for_person("可以转人工吗？", "other")
    assert not policy.asks_for_person("When does your support team stop answering?", "human_agent")
    assert policy.before_answer(policy.Signals("complaint", angry, False)) == "anger"
    assert policy.before_answer(policy.Signals("complaint", CALM, False)) == "complaint"
    assert policy.before_answer(policy.Signals("shipping", CALM, True)) == "repeated_question"
    assert policy.before_answer(policy.Signals("shipping", CALM, False)) is None
    assert policy.after_answer("refused", ["generated", "refused"]) == "repeated_dont_know"
    assert policy.after_answer("refused", ["refused", "generated"]) is None
    assert policy.after_answer("generated", ["refused"]) is None


def test_follow_ups_are_recognised_and_made_standalone() -> None:
    assert follow_up_cue("And for the espresso machine?", "en") == "strong"
    assert follow_up_cue("那运费呢？", "zh") == "strong"
    assert follow_up_cue("Is it waterproof?", "en") == "strong"
    assert follow_up_cue("Do you ship to Malaysia?", "en") == "weak"
    assert follow_up_cue("How long is the warranty on the Lumen espresso machine?", "en") is None
    first = concat("And for shoes?", "What is the return window?", "en")
    assert first == "And for shoes? (follow-up to: What is the return window?)"
    # a chain of follow-ups carries only the original question, not the whole chain
    assert concat("And bags?", first, "en") == "And bags? (follow-up to: And for shoes?)"
    rewriter = Rewriter("concat", FakeLLM(), PromptLibrary(), 400, 0.45)
    history = [Turn("user", "What is the return window?")]
    assert rewriter.rewrite("Do you ship to Malaysia?", "en", history, lambda _: 0.6) is None
    assert rewriter.rewrite("Do you ship to Malaysia?", "en", history, lambda _: 0.3)
    assert rewriter.rewrite("And for shoes?", "en", []) is None  # nothing to follow


class _Echo(FakeLLM):
    def __init__(self, reply: str) -> None:
        super().__init__()
        self.reply = reply

    def stream(  # type: ignore[no-untyped-def]
        self, messages, *, max_tokens, stop=None, deadline=None
    ):
        yield self.reply


@pytest.mark.parametrize(
    ("model_says", "expected"),
    [
        ("How much is shipping to Singapore?", "How much is shipping to Singapore?"),
        ("What about Singapore?", "What about Singapore? (follow-up to: Shipping to HK?)"),
        ("Shipping to HK?", "What about Singapore? (follow-up to: Shipping to HK?)"),
        ("", "What about Singapore? (follow-up to: Shipping to HK?)"),
    ],
)
def test_a_model_rewrite_that_adds_nothing_falls_back_to_concat(
    model_says: str, expected: str
) -> None:
    rewriter = Rewriter("llm", _Echo(model_says), PromptLibrary(), 400, 0.45)
    history = [Turn("user", "Shipping to HK?"), Turn("assistant", "30 yuan [1].")]
    assert rewriter.rewrite("What about Singapore?", "en", history) == expected


def test_the_history_given_to_the_rewriter_is_bounded_by_tokens() -> None:
    # the fake counts len // 3 tokens, plus 4 per turn: 14, 14, 8
    rewriter = Rewriter("llm", FakeLLM(), PromptLibrary(), history_tokens=22, weak_max_score=0.45)
    history = [Turn("user", "x" * 30), Turn("assistant", "y" * 30), Turn("user", "z" * 12)]
    assert [t.text for t in rewriter.bounded(history)] == ["y" * 30, "z" * 12]


def test_every_prompt_renders_in_both_languages() -> None:
    library = PromptLibrary()
    variables = {
        "passages": [{"n": 1, "title": "t", "text": "x"}],
        "question": "q",
        "turns": [{"role": "user", "text": "a"}, {"role": "assistant", "text": "b"}],
        "message": "m",
        "reason": "requested",
        "ticket_id": "T1",
        "facts": "order LL-1",
        "step": "ask",
        "missing": ["order_id"],
        "orders": [
            {
                "order_id": "LL-1",
                "placed_at": "2026-10-01",
                "status": "shipped",
                "carrier": "SF",
                "tracking_number": "SF1",
                "delivered_at": None,
                "expected_delivery": "2026-10-03",
                "lines": [{"name": "kettle", "qty": 1}],
                "total": 1.0,
                "currency": "CNY",
            }
        ],
        "items": [],
        "personal": False,
        "max_price": None,
    }
    tasks = {p.name.split(".")[0] for p in DEFAULT_DIR.glob("*.j2")}
    for task in sorted(tasks):
        for lang in ("en", "zh"):
            assert library.render(task, lang, **variables).strip(), (task, lang)


def test_asking_for_a_human_opens_a_ticket_and_the_bot_steps_aside(client: TestClient) -> None:
    first = _say(client, "Can items be returned within 30 days of delivery?")
    assert first["outcome"] == "generated"  # a question about the policy, not a return request
    assert first["intent"]["label"] == "return_refund"
    assert first["handoff"] is None
    session = first["session_id"]
    handed = _say(client, "I want to talk to a human agent", session)
    assert handed["outcome"] == "handoff"
    assert handed["handoff"]["reason"] == "requested"
    ticket = handed["handoff"]["ticket_id"]
    assert ticket in handed["answer"]
    queued = _say(client, "Are you still there? Items returned within 30 days?", session)
    assert queued["outcome"] == "queued"
    assert queued["handoff"]["ticket_id"] == ticket
    assert queued["citations"] == []

    # the agent side: key required, ticket listed, transcript complete, reply, close
    assert client.get("/v1/agent/tickets").status_code == 401
    wrong = client.get("/v1/agent/tickets", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "unauthorized"
    tickets = client.get("/v1/agent/tickets", headers={"X-API-Key": KEY}).json()
    assert [t["id"] for t in tickets] == [ticket]
    transcript = client.get(f"/v1/agent/tickets/{ticket}", headers=AUTH).json()
    assert [m["role"] for m in transcript["messages"]] == ["user", "assistant"] * 3
    assert transcript["ticket"]["reason"] == "requested"
    r = client.post(
        f"/v1/agent/tickets/{ticket}/reply", json={"text": "Hi, Anna here."}, headers=AUTH
    )
    assert r.status_code == 200
    seen = client.get(f"/v1/sessions/{session}").json()
    assert seen["messages"][-1]["role"] == "agent"
    assert seen["status"] == "handed_off"
    closed = client.post(f"/v1/agent/tickets/{ticket}/close", headers=AUTH).json()
    assert closed["status"] == "closed"
    assert client.get("/v1/agent/tickets", headers=AUTH).json() == []
    r = client.post(f"/v1/agent/tickets/{ticket}/reply", json={"text": "late"}, headers=AUTH)
    assert r.status_code == 409
    assert client.get("/v1/agent/tickets/nope", headers=AUTH).status_code == 404
    back = _say(client, "Can items be returned within 30 days of delivery, really?", session)
    assert back["outcome"] == "generated"


@pytest.mark.parametrize(
    ("messages", "reason"),
    [
        (["I want to file a complaint about the delivery"], "complaint"),
        (["THIS IS A SCAM!!! GIVE ME MY MONEY BACK, YOU LIARS!!!"], "anger"),
        (["Can items be returned within 30 days?", "can items be returned within 30 days"],
         "repeated_question"),
        (["What colour is the moon rover?", "Do you sell submarine parts?"], "repeated_dont_know"),
        (["转人工"], "requested"),
    ],
)  # fmt: skip
def test_each_trigger_hands_off_with_its_reason(
    client: TestClient, messages: list[str], reason: str
) -> None:
    session = None
    for message in messages:
        body = _say(client, message, session)
        session = body["session_id"]
    assert body["handoff"] is not None, body
    assert body["handoff"]["reason"] == reason
    tickets = client.get("/v1/agent/tickets", headers=AUTH).json()
    assert [(t["conversation_id"], t["reason"]) for t in tickets] == [(session, reason)]
    assert _say(client, "hello?", session)["outcome"] == "queued"


def test_an_upset_customer_gets_an_apology_first(client: TestClient) -> None:
    body = _say(client, "I'm really disappointed, can items be returned within 30 days?")
    assert body["sentiment"]["label"] == "negative"
    assert body["answer"].startswith("I'm sorry")


def test_feedback_is_one_per_reply_and_stats_count_exactly(client: TestClient) -> None:
    assert client.get("/v1/admin/stats", headers=AUTH).json()["conversations"] == 0
    good = _say(client, "Can items be returned within 30 days of delivery?")
    bad = _say(client, "What colour is the moon rover?")
    handed = _say(client, "转人工")
    r = client.post("/v1/feedback", json={"message_id": good["message_id"], "rating": "up"})
    assert r.status_code == 200
    assert r.json()["created"] is True
    again = client.post(
        "/v1/feedback", json={"message_id": good["message_id"], "rating": "up", "comment": "ok"}
    ).json()
    assert again["created"] is False
    client.post("/v1/feedback", json={"message_id": bad["message_id"], "rating": "down"})
    r = client.post("/v1/feedback", json={"message_id": "nope", "rating": "up"})
    assert r.status_code == 404
    r = client.post("/v1/feedback", json={"message_id": good["message_id"], "rating": "meh"})
    assert r.status_code == 422

    stats = client.get("/v1/admin/stats", headers=AUTH).json()
    assert stats["conversations"] == 3
    assert stats["handoffs"] == 1
    assert stats["handoffs_by_reason"] == {"requested": 1}
    assert stats["resolved"] == 1  # bad got a thumbs-down, handed was handed off
    assert stats["resolution_rate"] == pytest.approx(1 / 3)
    assert stats["assistant_turns"] == 3
    assert stats["dont_know_turns"] == 1
    assert stats["satisfaction"] == pytest.approx(0.5)
    assert stats["top_unanswered"] == [{"question": "what colour is the moon rover", "count": 1}]
    assert stats["response_ms_p50"] is not None
    later = client.get("/v1/admin/stats?since=2999-01-01T00:00:00Z", headers=AUTH).json()
    assert later["conversations"] == 0
    assert handed["handoff"]["reason"] == "requested"


def test_admin_routes_are_off_without_a_key(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        llm={"backend": "fake"},
        embedding={"backend": "fake"},
        store={"backend": "memory"},
        dialogue={"intent_backend": "fake"},
    )
    with TestClient(create_app(settings)) as client:
        r = client.get("/v1/admin/stats", headers={"Authorization": "Bearer anything-at-all"})
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "admin_disabled"
        assert client.get("/v1/agent/tickets").status_code == 403
