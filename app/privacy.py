"""Personal data out of log lines: `mask_pii` puts a placeholder where a customer is identified.

Customers type their email, phone number, order number, card number and address into
the chat. The database keeps them (the person who takes over a hand-off needs them),
but logs are copied, shipped and kept longer than conversations, so every log line is
masked (`app/logs.py` does it on every handler).

The patterns lean towards masking: a number that merely looks like a phone or card
number is masked too. What must survive is what makes logs useful (prices, SKUs,
dates and times, durations, ids, status codes, addresses of the server), and the unit
tests hold both sides. Digit patterns use ASCII lookarounds rather than `\\b`: in
Python every Chinese character is a word character, so "电话13800138000" has no word
boundary before the number.

Not covered: names, bare digit runs of 8 to 12 digits with no phone-like grouping and
no "phone"/"电话" before them (a Singapore "81234567"), and city or district names
without a street number ("北京市朝阳区").
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import unquote_plus

from app.tools.identity import DEFAULT_ORDER_ID_PATTERN

EMAIL, PHONE, ORDER, CARD, ADDRESS, TRACKING = (
    "[email]",
    "[phone]",
    "[order]",
    "[card]",
    "[address]",
    "[tracking]",
)

MIN_PHONE_DIGITS = 8
MAX_PHONE_DIGITS = 15  # E.164
MIN_CONTEXT_PHONE_DIGITS = 6  # after "phone"/"电话", a shorter number is still a number

# A number starts where no letter, digit or "+" precedes it (and not after "3." in "3.14…")
# and ends where no letter or digit follows (nor ".5").
_S = r"(?<![\dA-Za-z+])(?<!\d\.)"
_E = r"(?![\dA-Za-z])(?!\.\d)"

_ANYTHING_TO_MASK = re.compile(r"[\d@\uff20]|%40")
_ESCAPE = re.compile(r"(\\[nrt])")
"""A repr'd newline ("\\n13800138000") would hide a number behind the letter n."""
_TOKEN = re.compile(r"\S+")
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+(?:@|\uff20|%40)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_TRACKING = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{10,12}(?![A-Za-z0-9])")
"""Carrier tracking numbers (SF0000000001): the carrier shows the delivery address."""

_CN_MOBILE = re.compile(
    _S + r"(?:(?:\+|00)\s?86[\s-]?|\(\+?86\)\s?)?1[3-9]\d(?:[\s-]?\d{4}){2}" + _E
)
_INTERNATIONAL = re.compile(_S + r"(?:\+|00)\d{1,3}(?:[\s.-]?\(?\d{1,5}\)?){1,6}" + _E)
_CARD = re.compile(
    _S
    + r"(?:\d{4}([ -]?)\d{4}\1\d{4}(?:\1\d{1,4}){1,2}"  # 4-4-4-4(-3), grouped alike
    + r"|\d{4}[ -]?\d{6}[ -]?\d{4,5}"  # 4-6-5 (Amex)
    + r"|\d{13,19})"
    + _E
)
_LANDLINE = re.compile(
    _S + r"(?:\(0\d{2,4}\)|0\d{2,4})[\s-]?(?:\d{3,4}[\s-]?\d{4}|\d{6})" + _E
)  # 010-12345678, 0755 1234 5678, 020 7946 0958, 07911 123456: the leading 0 is the trunk prefix
_NORTH_AMERICAN = re.compile(
    _S + r"(?:1[\s.-]?)?(?:\(\d{3}\)|\d{3})[\s.-]?\d{3}[\s.-]\d{4}" + _E
)  # 415-555-0132, (415) 555-0132; an ungrouped 10-digit run may be a Unix time and stays
_PHONE_AFTER_WORD = re.compile(
    r"(?:\b(?:phone|tel|telephone|mobile|cell|whatsapp)\b|电话|手机|联系方式|致电|打给我)"
    r"[^\d\n]{0,16}?(\+?\d[\d\s().-]{4,18}\d)" + _E,
    re.IGNORECASE,
)

_STREET = (
    r"(?:(?i:street|road|avenue|boulevard|parkway|highway|lane|terrace|crescent)"
    # Short or common words only when capitalised: "2 red shoes way too small" is no address.
    r"|St|Rd|Ave|Av|Blvd|Pkwy|Hwy|Ln|Dr|Drive|Way|Place|Pl|Court|Ct|Close|Square|Sq|Circle"
    r"|Row|Walk|Gardens|Mews)\b\.?"
)
_EN_ADDRESS = re.compile(
    r"(?<![\w-])\d{1,5}[A-Za-z]?(?:[-/]\d{1,5}[A-Za-z]?)?,?\s+"
    r"(?:(?:\d{1,3}(?:st|nd|rd|th)|[A-Za-z][\w'.-]*)\s+){0,4}?"
    + _STREET
    + r"(?:,?\s*(?:Apt|Apartment|Suite|Ste|Unit|Flat|Floor|Fl|#)\.?\s*#?[\dA-Za-z-]+)?"
    r"(?:,\s*[A-Z][a-z]+(?:\s+[A-Z][a-z]+){0,2}){0,2}"  # , Mountain View, California
    r"(?:,?\s+[A-Z]{2}\s+\d{5}(?:-\d{4})?)?"  # CA 94043
    r"(?:,?\s+[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2})?"  # NW1 6XE
)

# Chinese: runs of administrative units, roads, buildings and numbered units. Words such
# as 是/的/在/到 never belong to a place name, so "我的地址是上海市…" starts at 上海.
_NOT_IN_PLACE_NAMES = "是的在到寄送址我你他她请把给了吗呢啊吧从往"


def _han_class(excluded: str) -> str:
    """A character class of the CJK block without `excluded` (one class: fast to match)."""
    ranges, start = [], 0x4E00
    for code in sorted(map(ord, excluded)):
        if start < code:
            ranges.append(f"{chr(start)}-{chr(code - 1)}")
        start = code + 1
    ranges.append(f"{chr(start)}-\u9fff")
    return "[" + "".join(ranges) + "]"


_HAN = _han_class(_NOT_IN_PLACE_NAMES)
_ZH_NUMBERED = r"\d+(?:[-\uff0d]\d+)*\s*(?:号楼|号院|号|號|栋|幢|座|单元|室|楼|层|弄|F)"
_ZH_SEGMENT = (
    rf"(?:{_HAN}{{1,7}}?(?:特别行政区|自治区|自治州|省|市|区|县|旗|镇|乡|村|街道)"
    rf"|{_HAN}{{1,10}}?(?:大道|大街|路|街|道|巷|弄|胡同)"
    rf"|(?:{_HAN}|[A-Za-z]){{2,12}}?(?:大厦|广场|中心|花园|小区|公寓|新村|苑|园|城)"
    rf"|{_ZH_NUMBERED})"
)
_ZH_ADDRESS = re.compile(rf"{_ZH_SEGMENT}(?:\s*{_ZH_SEGMENT})+(?:[-\uff0d]?\d+(?![\dA-Za-z]))?")
"""…3号楼2单元501: a room number often ends the address without 室."""
_ZH_NUMBER = re.compile(_ZH_NUMBERED)


@lru_cache(maxsize=8)
def _order_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _phone_if_long(match: re.Match[str]) -> str:
    digits = sum(c.isdigit() for c in match.group(0))
    return PHONE if MIN_PHONE_DIGITS <= digits <= MAX_PHONE_DIGITS else match.group(0)


def _phone_after_word(match: re.Match[str]) -> str:
    number = match.group(1)
    if sum(c.isdigit() for c in number) < MIN_CONTEXT_PHONE_DIGITS:
        return match.group(0)
    start, end = match.span(1)
    whole = match.group(0)
    base = match.start(0)
    return whole[: start - base] + PHONE + whole[end - base :]


def _zh_address(match: re.Match[str]) -> str:
    # A district and a road without a number ("超市渠道") is not an address; a numbered unit is.
    return ADDRESS if _ZH_NUMBER.search(match.group(0)) else match.group(0)


def _mask_plain(text: str, order_id_pattern: str) -> str:
    text = _EMAIL.sub(EMAIL, text)
    text = _order_regex(order_id_pattern).sub(ORDER, text)
    text = _TRACKING.sub(TRACKING, text)
    text = _CN_MOBILE.sub(PHONE, text)
    text = _INTERNATIONAL.sub(_phone_if_long, text)
    text = _CARD.sub(CARD, text)  # after phones with a country code, before the other phones
    text = _LANDLINE.sub(PHONE, text)
    text = _NORTH_AMERICAN.sub(PHONE, text)
    text = _PHONE_AFTER_WORD.sub(_phone_after_word, text)
    text = _EN_ADDRESS.sub(ADDRESS, text)
    return _ZH_ADDRESS.sub(_zh_address, text)


def _mask_piece(text: str, order_id_pattern: str) -> str:
    def decoded(match: re.Match[str]) -> str:
        # Query strings in access logs: alice%40example.com, phone=%2B86+138+0000+0001.
        token = match.group(0)
        if not (_PERCENT_ESCAPE.search(token) or ("=" in token and "+" in token)):
            return token
        plain = unquote_plus(token)
        masked = _mask_plain(plain, order_id_pattern)
        return masked if masked != plain else token  # decode only what had something to hide

    if "%" in text or "+" in text:
        text = _TOKEN.sub(decoded, text)
    return _mask_plain(text, order_id_pattern)


def mask_pii(text: str, *, order_id_pattern: str = DEFAULT_ORDER_ID_PATTERN) -> str:
    """`text` with emails, phone, order, card and tracking numbers and street addresses
    replaced by `[email]`, `[phone]`, `[order]`, `[card]`, `[tracking]`, `[address]`.

    Masking a masked text changes nothing. `order_id_pattern` is the shop's
    (`tools.order_id_pattern`).
    """
    if not _ANYTHING_TO_MASK.search(text):  # every pattern needs a digit or an @
        return text
    pieces = _ESCAPE.split(text)
    return "".join(
        piece if i % 2 else _mask_piece(piece, order_id_pattern) for i, piece in enumerate(pieces)
    )
