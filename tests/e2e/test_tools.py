"""Shop tools on the real stack: the real intent classifier routes, the 1.5B model phrases
order status (checked against the order's facts), the SQL order tables answer."""

import re

import httpx

from app.tools.identity import issue_token
from tests.support.shopdesk import TOKEN_SECRET, ask


def _as(customer: str) -> dict[str, str]:
    return {"X-Customer-Token": issue_token(customer, TOKEN_SECRET)}


def _say(
    server: str, message: str, customer: str | None = None, session: str | None = None
) -> dict:
    payload = {"message": message} | ({"session_id": session} if session else {})
    r = httpx.post(
        f"{server}/v1/chat", json=payload, headers=_as(customer) if customer else {}, timeout=300
    )
    assert r.status_code == 200, r.text
    return r.json()


def _types(reply: dict) -> list[str]:
    return [a["type"] for a in reply["actions"]]


def test_chinese_customer_verifies_in_chat_and_sees_the_status(server: str) -> None:
    first = ask(server, "帮我查一下订单LL-2026-100002到哪了")
    assert _types(first) == ["verification_requested"]  # type: ignore[arg-type]
    second = ask(server, "我的手机号是13800000001", session_id=first["session_id"])
    assert _types(second) == ["order_status"]  # type: ignore[arg-type]
    answer = str(second["answer"])
    assert "LL-2026-100002" in answer
    assert "SF0000000002" in answer


def test_someone_elses_order_reads_like_an_order_that_does_not_exist(server: str) -> None:
    theirs = ask(server, "Where is my order LL-2026-100002? My email is li.wei@example.com")
    none = ask(server, "Where is my order LL-2026-987654? My email is li.wei@example.com")
    assert theirs["answer"] == none["answer"]
    assert "SF0000000002" not in str(theirs["answer"])


def test_returns_inside_the_window_are_created_and_outside_refused_with_the_policy(
    server: str,
) -> None:
    offer = _say(server, "I want to return order LL-2026-100018", customer="C005")
    assert _types(offer) == ["return_offered"]
    assert offer["actions"][0]["skus"] == ["LL-HP-003"]
    done = _say(server, "yes please", customer="C005", session=offer["session_id"])
    assert _types(done) == ["return_created"]
    assert re.search(r"RMA-\w+", done["answer"])

    refused = _say(server, "我要退订单LL-2026-100008", customer="C004")
    assert _types(refused) == ["return_refused"]
    assert {c["doc_id"] for c in refused["citations"]} == {"policy-returns-zh"}


def test_recommendations_for_a_signed_in_customer_skip_what_they_own(server: str) -> None:
    reply = _say(server, "What would you recommend for me?", customer="C007")
    assert _types(reply) == ["products_suggested"]
    skus = {i["sku"] for i in reply["actions"][0]["items"]}
    assert skus
    assert not skus & {"LL-RN-001", "LL-HP-004", "LL-EB-002", "LL-TE-003", "LL-DL-002", "LL-RN-002"}
