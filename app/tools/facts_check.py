"""Does the model's phrasing of an order say only what the order's facts say?

The model rewrites the order-status template into friendlier words; before that text
reaches a customer it must pass these checks, else the template is sent:

- every id it writes (order number, tracking number: anything with letters and digits)
  appears verbatim in the facts, and the required ones are there;
- every other number is one of the facts' numbers (899.00 = 899; 2026-09-18 gives 2026,
  9 and 18): a substring match would let any digit through;
- a date written with a month name or in Chinese (September 18, 9月18日) is one of the
  facts' dates;
- it claims no status the order does not have ("has been delivered" for a parcel on its
  way, "cancelled" for a delivered order).
"""

from __future__ import annotations

import re

_ID = re.compile(r"\b(?=[\w-]*[A-Za-z])(?=[\w-]*\d)[A-Za-z0-9][\w-]*[A-Za-z0-9]\b")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")
_MONTHS = {
    name: n
    for n, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ],
        1,
    )
    for name in names
}
_MONTH_WORDS = "|".join(sorted(_MONTHS, key=len, reverse=True))
_MONTH_DAY = re.compile(rf"\b({_MONTH_WORDS})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?\b", re.I)
_DAY_MONTH = re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_MONTH_WORDS})\b", re.I)
_ZH_DATE = re.compile(r"(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]")

# What each status may be described as; a delivered order was also shipped.
_CLAIMS = {
    "delivered": re.compile(
        r"\b(has been|was|got|were) delivered\b|(?<!be )\bdelivered on\b|已签收|已送达|签收了", re.I
    ),
    "shipped": re.compile(
        r"\b(has|have|was|been) (been )?shipped\b|\bon (its|the) way\b|\bin transit\b"
        r"|已发货|运输中|在路上",
        re.I,
    ),
    "processing": re.compile(
        r"\bprocessing\b|\bbeing prepared\b|\bnot (yet )?(been )?shipped\b"
        r"|处理中|尚未发货|还没发货",
        re.I,
    ),
    "cancelled": re.compile(r"\bcancell?ed\b|已取消", re.I),
}
_ALLOWED = {
    "delivered": {"delivered", "shipped"},
    "shipped": {"shipped"},
    "processing": {"processing"},
    "cancelled": {"cancelled"},
}


def _norm(number: str) -> str:
    if "." in number:
        number = number.rstrip("0").rstrip(".")
    return number.lstrip("0") or "0"


def _dates(facts: str) -> set[tuple[int, int]]:
    return {(int(m), int(d)) for _, m, d in _ISO_DATE.findall(facts)}


def faithful(text: str, facts: str, must_contain: list[str], status: str | None = None) -> bool:
    """True when `text` states nothing beyond `facts` (see the module docstring)."""
    if any(item not in text for item in must_contain):
        return False
    ids = _ID.findall(text)
    if any(i not in facts for i in ids):
        return False
    rest = _ID.sub(" ", text)
    known = {_norm(n) for n in _NUMBER.findall(facts)}
    if any(_norm(n) not in known for n in _NUMBER.findall(rest)):
        return False
    dates = _dates(facts)
    written = [(_MONTHS[m.lower()], int(d)) for m, d in _MONTH_DAY.findall(rest)]
    written += [(_MONTHS[m.lower()], int(d)) for d, m in _DAY_MONTH.findall(rest)]
    written += [(int(m), int(d)) for m, d in _ZH_DATE.findall(rest)]
    if any(w not in dates for w in written):
        return False
    if status is not None:
        claimed = {name for name, pattern in _CLAIMS.items() if pattern.search(text)}
        if claimed - _ALLOWED.get(status, {status}):
            return False
    return True
