"""Constraints read from a shopper's request, in English and Chinese."""

import pytest

from app.tools.catalog_query import CatalogQuery, matches, parse_catalog_query
from app.tools.records import Product

KNOWN = {"headphones", "earbuds", "speakers", "tea", "kitchen", "running"}


@pytest.mark.parametrize(
    ("message", "low", "high", "categories", "attributes"),
    [
        ("wireless headphones under 300 yuan", None, 300, {"headphones"}, {"wireless": True}),
        ("300元以内适合跑步的耳机", None, 300, {"headphones", "earbuds"}, {"for_running": True}),
        ("speakers between 100 and 500", 100, 500, {"speakers"}, {}),
        ("100-300元的茶", 100, 300, {"tea"}, {}),
        ("降噪耳机，预算1k", None, 1000, {"headphones", "earbuds"}, {"noise_cancelling": True}),
        ("有线耳机", None, None, {"headphones", "earbuds"}, {"wireless": False}),
        ("over 1k speakers", 1000, None, {"speakers"}, {}),
        # Numbers that are not prices stay out of the bounds.
        ("headphones with a battery of up to 40 hours", None, None, {"headphones"}, {}),
        ("can I return it within 30 days?", None, None, set(), {}),
    ],
)
def test_requests_are_parsed(
    message: str,
    low: float | None,
    high: float | None,
    categories: set[str],
    attributes: dict[str, bool],
) -> None:
    query = parse_catalog_query(message, KNOWN)
    assert (query.min_price, query.max_price) == (low, high)
    assert query.categories == categories
    assert dict(query.attributes) == attributes


def test_categories_the_catalogue_lacks_are_dropped() -> None:
    assert parse_catalog_query("a backpack for my laptop", KNOWN).categories == frozenset()


def _product(price: float, category: str, **attributes: object) -> Product:
    return Product("SKU", "en", "name", category, price, "CNY", 1, "doc", dict(attributes))


def test_matches_applies_every_constraint() -> None:
    query = CatalogQuery(
        "x", max_price=300, categories=frozenset({"earbuds"}), attributes={"wireless": True}
    )
    assert matches(_product(249, "earbuds", wireless=True), query)
    assert not matches(_product(349, "earbuds", wireless=True), query)
    assert not matches(_product(249, "headphones", wireless=True), query)
    assert not matches(_product(249, "earbuds", wireless=False), query)
    assert not matches(_product(249, "earbuds"), query)
    waterproof = CatalogQuery("x", attributes={"waterproof": True})
    assert matches(_product(1, "speakers", waterproof_rating="IP67"), waterproof)
    assert matches(_product(1, "backpacks", water_resistant=True), waterproof)
    assert not matches(_product(1, "lamps"), waterproof)
