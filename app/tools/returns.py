"""Returns for the verified customer: eligibility from the order and the shop's rules.

Eligibility is decided per order line by `eligibility.check_return` from the delivery
date, the item's category and whether it was opened, against the return window and the
categories in the settings. Every decision cites the shop's returns policy (the passage
retrieved from `returns_policy_doc`), and a return request is only created after the
customer confirms the lines offered.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from app.domain import Citation, Lang
from app.prompts import PromptLibrary
from app.rag.citations import best_snippet
from app.retrieval.hybrid import HybridRetriever
from app.text import words
from app.tools.base import ToolContext, ToolReply
from app.tools.catalog_query import parse_catalog_query
from app.tools.eligibility import LineDecision, ReturnPolicy, check_return
from app.tools.orders import LIST_LIMIT, order_facts, pick_order
from app.tools.product_index import ProductCatalog
from app.tools.records import Order, OrderRepository
from app.tools.verify import Verified

PolicyCitation = Callable[[str, Lang], Citation | None]
"""The returns-policy passage for a query, in a language; None when there is none."""


def policy_citation(retriever: HybridRetriever, doc_id: str) -> PolicyCitation:
    """Cites the best passage of the shop's returns policy (`doc_id` with `{lang}`)."""

    def cite(query: str, lang: Lang) -> Citation | None:
        found = retriever.retrieve(query, {"doc_id": doc_id.format(lang=lang)}, k=1).passages
        if not found:
            return None
        chunk = found[0].chunk
        source = str(chunk.metadata.get("source", ""))
        return Citation(
            1, chunk.doc_id, chunk.title, source, best_snippet(chunk.text, set(words(query)))
        )

    return cite


"""The returns-policy passage that best supports a statement, as a citation."""

_YES = re.compile(
    r"^\s*(yes|yep|yeah|y|ok|okay|sure|confirm(ed)?|please do|go ahead|do it|是|是的|对|"
    r"确认|确定|好|好的|可以|行|嗯|麻烦了|申请吧)\b|^\s*(是|对|确认|确定|好|可以|行|嗯)",
    re.IGNORECASE,
)
_COURTESY = re.compile(
    r"^\s*(thanks|thank you|great|perfect|cool|hi|hello|谢谢|谢啦|太好了|您好|你好)[\s,，.。!！]*",
    re.IGNORECASE,
)
_NO = re.compile(
    r"^\s*(no|nope|n|cancel|don't|do not|never mind|not now|不|不用|不要|取消|算了|先不)",
    re.IGNORECASE,
)

# What each refusal reason is about, as a query into the returns policy.
_POLICY_QUERY: dict[str, dict[Lang, str]] = {
    "window_closed": {"en": "return within days of delivery", "zh": "签收后多少天内可以退货"},
    "opened": {"en": "opened earbuds cannot be returned", "zh": "已拆封的入耳式耳机不能退货"},
    "non_returnable": {"en": "items that cannot be returned", "zh": "不可退货的商品"},
    "ok": {"en": "how to return an item RMA number", "zh": "如何申请退货 退货编号"},
}


def answer_to_confirmation(message: str) -> bool | None:
    """True for "yes", False for "no", None for anything else ("thanks, yes" is a yes)."""
    message = _COURTESY.sub("", message)
    if _NO.search(message):
        return False
    if _YES.search(message):
        return True
    return None


class ReturnTool:
    def __init__(
        self,
        repo: OrderRepository,
        catalog: ProductCatalog,
        prompts: PromptLibrary,
        policy: ReturnPolicy,
        cite: PolicyCitation,
    ) -> None:
        self._repo = repo
        self._catalog = catalog
        self._prompts = prompts
        self._policy = policy
        self._cite = cite

    def handle(self, ctx: ToolContext, who: Verified) -> ToolReply:
        state = ctx.state
        new = who.customer_id if who.just_now else None
        if state.pending == "confirm_return" and state.order_id:
            answer = answer_to_confirmation(ctx.message)
            if answer is not None:
                return self._confirmed(ctx, who, answer)

        orders = self._repo.orders_for(who.customer_id)
        order = pick_order(orders, who.order_id)
        if who.order_id is not None and order is None:
            state.clear_task()
            text = self._prompts.render("verify", ctx.lang, step="not_yours", missing=[])
            return ToolReply(text, actions=[{"type": "order_not_found"}], verified_customer=new)
        if order is None:
            candidates = [o for o in orders if o.status == "delivered"] or orders
            if len(candidates) != 1:
                state.task, state.pending = "return", "which_order"
                listed = [order_facts(o, self._catalog, ctx.lang) for o in candidates[:LIST_LIMIT]]
                step = "which" if listed else "none"
                text = self._prompts.render("orders", ctx.lang, step=step, orders=listed)
                return ToolReply(text, actions=[{"type": "order_choice"}], verified_customer=new)
            order = candidates[0]
        return self._offer(ctx, order, new)

    def _offer(self, ctx: ToolContext, order: Order, new: str | None) -> ToolReply:
        state = ctx.state
        decisions = self._decide(ctx, order)
        wanted = self._mentioned(ctx, order)
        if wanted:
            decisions = [d for d in decisions if d.sku in wanted]
        eligible = [d for d in decisions if d.eligible]
        refused = [d for d in decisions if not d.eligible]
        reasons: list[str] = sorted({d.reason for d in refused}) or ["ok"]
        citations = self._citations(reasons if not eligible else ["ok", *reasons], ctx.lang)
        names = {d.sku: self._name(d.sku, ctx.lang) for d in decisions}
        view = {
            "order_id": order.order_id,
            "eligible": [{"name": names[d.sku], "deadline": _day(d)} for d in eligible],
            "refused": [{"name": names[d.sku], "reason": d.reason} for d in refused],
            "window_days": self._policy.window_days,
            "cite": " ".join(f"[{c.n}]" for c in citations),
        }
        if eligible:
            state.task, state.pending, state.order_id = "return", "confirm_return", order.order_id
            state.return_skus = [d.sku for d in eligible]
            text = self._prompts.render("returns", ctx.lang, step="offer", **view)
            action: dict[str, Any] = {
                "type": "return_offered",
                "order_id": order.order_id,
                "skus": state.return_skus,
            }
        else:
            state.clear_task()
            text = self._prompts.render("returns", ctx.lang, step="refused", **view)
            action = {
                "type": "return_refused",
                "order_id": order.order_id,
                "reasons": {d.sku: str(d.reason) for d in refused},
            }
        return ToolReply(text, actions=[action], citations=citations, verified_customer=new)

    def _confirmed(self, ctx: ToolContext, who: Verified, yes: bool) -> ToolReply:
        state = ctx.state
        order_id, skus = state.order_id, list(state.return_skus)
        state.clear_task()
        new = who.customer_id if who.just_now else None
        if not yes or order_id is None:
            text = self._prompts.render("returns", ctx.lang, step="cancelled")
            return ToolReply(text, actions=[{"type": "return_cancelled"}], verified_customer=new)
        order = pick_order(self._repo.orders_for(who.customer_id), order_id)
        if order is None:  # the order vanished between the turns
            text = self._prompts.render("verify", ctx.lang, step="not_yours", missing=[])
            return ToolReply(text, actions=[{"type": "order_not_found"}], verified_customer=new)
        # Decide again: a day may have passed, or another request taken the lines.
        still = [d.sku for d in self._decide(ctx, order) if d.eligible and d.sku in skus]
        if not still:
            return self._offer(ctx, order, new)
        created = self._repo.create_return(order.order_id, who.customer_id, tuple(still), None)
        text = self._prompts.render(
            "returns",
            ctx.lang,
            step="created",
            return_id=created.return_id,
            order_id=order.order_id,
            items=[self._name(s, ctx.lang) for s in still],
        )
        action = {
            "type": "return_created",
            "return_id": created.return_id,
            "order_id": order.order_id,
            "skus": list(created.skus),
        }
        return ToolReply(text, actions=[action], verified_customer=new)

    def _decide(self, ctx: ToolContext, order: Order) -> list[LineDecision]:
        categories = {
            line.sku: p.category
            for line in order.lines
            if (p := self._catalog.get(line.sku, ctx.lang)) is not None
        }
        taken = frozenset(s for r in self._repo.returns_for(order.order_id) for s in r.skus)
        return check_return(order, categories, self._policy, ctx.today, taken)

    def _mentioned(self, ctx: ToolContext, order: Order) -> set[str]:
        """Lines the message names (by sku, product name or category); empty = all."""
        text = ctx.message.lower()
        query = parse_catalog_query(ctx.message, self._catalog.categories())
        out: set[str] = set()
        for line in order.lines:
            product = self._catalog.get(line.sku, ctx.lang)
            if line.sku.lower() in text or (
                product is not None
                and (product.name.lower() in text or product.category in query.categories)
            ):
                out.add(line.sku)
        return out

    def _citations(self, reasons: list[str], lang: Lang) -> list[Citation]:
        out: list[Citation] = []
        for reason in reasons:
            query = _POLICY_QUERY.get(reason)
            cited = self._cite(query[lang], lang) if query else None
            if cited is not None and all(c.snippet != cited.snippet for c in out):
                out.append(
                    Citation(len(out) + 1, cited.doc_id, cited.title, cited.source, cited.snippet)
                )
        return out

    def _name(self, sku: str, lang: Lang) -> str:
        product = self._catalog.get(sku, lang)
        return product.name if product else sku


def _day(decision: LineDecision) -> str | None:
    return decision.deadline.isoformat() if decision.deadline else None
