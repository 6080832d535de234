"""The product catalogue: search with structured constraints, and personal recommendations.

The catalogue is what ingest stored: every product row keeps its sku, category, price,
stock and `attr_*` attributes as metadata beside its text in the vector store. Search
ranks by the same hybrid retrieval as answers (so "适合跑步的耳机" finds the sport
earbuds), then applies the hard constraints parsed from the message (price bounds,
category, attributes) and drops what is out of stock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

from app.domain import Chunk, Citation, Lang
from app.retrieval.hybrid import HybridRetriever
from app.retrieval.store import VectorStore
from app.tools.catalog_query import CatalogQuery, matches
from app.tools.records import Product


def product_from_chunk(chunk: Chunk) -> Product | None:
    """The product a stored chunk describes, or None for a chunk that is not a product."""
    meta = chunk.metadata
    if meta.get("kind") != "product" or "sku" not in meta:
        return None
    attributes = {k[len("attr_") :]: v for k, v in meta.items() if k.startswith("attr_")}
    return Product(
        sku=str(meta["sku"]),
        lang=str(meta.get("lang", "en")),
        name=str(meta.get("title", meta["sku"])),
        category=str(meta.get("category", "")),
        price=float(meta.get("price", 0.0)),
        currency=str(meta.get("currency", "CNY")),
        stock=int(meta.get("stock", 0)),
        doc_id=chunk.doc_id,
        attributes=attributes,
        text=chunk.text,
        source=str(meta.get("source", "")),
    )


def product_citation(n: int, product: Product) -> Citation:
    """A citation that links a suggestion to its catalogue document."""
    snippet = product.text.splitlines()[0][:200] if product.text else product.name
    return Citation(
        n=n, doc_id=product.doc_id, title=product.name, source=product.source, snippet=snippet
    )


@dataclass(frozen=True)
class Suggestion:
    product: Product
    why: str
    """"match" (fits the request), "complement" or "similar" (to something bought)."""


class ProductCatalog:
    """Products by (sku, lang), read from the vector store.

    `sync()` (once per tool turn) reads them again when the store's chunk count changed:
    an ingest added or pruned documents, possibly from the CLI in another process.
    `refresh()` forces it, for an ingest that only changed a product's stock or price.
    """

    def __init__(
        self, store: VectorStore, retriever: HybridRetriever, candidates: int = 40
    ) -> None:
        self._store = store
        self._retriever = retriever
        self._candidates = candidates
        self._lock = threading.Lock()
        self._products: dict[tuple[str, str], Product] = {}
        self._seen = -1
        self.refresh()

    def sync(self) -> None:
        if self._store.count() != self._seen:
            self.refresh()

    def refresh(self) -> None:
        products: dict[tuple[str, str], Product] = {}
        seen = self._store.count()
        for chunk in self._store.scan():
            product = product_from_chunk(chunk)
            if product is not None and chunk.metadata.get("chunk_index", 0) == 0:
                products[(product.sku, product.lang)] = product
        with self._lock:
            self._products, self._seen = products, seen

    def get(self, sku: str, lang: Lang) -> Product | None:
        products = self._products
        found = products.get((sku, lang))
        if found is None:  # a product described in the other language only
            found = next((p for (s, _), p in products.items() if s == sku), None)
        return found

    def categories(self) -> set[str]:
        return {p.category for p in self._products.values() if p.category}

    def search(
        self, query: CatalogQuery, lang: Lang, *, exclude: Iterable[str] = (), limit: int = 3
    ) -> list[Product]:
        """In-stock products that meet every constraint, best match first."""
        skip = set(exclude)
        out: list[Product] = []
        for product in self._ranked(query.text, lang):
            if product.sku in skip or not product.in_stock or not matches(product, query):
                continue
            skip.add(product.sku)
            out.append(product)
            if len(out) == limit:
                break
        return out

    def recommend(
        self,
        lang: Lang,
        bought: list[Product],
        query: CatalogQuery | None,
        complements: dict[str, list[str]],
        *,
        limit: int = 3,
    ) -> list[Suggestion]:
        """Suggestions for a customer: never something they bought, never out of stock.

        With a request ("something for running under 300") the request decides and the
        history only breaks ties; without one, items that complement what they bought
        come first, then similar ones.
        """
        owned = {p.sku for p in bought}
        owned_categories = {p.category for p in bought}
        wanted = {c for p in bought for c in complements.get(p.category, [])} - owned_categories
        if query is not None and query.text.strip():
            seed = query.text
        else:
            seed = " ".join(p.name for p in bought) or ("推荐" if lang == "zh" else "popular")
        ranked = [
            p
            for p in self._ranked(seed, lang)
            if p.sku not in owned and p.in_stock and (query is None or matches(p, query))
        ]
        if query is None or not query.text.strip():
            if wanted:  # complements of what they own first, keeping retrieval order within
                extra = [p for p in self._all(lang) if p.category in wanted and p not in ranked]
                ranked += [p for p in extra if p.sku not in owned and p.in_stock]
            ranked.sort(
                key=lambda p: (
                    0 if p.category in wanted else 1 if p.category in owned_categories else 2
                )
            )
        out: list[Suggestion] = []
        seen: set[str] = set()
        for p in ranked:
            if p.sku in seen:
                continue
            seen.add(p.sku)
            why = (
                "complement"
                if p.category in wanted
                else "similar"
                if p.category in owned_categories
                else "match"
            )
            out.append(Suggestion(p, why))
            if len(out) == limit:
                break
        return out

    def _all(self, lang: Lang) -> list[Product]:
        return sorted(
            (p for (_, language), p in self._products.items() if language == lang),
            key=lambda p: p.sku,
        )

    def _ranked(self, text: str, lang: Lang) -> list[Product]:
        """Products in retrieval order for `text`; the rest of the catalogue after them."""
        retrieval = self._retriever.retrieve(
            text, {"kind": "product", "lang": lang}, k=self._candidates
        )
        products = self._products
        order: list[Product] = []
        seen: set[str] = set()
        for passage in retrieval.passages:
            product = product_from_chunk(passage.chunk)
            if product is not None and product.sku not in seen:
                seen.add(product.sku)
                order.append(products.get((product.sku, lang), product))
        order += [p for p in self._all(lang) if p.sku not in seen]
        return order
