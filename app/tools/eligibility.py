"""Whether each line of an order can be returned, by the shop's rules in the settings.

A pure function of the order, the lines' categories, the policy and today's date, so
the rule is tested on its own and the chat only phrases its verdict. The checks, in
order: the order was cancelled or not yet delivered; a return was already requested
for the line; the category is never returnable; the category is returnable only
unopened; the window (days after delivery, the delivery day is day 0) has closed.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from app.tools.records import Order

Reason = Literal[
    "ok",
    "not_delivered",
    "cancelled",
    "window_closed",
    "non_returnable",
    "opened",
    "already_requested",
]


@dataclass(frozen=True)
class ReturnPolicy:
    window_days: int
    non_returnable_categories: Set[str]
    unopened_only_categories: Set[str]


@dataclass(frozen=True)
class LineDecision:
    sku: str
    category: str | None
    eligible: bool
    reason: Reason
    days_left: int | None = None
    """Whole days left in the window (0 = the last day); None when not delivered."""
    deadline: date | None = None
    """The last day a return can be requested."""


def check_return(
    order: Order,
    categories: Mapping[str, str],
    policy: ReturnPolicy,
    today: date,
    already_requested: Set[str] = frozenset(),
) -> list[LineDecision]:
    """One decision per order line, in the order's line order."""
    delivered = order.delivered_at
    deadline = delivered + timedelta(days=policy.window_days) if delivered else None
    days_left = (deadline - today).days if deadline else None
    out: list[LineDecision] = []
    for line in order.lines:
        category = categories.get(line.sku)
        reason: Reason
        if order.status == "cancelled":
            reason = "cancelled"
        elif order.status != "delivered" or delivered is None:
            reason = "not_delivered"
        elif line.sku in already_requested:
            reason = "already_requested"
        elif category in policy.non_returnable_categories:
            reason = "non_returnable"
        elif category in policy.unopened_only_categories and line.opened:
            reason = "opened"
        elif days_left is not None and days_left < 0:
            reason = "window_closed"
        else:
            reason = "ok"
        out.append(LineDecision(line.sku, category, reason == "ok", reason, days_left, deadline))
    return out
