"""Return eligibility per order line: window, category, opened, status, earlier requests."""

from datetime import date

import pytest

from app.tools.eligibility import ReturnPolicy, check_return
from app.tools.records import Order, OrderLine, Shipment

POLICY = ReturnPolicy(30, frozenset({"tea"}), frozenset({"earbuds"}))
CATEGORIES = {"HP": "headphones", "EB": "earbuds", "TE": "tea"}


def _order(
    status: str = "delivered", delivered: date | None = date(2026, 10, 1), **opened: bool
) -> Order:
    lines = tuple(OrderLine(sku, 1, 100.0, opened.get(sku, False)) for sku in ("HP", "EB", "TE"))
    shipment = Shipment("SF", "SF1", delivered_at=delivered)
    return Order("LL-2026-000001", "C1", status, date(2026, 9, 28), lines, shipment)  # type: ignore[arg-type]


def _reasons(order: Order, today: date, taken: frozenset[str] = frozenset()) -> dict[str, str]:
    return {d.sku: d.reason for d in check_return(order, CATEGORIES, POLICY, today, taken)}


def test_inside_the_window_unopened_lines_are_returnable_and_tea_never() -> None:
    decisions = check_return(_order(), CATEGORIES, POLICY, date(2026, 10, 16))
    assert [(d.sku, d.eligible, d.reason) for d in decisions] == [
        ("HP", True, "ok"),
        ("EB", True, "ok"),
        ("TE", False, "non_returnable"),
    ]
    assert decisions[0].deadline == date(2026, 10, 31)
    assert decisions[0].days_left == 15


def test_opened_earbuds_are_refused_but_opened_headphones_are_not() -> None:
    reasons = _reasons(_order(HP=True, EB=True), date(2026, 10, 16))
    assert reasons["HP"] == "ok"
    assert reasons["EB"] == "opened"


@pytest.mark.parametrize(
    ("today", "reason"), [(date(2026, 10, 31), "ok"), (date(2026, 11, 1), "window_closed")]
)
def test_the_window_ends_on_day_thirty_after_delivery(today: date, reason: str) -> None:
    assert _reasons(_order(), today)["HP"] == reason


@pytest.mark.parametrize(
    ("status", "reason"), [("shipped", "not_delivered"), ("cancelled", "cancelled")]
)
def test_undelivered_or_cancelled_orders_are_refused(status: str, reason: str) -> None:
    assert set(_reasons(_order(status, None), date(2026, 10, 16)).values()) == {reason}


def test_a_line_already_requested_is_not_offered_again() -> None:
    assert _reasons(_order(), date(2026, 10, 16), frozenset({"HP"}))["HP"] == "already_requested"
