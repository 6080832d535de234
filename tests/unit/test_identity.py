"""Customer tokens and the claims a message makes (order number, email, phone)."""

import pytest

from app.tools.identity import (
    DEFAULT_ORDER_ID_PATTERN,
    Claims,
    InvalidToken,
    contact_matches,
    extract_claims,
    issue_token,
    verify_token,
)
from app.tools.records import Customer

SECRET = "s3cret-for-tests"
NOW = 1_800_000_000.0
WANG = Customer("C001", "王芳", "wang.fang@example.com", "+86 138 0000 0001")


def test_a_token_names_its_customer_until_it_expires() -> None:
    token = issue_token("C001", SECRET, ttl_s=60, now=NOW)
    assert verify_token(token, SECRET, now=NOW + 59) == "C001"
    with pytest.raises(InvalidToken, match="expired"):
        verify_token(token, SECRET, now=NOW + 61)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t.replace(t.split(".")[0], issue_token("C002", SECRET, now=NOW).split(".")[0]),
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),
        lambda t: "not-a-token",
        lambda t: t.rsplit(".", 1)[0],
    ],
)
def test_a_forged_or_broken_token_is_rejected(tamper) -> None:  # type: ignore[no-untyped-def]
    token = issue_token("C001", SECRET, now=NOW)
    with pytest.raises(InvalidToken):
        verify_token(tamper(token), SECRET, now=NOW)


def test_a_token_signed_with_another_secret_is_rejected() -> None:
    with pytest.raises(InvalidToken, match="signature"):
        verify_token(issue_token("C001", "other", now=NOW), SECRET, now=NOW)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "order LL-2026-100001, email Wang.Fang@Example.com",
            Claims("LL-2026-100001", "wang.fang@example.com"),
        ),
        (
            "我的订单号是LL-2026-100001，手机13800000001",
            Claims("LL-2026-100001", None, "13800000001"),
        ),
        (
            "订单ll-2026-100002的邮箱是wang.fang@example.com",
            Claims("LL-2026-100002", "wang.fang@example.com"),
        ),
        ("phone +65 8000 0005, I ordered on 2026-10-12", Claims(None, None, "+65 8000 0005")),
        ("it was order LL-2026-100001 placed 2026-10-12", Claims("LL-2026-100001")),
        ("where is my order?", Claims()),
    ],
)
def test_claims_are_read_from_english_and_chinese(message: str, expected: Claims) -> None:
    assert extract_claims(message, DEFAULT_ORDER_ID_PATTERN) == expected


@pytest.mark.parametrize(
    ("claims", "ok"),
    [
        (Claims(email="WANG.FANG@example.com "), True),
        (Claims(phone="13800000001"), True),
        (Claims(phone="+86 138-0000-0001"), True),
        (Claims(phone="00000001"), False),  # the tail of someone's number is not enough
        (Claims(email="wang.fang@example.org"), False),
        (Claims(phone="0001"), False),
        (Claims(order_id="LL-2026-100001"), False),
    ],
)
def test_contact_matches_email_or_phone_only(claims: Claims, ok: bool) -> None:
    assert contact_matches(WANG, claims) is ok
