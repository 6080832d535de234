"""Who the customer is: signed customer tokens, and the claims a message makes.

Two ways to be verified:

- The shop's site signs a token for its logged-in customer (`issue_token`, HMAC-SHA256
  with the shared secret `tools.customer_token_secret`) and passes it in the
  `X-Customer-Token` header; `verify_token` gives back the customer id.
- In chat, the customer names an order and the email or phone on it; `extract_claims`
  reads those from the message and `contact_matches` compares them with the customer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from dataclasses import dataclass

from app.tools.records import Customer

DEFAULT_ORDER_ID_PATTERN = r"(?<![A-Za-z0-9])[A-Za-z]{2}-\d{4}-\d{6}(?!\d)"
"""Order numbers like LL-2026-100001; lookarounds instead of \\b so that Chinese text
around the number ("订单号LL-2026-100001的") does not hide it."""

DEFAULT_TOKEN_TTL_S = 24 * 3600
MIN_PHONE_DIGITS = 8
MAX_COUNTRY_CODE_DIGITS = 4  # "86", "65", or with the "00" international prefix

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_PHONE = re.compile(r"(?<![\dA-Za-z-])\+?\d[\d\s()-]{6,18}\d(?!\d)")
_DATE = re.compile(r"^\d{4}[-/]\d{1,2}[-/]\d{1,2}$")


class InvalidToken(ValueError):
    """A customer token that is malformed, forged or expired."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(payload: str, secret: str) -> str:
    return _b64(hmac.new(secret.encode("utf-8"), payload.encode("ascii"), hashlib.sha256).digest())


def issue_token(
    customer_id: str, secret: str, *, ttl_s: int = DEFAULT_TOKEN_TTL_S, now: float | None = None
) -> str:
    """`b64(customer_id).expiry.b64(signature)`: what the shop's site sends for its customer."""
    if not secret:
        raise ValueError("a customer token needs a non-empty secret")
    expires = int((time.time() if now is None else now) + ttl_s)
    payload = f"{_b64(customer_id.encode('utf-8'))}.{expires}"
    return f"{payload}.{_sign(payload, secret)}"


# What `issue_token` makes: base64url, digits and dots.
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_=.-]{1,512}")


def verify_token(token: str, secret: str, *, now: float | None = None) -> str:
    """The customer id the token names; `InvalidToken` says why it was rejected."""
    token = token.strip()
    if not _TOKEN_SHAPE.fullmatch(token):  # the HMAC below needs ASCII; headers carry any byte
        raise InvalidToken("malformed")
    parts = token.split(".")
    if len(parts) != 3 or not parts[1].isdigit():
        raise InvalidToken("malformed")
    payload = f"{parts[0]}.{parts[1]}"
    if not secret or not hmac.compare_digest(_sign(payload, secret), parts[2]):
        raise InvalidToken("bad signature")
    if int(parts[1]) < (time.time() if now is None else now):
        raise InvalidToken("expired")
    try:
        customer_id = _unb64(parts[0]).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise InvalidToken("malformed") from None
    if not customer_id:
        raise InvalidToken("malformed")
    return customer_id


@dataclass(frozen=True)
class Claims:
    """What a message says about who is asking; nothing here is verified yet."""

    order_id: str | None = None
    email: str | None = None
    phone: str | None = None

    @property
    def empty(self) -> bool:
        return self.order_id is None and self.email is None and self.phone is None


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def extract_claims(message: str, order_id_pattern: str = DEFAULT_ORDER_ID_PATTERN) -> Claims:
    """The order number, email and phone number a message mentions (first of each).

    Order numbers and emails are cut out before looking for a phone number, so the
    digits of "LL-2026-100001" or a date are never read as one.
    """
    rest = message
    order = re.search(order_id_pattern, rest)
    order_id = order.group(0).strip().upper() if order else None
    if order:
        rest = re.sub(order_id_pattern, " ", rest)
    email_match = _EMAIL.search(rest)
    email = email_match.group(0).lower() if email_match else None
    rest = _EMAIL.sub(" ", rest)
    phone = None
    for match in _PHONE.finditer(rest):
        candidate = match.group(0).strip()
        if _DATE.match(candidate) or len(_digits(candidate)) < MIN_PHONE_DIGITS:
            continue
        phone = candidate
        break
    return Claims(order_id=order_id, email=email, phone=phone)


def contact_matches(customer: Customer, claims: Claims) -> bool:
    """Whether the claimed email or phone is the customer's.

    Emails compare case-insensitively; phones by their digits, where one may leave out
    the country code ("13800000001" is "+86 138 0000 0001") but nothing more: the last
    eight digits of someone's number are not their number.
    """
    if claims.email and claims.email.strip().casefold() == customer.email.strip().casefold():
        return True
    if claims.phone:
        said, known = _digits(claims.phone), _digits(customer.phone)
        if len(said) >= MIN_PHONE_DIGITS and len(known) >= MIN_PHONE_DIGITS:
            short, long = sorted((said, known), key=len)
            return long.endswith(short) and len(long) - len(short) <= MAX_COUNTRY_CODE_DIGITS
    return False
