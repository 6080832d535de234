"""Order status and tracking for the verified customer.

The facts (status, items, carrier, tracking number, dates) come from the order system;
the model only phrases them. Its wording is checked: every number and id it writes must
be among the facts, and the order number and tracking number must be there, otherwise
the plain template is sent instead. A customer with several orders who names none is
asked which one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from app.domain import Lang
from app.llm.base import LLM, ChatMessage, LLMError
from app.prompts import PromptLibrary
from app.tools.base import ToolContext, ToolReply
from app.tools.facts_check import faithful
from app.tools.product_index import ProductCatalog
from app.tools.records import Order, OrderRepository
from app.tools.verify import Verified

logger = logging.getLogger(__name__)

Phrase = Callable[[str, Lang], str | None]
"""The model's wording of an order's facts for a prompt, or None (the template is used)."""
PHRASE_MAX_TOKENS = 160


def model_phrase(llm: LLM, max_tokens: int = PHRASE_MAX_TOKENS) -> Phrase:
    """Phrasing by the chat model; a model failure falls back to the template. A full
    queue is not a failure of the model: it reaches the client as a 503."""

    def phrase(prompt: str, lang: Lang) -> str | None:
        try:
            pieces = llm.stream([ChatMessage("user", prompt)], max_tokens=max_tokens)
            return "".join(pieces).strip() or None
        except LLMError:
            logger.warning("the model could not phrase an order status; the template is used")
            return None

    return phrase


"""Given a prompt, the model's text (None when the model is not used)."""

LIST_LIMIT = 5


def order_facts(order: Order, catalog: ProductCatalog, lang: Lang) -> dict[str, Any]:
    """The order as plain values for the templates; product names in the reply's language."""
    shipment = order.shipment
    return {
        "order_id": order.order_id,
        "status": order.status,
        "placed_at": order.placed_at.isoformat(),
        "lines": [
            {
                "sku": line.sku,
                "name": (p.name if (p := catalog.get(line.sku, lang)) else line.sku),
                "qty": line.qty,
            }
            for line in order.lines
        ],
        "total": f"{order.total:.2f}",
        "currency": order.currency,
        "carrier": shipment.carrier if shipment else None,
        "tracking_number": shipment.tracking_number if shipment else None,
        "shipped_at": shipment.shipped_at.isoformat() if shipment and shipment.shipped_at else None,
        "expected_delivery": shipment.expected_delivery.isoformat()
        if shipment and shipment.expected_delivery
        else None,
        "delivered_at": order.delivered_at.isoformat() if order.delivered_at else None,
    }


class OrderTool:
    def __init__(
        self,
        repo: OrderRepository,
        catalog: ProductCatalog,
        prompts: PromptLibrary,
        phrase: Phrase | None,
    ) -> None:
        self._repo = repo
        self._catalog = catalog
        self._prompts = prompts
        self._phrase = phrase

    def status(self, ctx: ToolContext, who: Verified) -> ToolReply:
        orders = self._repo.orders_for(who.customer_id)
        state = ctx.state
        order = pick_order(orders, who.order_id)
        if who.order_id is not None and order is None:
            state.clear_task()
            text = self._prompts.render("verify", ctx.lang, step="not_yours", missing=[])
            return ToolReply(
                text, actions=[{"type": "order_not_found"}], verified_customer=_new(who)
            )
        if order is None:
            if not orders:
                state.clear_task()
                text = self._prompts.render("orders", ctx.lang, step="none", orders=[])
                return ToolReply(text, verified_customer=_new(who))
            if len(orders) > 1:
                state.task, state.pending = "order_status", "which_order"
                listed = [order_facts(o, self._catalog, ctx.lang) for o in orders[:LIST_LIMIT]]
                text = self._prompts.render("orders", ctx.lang, step="which", orders=listed)
                return ToolReply(
                    text, actions=[{"type": "order_choice"}], verified_customer=_new(who)
                )
            order = orders[0]
        state.clear_task()
        facts = order_facts(order, self._catalog, ctx.lang)
        text = self._prompts.render("orders", ctx.lang, step="status", orders=[facts])
        phrased_by = "template"
        if self._phrase is not None:
            prompt = self._prompts.render("order_phrase", ctx.lang, order=facts, facts=text)
            phrased = self._phrase(prompt, ctx.lang)
            must = [order.order_id] + (
                [facts["tracking_number"]] if facts["tracking_number"] else []
            )
            if phrased and faithful(phrased, text, must, order.status):
                text, phrased_by = phrased, "model"
        action = {
            "type": "order_status",
            "order_id": order.order_id,
            "status": order.status,
            "phrased_by": phrased_by,
        }
        return ToolReply(text, actions=[action], verified_customer=_new(who))


def pick_order(orders: list[Order], order_id: str | None) -> Order | None:
    if order_id is None:
        return None
    wanted = order_id.strip().upper()
    return next((o for o in orders if o.order_id.upper() == wanted), None)


def _new(who: Verified) -> str | None:
    return who.customer_id if who.just_now else None
