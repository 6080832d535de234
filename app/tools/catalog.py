"""Product search and recommendations as a chat reply.

A request with something to search for ("wireless headphones under 300 yuan",
"适合跑步的耳机") is searched with its constraints; a bare "what do you recommend?" from
a verified customer is answered from their order history (complements first, then
similar items; nothing they bought, nothing out of stock). Each suggestion cites its
catalogue document.
"""

from __future__ import annotations

import re

from app.domain import Lang
from app.prompts import PromptLibrary
from app.tools.base import ToolContext, ToolReply
from app.tools.catalog_query import CatalogQuery, parse_catalog_query
from app.tools.product_index import ProductCatalog, Suggestion, product_citation
from app.tools.records import OrderRepository, Product

# Words that ask for advice without saying what for; what is left decides if the
# request is specific.
_GENERIC = re.compile(
    r"\b(what|which|would|could|can|you|do|does|i|me|my|for|a|an|the|some|something|anything|"
    r"else|recommend\w*|suggest\w*|advice|advise|idea|ideas|buy|get|should|please|any|"
    r"products?|items?|shop|good|best|nice|to|with|go|also|based|on|like|might|may)\b|"
    r"推荐|建议|给我|帮我|有什么|有没有|什么|买|好的|适合我|我|吗|呢|一下|一些|东西|商品|的|可以|哪些|哪个|请",
    re.IGNORECASE,
)
_PUNCT = re.compile(r"[\s\W_]+")


def _constrained(query: CatalogQuery) -> bool:
    return bool(query.categories or query.attributes) or (
        query.max_price is not None or query.min_price is not None
    )


def is_specific(query: CatalogQuery) -> bool:
    if _constrained(query):
        return True
    return len(_PUNCT.sub("", _GENERIC.sub(" ", query.text))) >= 3


class CatalogTool:
    def __init__(
        self,
        repo: OrderRepository,
        catalog: ProductCatalog,
        prompts: PromptLibrary,
        complements: dict[str, list[str]],
        limit: int,
    ) -> None:
        self._repo = repo
        self._catalog = catalog
        self._prompts = prompts
        self._complements = complements
        self._limit = limit

    def handle(self, ctx: ToolContext) -> ToolReply | None:
        """Suggestions as a reply; None (answer from the documents) when nothing matched a
        request without hard constraints, where a cited answer serves better than "none"."""
        query = parse_catalog_query(ctx.message, self._catalog.categories())
        bought = self._bought(ctx.customer_id, ctx.lang)
        specific = is_specific(query)
        if specific or not bought:
            found = self._catalog.search(
                query, ctx.lang, exclude=[p.sku for p in bought], limit=self._limit
            )
            suggestions = [Suggestion(p, "match") for p in found]
            personal = False
        else:
            suggestions = self._catalog.recommend(
                ctx.lang, bought, None, self._complements, limit=self._limit
            )
            personal = True
        if not suggestions and not _constrained(query):
            return None
        return self._reply(ctx.lang, suggestions, personal=personal, query=query)

    def _bought(self, customer_id: str | None, lang: Lang) -> list[Product]:
        if customer_id is None:
            return []
        out: list[Product] = []
        for order in self._repo.orders_for(customer_id):
            if order.status == "cancelled":
                continue
            out += [p for line in order.lines if (p := self._catalog.get(line.sku, lang))]
        return out

    def _reply(
        self, lang: Lang, suggestions: list[Suggestion], *, personal: bool, query: CatalogQuery
    ) -> ToolReply:
        citations = [product_citation(n, s.product) for n, s in enumerate(suggestions, 1)]
        items = [
            {
                "n": n,
                "name": s.product.name,
                "price": f"{s.product.price:g}",
                "currency": s.product.currency,
                "why": s.why,
                "line": (s.product.text.splitlines()[0] if s.product.text else "")[:120],
            }
            for n, s in enumerate(suggestions, 1)
        ]
        text = self._prompts.render(
            "products",
            lang,
            items=items,
            personal=personal,
            max_price=None if query.max_price is None else f"{query.max_price:g}",
        )
        action = {
            "type": "products_suggested",
            "personal": personal,
            "items": [
                {
                    "sku": s.product.sku,
                    "doc_id": s.product.doc_id,
                    "name": s.product.name,
                    "price": s.product.price,
                    "why": s.why,
                }
                for s in suggestions
            ],
        }
        return ToolReply(text, actions=[action], citations=citations)
