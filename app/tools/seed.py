"""Load orders from a JSONL file (the format of `data/sample_shop/orders.jsonl`).

One order a line, with its customer embedded; see `data/sample_shop/README.md`. The whole
file is parsed and checked before anything is written, then written in one transaction:
a file with a bad line changes nothing, and the error names `file:line: reason` so it can
be fixed. Loading a file again replaces its orders rather than duplicating them.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any, cast

from app.tools.records import Customer, Order, OrderLine, OrderStatus, Shipment
from app.tools.sql_orders import SqlOrderRepository, check_order

ORDER_KEYS = {"order_id", "customer", "status", "placed_at", "lines"}
OPTIONAL_ORDER_KEYS = {
    "currency",
    "carrier",
    "tracking_number",
    "shipped_at",
    "expected_delivery",
    "delivered_at",
}
CUSTOMER_KEYS = {"customer_id", "name", "email", "phone"}
LINE_KEYS = {"sku", "qty", "price"}
OPTIONAL_LINE_KEYS = {"opened"}
DEFAULT_CURRENCY = "CNY"
NO_SHIPMENT = Shipment(carrier=None, tracking_number=None)
"""What a line without carrier, tracking number or shipping dates describes."""


def load_orders(path: Path, repo: SqlOrderRepository) -> int:
    """Upsert every order in `path` (and its customer); the number of orders loaded.

    ValueError `file:line: reason` for the first bad line, with nothing written. A
    customer on several lines keeps the details of the last one.
    """
    pairs = read_orders(path)
    return repo.upsert_orders(pairs)


def read_orders(path: Path) -> list[tuple[Order, Customer]]:
    """Every order in `path` with its customer, checked; blank lines are skipped."""
    try:
        content = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    pairs: list[tuple[Order, Customer]] = []
    seen: dict[str, int] = {}
    # split("\n"), not splitlines(): JSON strings may hold U+2028, which is no line end.
    for number, text in enumerate(content.split("\n"), start=1):
        if not text.strip():
            continue
        try:
            order, customer = parse_order(text)
            check_order(order, customer)
            first = seen.setdefault(order.order_id.upper(), number)
            if first != number:
                raise ValueError(f"order {order.order_id} is already on line {first}")
        except ValueError as exc:
            raise ValueError(f"{path}:{number}: {exc}") from exc
        pairs.append((order, customer))
    return pairs


def parse_order(text: str) -> tuple[Order, Customer]:
    """One line of the file as records; ValueError for bad JSON, keys or types.

    Unknown keys are refused, so a misspelt optional field is not silently ignored.
    """
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg} (column {exc.colno})") from exc
    row = _object(raw, "the line", ORDER_KEYS, OPTIONAL_ORDER_KEYS)
    person = _object(row["customer"], "customer", CUSTOMER_KEYS, set())
    customer = Customer(
        customer_id=_text(person, "customer_id"),
        name=_text(person, "name"),
        email=_text(person, "email"),
        phone=_text(person, "phone"),
    )
    raw_lines = row["lines"]
    if not isinstance(raw_lines, list):
        raise ValueError("lines must be a list")
    shipment = Shipment(
        carrier=_maybe_text(row, "carrier"),
        tracking_number=_maybe_text(row, "tracking_number"),
        shipped_at=_maybe_date(row, "shipped_at"),
        expected_delivery=_maybe_date(row, "expected_delivery"),
        delivered_at=_maybe_date(row, "delivered_at"),
    )
    order = Order(
        order_id=_text(row, "order_id"),
        customer_id=customer.customer_id,
        status=cast(OrderStatus, _text(row, "status")),  # check_order checks it
        placed_at=_date(row, "placed_at"),
        lines=tuple(_line(item, n) for n, item in enumerate(raw_lines, start=1)),
        shipment=shipment if shipment != NO_SHIPMENT else None,
        currency=_maybe_text(row, "currency") or DEFAULT_CURRENCY,
    )
    return order, customer


def _line(raw: object, n: int) -> OrderLine:
    item = _object(raw, f"line {n}", LINE_KEYS, OPTIONAL_LINE_KEYS)
    qty, price, opened = item["qty"], item["price"], item.get("opened", False)
    # bool is an int in Python; `true` is no quantity.
    if not isinstance(qty, int) or isinstance(qty, bool):
        raise ValueError(f"line {n}: qty must be an integer, not {qty!r}")
    if not isinstance(price, int | float) or isinstance(price, bool):
        raise ValueError(f"line {n}: price must be a number, not {price!r}")
    if not isinstance(opened, bool):
        raise ValueError(f"line {n}: opened must be true or false, not {opened!r}")
    return OrderLine(sku=_text(item, "sku"), qty=qty, price=float(price), opened=opened)


def _object(raw: object, what: str, required: set[str], optional: set[str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ValueError(f"{what} must be a JSON object")
    missing = sorted(required - raw.keys())
    if missing:
        raise ValueError(f"{what} lacks {', '.join(missing)}")
    unknown = sorted(raw.keys() - required - optional)
    if unknown:
        raise ValueError(f"{what} has unknown keys {', '.join(unknown)}")
    return raw


def _text(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string, not {value!r}")
    return value


def _maybe_text(row: dict[str, Any], key: str) -> str | None:
    """The string, or None when the key is missing or null."""
    return None if row.get(key) is None else _text(row, key)


def _date(row: dict[str, Any], key: str) -> date:
    text = _text(row, key)
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{key} must be a date YYYY-MM-DD, not {text!r}") from exc


def _maybe_date(row: dict[str, Any], key: str) -> date | None:
    """The date, or None when the key is missing or null."""
    return None if row.get(key) is None else _date(row, key)
