"""The intent router: which tool (if any) takes a turn, and the slot-filling around it.

order status → orders (after verification) · a return *request* → returns (after
verification) · product search or advice → catalogue · everything else → the
retrieval-augmented answer. A question *about* the return policy ("can opened earbuds
be returned?") stays with retrieval, which cites the policy; "I want to return my
kettle" goes to the tool. A turn that answers what the bot asked (an email, an order
number, "yes") continues the task in progress whatever its intent reads as.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from typing import Literal

from app.tools.base import Task, ToolContext, ToolReply, ToolState
from app.tools.catalog import CatalogTool
from app.tools.identity import extract_claims
from app.tools.orders import OrderTool
from app.tools.product_index import ProductCatalog
from app.tools.returns import ReturnTool, answer_to_confirmation
from app.tools.verify import Verifier

Route = Literal["orders", "returns", "catalog", "rag"]
ROUTES: tuple[Route, ...] = ("orders", "returns", "catalog", "rag")

_RETURN_REQUEST = re.compile(
    r"\b(i|i'd|i'm|we)\b[^.?!]{0,25}\b(want|would like|need|like|wanna|going|trying|wish)\b"
    r"[^.?!]{0,15}\b(return|refund|send\b[^.?!]{0,12}\bback|\w+ (my )?money back)"
    r"|\b(start|open|begin|make|create|file|request)\b[^.?!]{0,10}\b(a |my )?(return|refund)"
    r"|\b(return|refund)\b[^.?!]{0,6}\b(my|this|these)\b"
    r"|\bcan i (return|get a refund)\b[^.?!]{0,30}\b(my|i (bought|ordered|got))\b"
    r"|我要退|我想退|想退掉|帮我退|给我退|申请退|办理退|退掉|我(买|购买|收到)的[^。？！?!]{0,15}(退|换)"
    r"|我的[^。？！?!]{0,12}(能|可以|怎么)?退"
    r"|订单[^。？！?!]{0,12}退",
    re.IGNORECASE,
)
_SEARCH = re.compile(
    r"\b(do you (have|sell|carry|stock)|show me|looking for|look for|find me|i need an?|"
    r"i('m| am) (looking|searching)|any\b[^.?!]{0,30}\b(under|below|less than|cheaper)|"
    r"under \d|below \d|cheaper than|less than \d)"
    r"|有没有|有卖|想买|要买|找一?(款|个|台|副)|推荐|适合|以内|以下|便宜",
    re.IGNORECASE,
)
# "How do I track my order?" asks how, not where: the FAQ answers it for everyone.
_HOW_TO = re.compile(
    r"^\s*(how (do|can|should|would) (i|we|one|you)|how to|is there a way to|"
    r"怎么|怎样|如何|怎么样才能)",
    re.IGNORECASE,
)
# "When will *my* order arrive?" is about an order; "how long does shipping take?" is not.
_MY_ORDER = re.compile(
    r"\bmy (order|package|parcel|delivery|shipment|purchase)s?\b|"
    r"我的(订单|包裹|快递|物流|货)|我(买|下单)的",
    re.IGNORECASE,
)
_TASK_ROUTE: dict[Task, Route] = {"order_status": "orders", "return": "returns"}


def decide(message: str, intent: str, state: ToolState, order_id_pattern: str) -> Route:
    """Where this turn goes; pure, so it is measured on labelled messages (eval/routing.py)."""
    claims = extract_claims(message, order_id_pattern)
    if state.task is not None and state.pending is not None:
        if state.pending == "confirm_return" and answer_to_confirmation(message) is not None:
            return "returns"
        if intent == "order_status":
            return "orders"
        if intent == "return_refund":
            return "returns"
        if not claims.empty:
            return _TASK_ROUTE[state.task]
    if intent == "order_status" and _RETURN_REQUEST.search(message):
        return "returns"
    if intent == "order_status" or (intent == "shipping" and _MY_ORDER.search(message)):
        return "rag" if _HOW_TO.search(message) and not claims.order_id else "orders"
    if intent == "return_refund":
        return "returns" if claims.order_id or _RETURN_REQUEST.search(message) else "rag"
    if claims.order_id and intent != "recommendation" and not _HOW_TO.search(message):
        # An order number is about that order, whatever the classifier made of the words.
        return "returns" if _RETURN_REQUEST.search(message) else "orders"
    if intent == "recommendation":
        return "catalog"
    if intent == "product_question" and _SEARCH.search(message):
        return "catalog"
    if intent in ("complaint", "other", "shipping") and _RETURN_REQUEST.search(message):
        return "returns"
    return "rag"


class ShopTools:
    """Runs the routed tool for one turn; None means "answer from the documents"."""

    def __init__(
        self,
        verifier: Verifier,
        orders: OrderTool,
        returns: ReturnTool,
        catalog: CatalogTool,
        products: ProductCatalog,
        order_id_pattern: str,
        today: Callable[[], date],
    ) -> None:
        self._verifier = verifier
        self._products = products
        self._orders = orders
        self._returns = returns
        self._catalog = catalog
        self._pattern = order_id_pattern
        self._today = today

    def today(self) -> date:
        return self._today()

    def route(self, message: str, intent: str, state: ToolState) -> Route:
        return decide(message, intent, state, self._pattern)

    def handle(self, ctx: ToolContext) -> ToolReply | None:
        route = self.route(ctx.message, ctx.intent, ctx.state)
        if route == "rag":
            if ctx.state.pending is not None:  # the customer moved on
                ctx.state.clear_task()
            return None
        self._products.sync()  # one look at the store per tool turn, not per product
        if route == "catalog":
            return self._catalog.handle(ctx)
        task: Task = "order_status" if route == "orders" else "return"
        if ctx.state.task != task:
            ctx.state.task, ctx.state.pending, ctx.state.return_skus = task, None, []
        who = self._verifier.check(ctx)
        if isinstance(who, ToolReply):
            return who
        if task == "order_status":
            return self._orders.status(ctx, who)
        return self._returns.handle(ctx, who)
