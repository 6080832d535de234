"""What a shopper asks the catalogue for: free text plus the hard constraints in it.

"wireless headphones under 300 yuan" → categories {headphones, earbuds}, attribute
wireless, max price 300. "300元以内适合跑步的耳机" → the same categories, attribute
for_running, max price 300. Words are matched from small bilingual lists; what they do
not catch is left to ranking by retrieval over the free text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.tools.records import Product

# A number that is not a quantity of something else ("up to 40 hours", "within 7 days").
_NUM = (
    r"(\d+(?:\.\d+)?)\s*(?:k\b)?(?!\d|\.\d|\s*(?:hours?|hrs?|h\b|days?|weeks?|mins?|minutes?|g\b|kg|"
    r"ml|l\b|w\b|mah|m\b|%|小时|天|周|分钟|克|毫升|升|瓦|米))"
)
_CURRENCY = r"\s*(?:元|块钱|块|rmb|cny|yuan|¥|￥|dollars?|\$)?"

# (pattern, which bound): the first group is the amount.
_MAX_PRICE = [
    r"(?:under|below|less than|cheaper than|up to|at most|no more than|max(?:imum)?|within|<=?)"
    rf"\s*[¥￥$]?\s*{_NUM}",
    rf"{_NUM}{_CURRENCY}\s*(?:or less|or under|or cheaper|max)\b",
    rf"(?:不超过|不高于|低于|少于|小于|不到|最多|预算)\s*[¥￥]?\s*{_NUM}",
    rf"{_NUM}{_CURRENCY}\s*(?:以下|以内|之内|内)",
]
_MIN_PRICE = [
    r"(?:over|above|more than|at least|from|min(?:imum)?|>=?)"
    rf"\s*[¥￥$]?\s*{_NUM}(?!\s*(?:-|to|到|至)\s*\d)",
    rf"(?:高于|超过|不低于|至少|起码)\s*[¥￥]?\s*{_NUM}",
    rf"{_NUM}{_CURRENCY}\s*(?:以上|起)",
]
_RANGE = (
    rf"(?:between\s*)?[¥￥$]?\s*{_NUM}{_CURRENCY}"
    rf"\s*(?:-|~|to|and|到|至)\s*[¥￥$]?\s*{_NUM}{_CURRENCY}"
)

# Words → catalogue categories (only categories the catalogue has are kept).
_CATEGORY_WORDS: list[tuple[str, frozenset[str]]] = [
    (r"\bheadphones?\b|\bheadsets?\b|over-ear|on-ear|头戴|耳罩", frozenset({"headphones"})),
    (r"\bear-?buds?\b|\bin-ear\b|\btrue wireless\b|入耳|耳塞|真无线", frozenset({"earbuds"})),
    (r"\bearphones?\b|耳机", frozenset({"headphones", "earbuds"})),
    (r"\bspeakers?\b|音箱|音响", frozenset({"speakers"})),
    (
        r"smart home|smart plug|smart bulb|security camera|智能家居|智能插座|智能灯泡|摄像头",
        frozenset({"smart-home"}),
    ),
    (
        r"\bkitchen\b|\bkettle\b|\bblender\b|air fryer|厨房|水壶|搅拌机|榨汁|空气炸锅",
        frozenset({"kitchen"}),
    ),
    (
        r"\bappliances?\b|espresso|coffee machine|air purifier|robot vacuum|\bvacuum\b|"
        r"家电|咖啡机|净化器|扫地|扫拖",
        frozenset({"large-appliance"}),
    ),
    (r"\btea\b|茶", frozenset({"tea"})),
    (r"\blamps?\b|reading light|台灯|阅读灯", frozenset({"lamps"})),
    (r"\bbackpacks?\b|\bbags?\b|双肩包|背包", frozenset({"backpacks"})),
    (
        r"\bchargers?\b|power bank|\bcables?\b|phone accessor\w*|充电器|充电宝|数据线|手机配件",
        frozenset({"phone-accessories"}),
    ),
    (
        r"running belt|running watch|\bgps watch\b|跑步腰包|跑步手表|运动手表",
        frozenset({"running"}),
    ),
]

# Words → attributes a product must have.
_ATTRIBUTE_WORDS: list[tuple[str, str, bool]] = [
    (r"\bwired\b|有线", "wireless", False),
    (r"\bwireless\b|\bbluetooth\b|\bcordless\b|无线|蓝牙", "wireless", True),
    (r"noise[- ]cancel\w*|\banc\b|降噪", "noise_cancelling", True),
    (
        r"\brunning\b|\bjogging\b|\bsports?\b|\bworkouts?\b|\bgym\b|跑步|运动|健身",
        "for_running",
        True,
    ),
    (r"\bwaterproof\b|water[- ]resistant|防水", "waterproof", True),
]


@dataclass(frozen=True)
class CatalogQuery:
    text: str
    max_price: float | None = None
    min_price: float | None = None
    categories: frozenset[str] = frozenset()
    attributes: Mapping[str, bool] = field(default_factory=dict)


def _amount(raw: str, whole: str) -> float:
    value = float(raw)
    return value * 1000 if re.search(rf"{re.escape(raw)}\s*k\b", whole, re.IGNORECASE) else value


def _prices(text: str) -> tuple[float | None, float | None]:
    low = high = None
    span = re.search(_RANGE, text, re.IGNORECASE)
    if span and (re.search(r"\bbetween\b|元|块|yuan|rmb|cny|[¥￥$]", span.group(0), re.IGNORECASE)):
        a, b = _amount(span.group(1), span.group(0)), _amount(span.group(2), span.group(0))
        return min(a, b), max(a, b)
    for pattern in _MAX_PRICE:
        if found := re.search(pattern, text, re.IGNORECASE):
            high = _amount(found.group(1), found.group(0))
            break
    for pattern in _MIN_PRICE:
        if found := re.search(pattern, text, re.IGNORECASE):
            low = _amount(found.group(1), found.group(0))
            break
    return low, high


def parse_catalog_query(message: str, known_categories: set[str] | frozenset[str]) -> CatalogQuery:
    text = message.strip()
    low, high = _prices(text)
    categories: set[str] = set()
    for pattern, cats in _CATEGORY_WORDS:
        if re.search(pattern, text, re.IGNORECASE):
            categories |= cats
    if known_categories:
        categories &= set(known_categories)
    attributes: dict[str, bool] = {}
    for pattern, name, value in _ATTRIBUTE_WORDS:
        if name not in attributes and re.search(pattern, text, re.IGNORECASE):
            attributes[name] = value
    return CatalogQuery(text, high, low, frozenset(categories), attributes)


def _has(product: Product, name: str) -> bool:
    attrs: dict[str, Any] = product.attributes
    if name == "waterproof":
        return bool(attrs.get("waterproof_rating")) or _truthy(attrs.get("water_resistant"))
    return _truthy(attrs.get(name))


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "no", "0")
    return bool(value)


def matches(product: Product, query: CatalogQuery) -> bool:
    """Whether the product meets every hard constraint of the query."""
    if query.max_price is not None and product.price > query.max_price:
        return False
    if query.min_price is not None and product.price < query.min_price:
        return False
    if query.categories and product.category not in query.categories:
        return False
    return all(_has(product, name) == wanted for name, wanted in query.attributes.items())
