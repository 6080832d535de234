"""The check between the model's order-status phrasing and the order's facts."""

import pytest

from app.tools.facts_check import faithful

FACTS = (
    "Order LL-2026-100002 (placed 2026-10-12) is shipped. Carrier: SF Express, tracking number "
    "SF0000000002. Expected delivery: 2026-10-16. Items: Kettle x1. Total: 269.00 CNY."
)
MUST = ["LL-2026-100002", "SF0000000002"]


@pytest.mark.parametrize(
    "text",
    [
        "Your order LL-2026-100002 is on its way with SF Express (tracking SF0000000002) "
        "and should arrive on October 16. The total was 269 CNY.",
        "订单 LL-2026-100002 已发货，运单号 SF0000000002，预计 10月16日 送达。",
        "Good news: LL-2026-100002 has shipped, tracking SF0000000002, expected to be "
        "delivered on 2026-10-16.",
    ],
)
def test_a_faithful_phrasing_passes(text: str) -> None:
    assert faithful(text, FACTS, MUST, "shipped")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("Order LL-2026-100002 is on its way, tracking SF0000000002, arriving October 17.", "date"),
        ("订单 LL-2026-100002 已发货，运单号 SF0000000002，预计 10月18日 送达。", "zh date"),
        ("Order LL-2026-100002 is on its way, tracking SF0000000003.", "wrong tracking"),
        ("Order LL-2026-100002 is on its way, tracking SF0000000002, total 296 CNY.", "amount"),
        ("Order LL-2026-100002 is on its way in 3 days, tracking SF0000000002.", "a new number"),
        ("Order LL-2026-100002 has been delivered, tracking SF0000000002.", "status"),
        ("订单 LL-2026-100002 已签收，运单号 SF0000000002。", "zh status"),
        ("Your order is on its way, tracking SF0000000002.", "no order number"),
    ],
)
def test_an_unfaithful_phrasing_fails(text: str, why: str) -> None:
    assert not faithful(text, FACTS, MUST, "shipped"), why


def test_a_delivered_order_may_say_it_was_shipped_and_delivered() -> None:
    facts = "Order LL-1 is delivered. Shipped 2026-09-18, delivered on 2026-09-20."
    text = "Order LL-1 was shipped on September 18 and delivered on September 20."
    assert faithful(text, facts, ["LL-1"], "delivered")
    assert not faithful(text.replace("20", "21"), facts, ["LL-1"], "delivered")
