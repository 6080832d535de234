"""Conversations over HTTP on the real stack: follow-ups, hand-offs, agents, feedback, stats."""

import httpx
import pytest

from tests.support.shopdesk import ADMIN_KEY, ask

pytestmark = pytest.mark.e2e
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


def _cited(body: dict[str, object]) -> set[str]:
    return {str(c["doc_id"]) for c in body["citations"]}  # type: ignore[attr-defined]


def _stats(url: str) -> dict[str, object]:
    r = httpx.get(f"{url}/v1/admin/stats", headers=AUTH, timeout=30)
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


def test_an_english_conversation_follows_its_topic(server: str) -> None:
    turns = [
        "How much is shipping to Hong Kong?",
        "What about Singapore?",
        "And how long does delivery take there?",
    ]
    first = ask(server, turns[0])
    session = first["session_id"]
    assert _cited(first) & {"policy-shipping-en", "faq-en-06"}
    assert first["intent"]["label"] == "shipping"  # type: ignore[index]
    second = ask(server, turns[1], session_id=session)
    assert second["rewritten"], "a follow-up must be made standalone"
    # the fee is in the shipping policy and in the shipping FAQ: either is a right source
    assert _cited(second) & {"policy-shipping-en", "faq-en-06"}
    assert "80" in str(second["answer"])
    third = ask(server, turns[2], session_id=session)
    assert third["rewritten"]
    assert "policy-shipping-en" in _cited(third)
    transcript = httpx.get(f"{server}/v1/sessions/{session}", timeout=30).json()
    assert [m["text"] for m in transcript["messages"] if m["role"] == "user"] == turns


def test_a_chinese_conversation_follows_its_topic(server: str) -> None:
    first = ask(server, "寄到香港的运费是多少？")
    session = first["session_id"]
    assert _cited(first) & {"policy-shipping-zh", "faq-zh-06"}
    second = ask(server, "那台湾呢？", session_id=session)
    assert second["rewritten"]
    assert _cited(second) & {"policy-shipping-zh", "faq-zh-06"}
    assert "30" in str(second["answer"])
    third = ask(server, "要几天才能到？", session_id=session)
    assert "policy-shipping-zh" in _cited(third)
    assert second["lang"] == third["lang"] == "zh"


def test_an_angry_complaint_goes_to_a_human_with_the_transcript(server: str) -> None:
    before = _stats(server)
    first = ask(server, "你们的快递太慢了，我要投诉！")
    session = first["session_id"]
    assert first["outcome"] == "handoff"
    assert first["handoff"]["reason"] in {"complaint", "anger"}  # type: ignore[index]
    assert first["sentiment"]["label"] == "negative"  # type: ignore[index]
    ticket = first["handoff"]["ticket_id"]  # type: ignore[index]
    queued = ask(server, "有人吗？", session_id=session)
    assert queued["outcome"] == "queued"

    assert httpx.get(f"{server}/v1/agent/tickets", timeout=30).status_code == 401
    listed = httpx.get(f"{server}/v1/agent/tickets", headers=AUTH, timeout=30).json()
    assert ticket in [t["id"] for t in listed]
    seen = httpx.get(f"{server}/v1/agent/tickets/{ticket}", headers=AUTH, timeout=30).json()
    assert [m["text"] for m in seen["messages"] if m["role"] == "user"] == [
        "你们的快递太慢了，我要投诉！",
        "有人吗？",
    ]
    r = httpx.post(
        f"{server}/v1/agent/tickets/{ticket}/reply",
        json={"text": "您好，我是客服小王，马上为您查询。"},
        headers=AUTH,
        timeout=30,
    )
    assert r.status_code == 200
    r = httpx.post(f"{server}/v1/agent/tickets/{ticket}/close", headers=AUTH, timeout=30)
    assert r.json()["status"] == "closed"

    after = _stats(server)
    assert after["conversations"] == before["conversations"] + 1  # type: ignore[operator]
    assert after["handoffs"] == before["handoffs"] + 1  # type: ignore[operator]


def test_feedback_and_stats_reflect_exactly_this_conversation(server: str) -> None:
    before = _stats(server)
    answered = ask(server, "Which payment methods do you accept?")
    r = httpx.post(
        f"{server}/v1/feedback",
        json={"message_id": answered["message_id"], "rating": "up"},
        timeout=30,
    )
    assert r.json()["created"] is True
    r = httpx.post(
        f"{server}/v1/feedback",
        json={"message_id": answered["message_id"], "rating": "up", "comment": "quick"},
        timeout=30,
    )
    assert r.json()["created"] is False
    r = httpx.post(f"{server}/v1/feedback", json={"message_id": "x1", "rating": "up"}, timeout=30)
    assert r.status_code == 404
    after = _stats(server)
    assert after["conversations"] == before["conversations"] + 1  # type: ignore[operator]
    assert after["feedback_up"] == before["feedback_up"] + 1  # type: ignore[operator]
    assert after["resolved"] == before["resolved"] + 1  # type: ignore[operator]
    assert after["assistant_turns"] == before["assistant_turns"] + 1  # type: ignore[operator]
    r = httpx.post(f"{server}/v1/chat", json={"message": "hi", "session_id": "0" * 32}, timeout=30)
    assert r.status_code == 404
