"""Shop tools over HTTP: verification, order status, returns, product search, leakage.

The app is the real one (routes, turn pipeline, tools, SQL order tables, the sample
shop's catalogue and policies ingested), with the fake model, embedder and keyword
intent classifier, so each test is fast and deterministic. The sample clock is pinned
to 2026-10-16, the date the sample orders are written around.
"""

import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.db.engine import database_url, make_engine
from app.main import create_app
from app.tools.identity import issue_token
from app.tools.seed import load_orders
from app.tools.sql_orders import SqlOrderRepository
from eval import leakage
from ingest.pipeline import ingest
from tests.support.paths import ROOT
from tests.support.settings import fake_settings

SAMPLE = ROOT / "data" / "sample_shop"
SECRET = "unit-test-token-secret"


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Path]]:
    data_dir = tmp_path_factory.mktemp("tools")
    settings = fake_settings(
        data_dir, tools={"today": date(2026, 10, 16), "customer_token_secret": SECRET}
    )
    with TestClient(create_app(settings)) as client:
        container = client.app.state.container  # type: ignore[attr-defined]
        ingest(
            [SAMPLE / "kb"],
            embedder=container.embedder,
            store=container.store,
            chunking=settings.chunking,
            bm25_path=settings.bm25_path,
        )
        container.lexical.reload()
        engine = make_engine(database_url(settings.data_dir, settings.db.url))
        load_orders(SAMPLE / "orders.jsonl", SqlOrderRepository(engine))
        engine.dispose()
        yield client, data_dir


@pytest.fixture
def client(shop: tuple[TestClient, Path]) -> TestClient:
    return shop[0]


def _say(
    client: TestClient, message: str, session: str | None = None, customer: str | None = None
) -> dict[str, Any]:
    payload = {"message": message} | ({"session_id": session} if session else {})
    headers = {"X-Customer-Token": issue_token(customer, SECRET)} if customer else {}
    r = client.post("/v1/chat", json=payload, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def _actions(reply: dict[str, Any]) -> list[str]:
    return [a["type"] for a in reply["actions"]]


@pytest.mark.parametrize(
    ("ask", "contact"),
    [
        ("Where is my order LL-2026-100002?", "my email is Wang.Fang@example.com"),
        ("我的订单LL-2026-100002到哪了？", "手机号13800000001"),
    ],
)
def test_a_customer_verified_in_chat_sees_their_order(
    client: TestClient, ask: str, contact: str
) -> None:
    first = _say(client, ask)
    assert first["outcome"] == "tool"
    assert _actions(first) == ["verification_requested"]
    assert "SF0000000002" not in first["answer"]
    second = _say(client, contact, first["session_id"])
    assert _actions(second) == ["order_status"]
    assert "LL-2026-100002" in second["answer"]
    assert "SF0000000002" in second["answer"]
    assert second["actions"][0]["order_id"] == "LL-2026-100002"
    # Verified for the rest of the conversation: another of her orders needs no new proof.
    third = _say(client, "and order LL-2026-100019?", second["session_id"])
    assert _actions(third) == ["order_status"]
    assert "2026-10-12" in third["answer"]


@pytest.mark.parametrize(
    "template",
    ["Where is my order {o}? My email is {e}", "帮我查一下订单{o}，我的邮箱是{e}"],
)
def test_wrong_email_someone_elses_order_and_no_such_order_get_the_same_answer(
    client: TestClient, template: str
) -> None:
    attempts = [
        ("LL-2026-100002", "nobody@example.org"),  # a real order, an email nobody has
        ("LL-2026-100002", "li.wei@example.com"),  # a real order, another customer's email
        ("LL-2026-999999", "wang.fang@example.com"),  # no such order, a real email
    ]
    replies = [_say(client, template.format(o=o, e=e)) for o, e in attempts]
    assert len({r["answer"] for r in replies}) == 1, [r["answer"] for r in replies]
    for reply in replies:
        assert _actions(reply) == ["verification_failed"]
        assert "SF0000000002" not in reply["answer"]
        assert "王芳" not in reply["answer"]


def test_a_token_customer_sees_only_their_own_orders(client: TestClient) -> None:
    listed = _say(client, "Where is my order?", customer="C001")
    assert _actions(listed) == ["order_choice"]
    assert {"LL-2026-100001", "LL-2026-100002", "LL-2026-100019"} <= set(
        re.findall(r"LL-2026-\d{6}", listed["answer"])
    )
    assert "LL-2026-100003" not in listed["answer"]
    picked = _say(client, "LL-2026-100001", listed["session_id"], customer="C001")
    assert _actions(picked) == ["order_status"]
    assert "SF0000000001" in picked["answer"]

    others = _say(client, "Where is order LL-2026-100003?", customer="C001")
    missing = _say(client, "Where is order LL-2026-999999?", customer="C001")
    assert others["answer"] == missing["answer"]
    assert _actions(others) == _actions(missing) == ["order_not_found"]


def test_tokens_are_checked_and_bind_the_session(client: TestClient) -> None:
    bad = client.post("/v1/chat", json={"message": "hi"}, headers={"X-Customer-Token": "x.1.y"})
    assert bad.status_code == 401
    assert bad.json()["error"]["code"] == "invalid_customer_token"
    mine = _say(client, "Where is my order LL-2026-100002?", customer="C001")
    theirs = client.post(
        "/v1/chat",
        json={"message": "and now?", "session_id": mine["session_id"]},
        headers={"X-Customer-Token": issue_token("C002", SECRET)},
    )
    assert theirs.status_code == 403
    assert theirs.json()["error"]["code"] == "session_forbidden"


def test_after_three_failures_the_bot_stops_and_offers_a_person(client: TestClient) -> None:
    session = None
    for email in ("a@example.org", "b@example.org", "c@example.org"):
        reply = _say(client, f"Where is order LL-2026-100002? email {email}", session)
        session = reply["session_id"]
    assert _actions(reply) == ["verification_locked"]
    assert "human" in reply["answer"]
    # Even the right details are refused now in this conversation.
    right = _say(client, "Where is order LL-2026-100002? email wang.fang@example.com", session)
    assert _actions(right) == ["verification_locked"]
    assert "SF0000000002" not in right["answer"]


def test_a_return_inside_the_window_is_created_on_confirmation(
    client: TestClient, shop: tuple[TestClient, Path]
) -> None:
    offer = _say(client, "I want to return order LL-2026-100018", customer="C005")
    assert _actions(offer) == ["return_offered"]
    action = offer["actions"][0]
    assert action["skus"] == ["LL-HP-003"]  # the opened earbuds on the same order are refused
    assert "Leaf Lite" in offer["answer"]
    assert any(c["doc_id"] == "policy-returns-en" for c in offer["citations"])
    done = _say(client, "yes", offer["session_id"], customer="C005")
    assert _actions(done) == ["return_created"]
    return_id = done["actions"][0]["return_id"]
    assert return_id in done["answer"]

    engine = make_engine(database_url(shop[1], None))
    stored = SqlOrderRepository(engine).returns_for("LL-2026-100018")
    engine.dispose()
    assert [(r.return_id, r.customer_id, r.skus) for r in stored] == [
        (return_id, "C005", ("LL-HP-003",))
    ]

    again = _say(client, "I want to return order LL-2026-100018", customer="C005")
    assert _actions(again) == ["return_refused"]
    assert set(again["actions"][0]["reasons"].values()) == {"already_requested", "opened"}


@pytest.mark.parametrize(
    ("message", "doc"),
    [
        ("I want to return order LL-2026-100008", "policy-returns-en"),
        ("我要退订单LL-2026-100008", "policy-returns-zh"),
    ],
)
def test_a_return_outside_the_window_is_refused_citing_the_policy(
    client: TestClient, message: str, doc: str
) -> None:
    reply = _say(client, message, customer="C004")
    assert _actions(reply) == ["return_refused"]
    assert reply["actions"][0]["reasons"] == {"LL-LA-002": "window_closed"}
    assert reply["citations"]
    assert {c["doc_id"] for c in reply["citations"]} == {doc}
    assert "30" in reply["answer"]
    assert "[1]" in reply["answer"]


def test_no_is_a_cancellation(client: TestClient) -> None:
    offer = _say(client, "I want to return order LL-2026-100020", customer="C002")
    assert _actions(offer) == ["return_offered"]
    no = _say(client, "no", offer["session_id"], customer="C002")
    assert _actions(no) == ["return_cancelled"]


def _suggested(reply: dict[str, Any]) -> list[dict[str, Any]]:
    (action,) = [a for a in reply["actions"] if a["type"] == "products_suggested"]
    return list(action["items"])


OUT_OF_STOCK = {"LL-EB-002", "LL-TE-003", "LL-DL-002", "LL-RN-002"}


@pytest.mark.parametrize("message", ["Can you recommend something for me?", "给我推荐点东西吧"])
def test_recommendations_skip_what_was_bought_and_what_is_out_of_stock(
    client: TestClient, message: str
) -> None:
    reply = _say(client, message, customer="C007")  # bought LL-RN-001 and LL-HP-004
    items = _suggested(reply)
    assert items
    assert all(i["sku"] not in {"LL-RN-001", "LL-HP-004", *OUT_OF_STOCK} for i in items)
    assert reply["actions"][0]["personal"] is True
    assert [c["doc_id"] for c in reply["citations"]] == [i["doc_id"] for i in items]


@pytest.mark.parametrize(
    ("message", "lang"),
    [
        ("Do you have wireless headphones under 300 yuan?", "en"),
        ("有没有300元以内的无线耳机", "zh"),
    ],
)
def test_product_search_keeps_every_constraint(client: TestClient, message: str, lang: str) -> None:
    reply = _say(client, message)
    items = _suggested(reply)
    assert items
    assert all(i["sku"] not in OUT_OF_STOCK for i in items)
    prices = {"LL-HP-002": 279, "LL-EB-001": 249, "LL-EB-003": 129}
    assert {i["sku"] for i in items} <= set(prices), items
    assert all(c["doc_id"].endswith(f"-{lang}") for c in reply["citations"])


def test_fifty_generated_cross_customer_attempts_leak_nothing(client: TestClient) -> None:
    names = leakage.product_names(SAMPLE / "kb" / "products.jsonl")
    targets, people = leakage.load_targets(SAMPLE / "orders.jsonl", names)
    attempts = leakage.generate(targets, people, n=56)
    assert {a.kind for a in attempts} == set(leakage.KINDS)
    report = leakage.run(attempts, leakage.http_say(client, lambda cid: issue_token(cid, SECRET)))
    assert report["attempts"] == 56
    assert report["leaks"] == 0, report["leaked"]
    say = leakage.http_say(client, lambda cid: issue_token(cid, SECRET))
    assert leakage.owner_control(targets, people, say) == {"n": 10, "saw_their_order": 10}


def test_the_leakage_check_catches_a_leak() -> None:
    target = leakage.Target("LL-2026-100002", "C001", ("SF0000000002",))
    attempt = leakage.Attempt("other_email", "en", target, ["m"], ["c"])
    told = [{"answer": "It ships with SF0000000002", "actions": []}]
    neutral = [{"answer": "I couldn't verify those details.", "actions": []}]
    assert leakage.check(attempt, told, neutral)
    assert leakage.check(attempt, neutral, neutral) == []
    assert leakage.check(attempt, [{"answer": "Found it.", "actions": []}], neutral)


def test_a_polite_yes_confirms_even_when_it_reads_as_small_talk(client: TestClient) -> None:
    offer = _say(client, "I want to return order LL-2026-100001", customer="C001")
    assert _actions(offer) == ["return_offered"]
    done = _say(client, "Thanks, yes please", offer["session_id"], customer="C001")
    assert _actions(done) == ["return_created"]
