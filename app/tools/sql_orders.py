"""ShopDesk's own order system: `OrderRepository` over the tables of `app.db.shop_models`.

The tables sit in the conversation database, so the sample shop (and a shop without an
order system to plug in) needs nothing else. Like `ConversationStore`, every method is one
short transaction on its own session and hands back the frozen records of
`app.tools.records`, never ORM objects, so one repository is safe to share between threads.

Order ids are stored as given and matched case-insensitively (customers type them as they
like), so two ids that differ only in case are refused. The vocabularies (order and
return statuses) are checked here, on the way in, as the conversation store checks its own.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from datetime import date, datetime
from itertools import pairwise
from typing import cast, get_args

from sqlalchemy import Engine, Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from app.db.models import LABEL_LENGTH, as_utc, utcnow
from app.db.repository import NotFound
from app.db.shop_models import (
    CURRENCY_LENGTH,
    EMAIL_LENGTH,
    NAME_LENGTH,
    PHONE_LENGTH,
    CustomerRow,
    OrderLineRow,
    OrderRow,
    ReturnRequestRow,
    ShipmentRow,
)
from app.tools.records import (
    Customer,
    Order,
    OrderLine,
    OrderStatus,
    ReturnRequest,
    ReturnStatus,
    Shipment,
)

__all__ = ["NotFound", "SqlOrderRepository", "check_order", "new_return_id"]

ORDER_STATUSES: frozenset[str] = frozenset(get_args(OrderStatus))

# Crockford's base32: no I, L, O or U, so an id read out over the phone is unambiguous.
RETURN_ID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
RETURN_ID_PREFIX = "RMA-"
RETURN_ID_CHARS = 8
"""32**8, about 10**12 ids: a clash is rare, and retried."""
RETURN_ID_ATTEMPTS = 5


def new_return_id() -> str:
    """A fresh, unguessable return id such as `RMA-7F3K2Q9M`."""
    chars = (secrets.choice(RETURN_ID_ALPHABET) for _ in range(RETURN_ID_CHARS))
    return RETURN_ID_PREFIX + "".join(chars)


class SqlOrderRepository:
    """Customers, orders and return requests in the conversation database.

    `clock` (aware datetimes; naive ones are taken as UTC) and `new_id` are for tests.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], datetime] = utcnow,
        new_id: Callable[[], str] = new_return_id,
    ) -> None:
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._clock = clock
        self._new_id = new_id

    # OrderRepository

    def get_customer(self, customer_id: str) -> Customer | None:
        """The customer, or None if there is none with this id."""
        with self._sessions() as session:
            row = session.get(CustomerRow, customer_id)
            return None if row is None else _customer(row)

    def get_order(self, order_id: str) -> Order | None:
        """The order with this id (case-insensitive, surrounding spaces ignored), or None."""
        with self._sessions() as session:
            row = _find_order(session, order_id)
            return None if row is None else _order(row)

    def orders_for(self, customer_id: str) -> list[Order]:
        """The customer's orders, newest first (by date placed, then by id)."""
        stmt = (
            _select_orders()
            .where(OrderRow.customer_id == customer_id)
            .order_by(OrderRow.placed_at.desc(), OrderRow.order_id.desc())
        )
        with self._sessions() as session:
            return [_order(row) for row in session.scalars(stmt)]

    def create_return(
        self, order_id: str, customer_id: str, skus: tuple[str, ...], reason: str | None
    ) -> ReturnRequest:
        """A new return request (status `requested`) with a fresh id like `RMA-7F3K2Q9M`.

        Deciding whether the lines may be returned is the caller's job; this only refuses
        what cannot be right: NotFound for an unknown order, ValueError when the order is
        not this customer's, when `skus` is empty or names an item not in the order.
        """
        wanted = tuple(dict.fromkeys(skus))
        if not wanted:
            raise ValueError("a return needs at least one SKU")
        for _ in range(RETURN_ID_ATTEMPTS):
            try:
                with self._sessions.begin() as session:
                    order = _find_order(session, order_id)
                    if order is None:
                        raise NotFound(f"no order {order_id}")
                    _check_return(order, customer_id, wanted)
                    row = ReturnRequestRow(
                        return_id=self._new_id(),
                        order_id=order.order_id,
                        customer_id=customer_id,
                        skus=list(wanted),
                        status="requested",
                        reason=reason,
                        created_at=as_utc(self._clock()),
                    )
                    session.add(row)
            except IntegrityError:
                continue  # the id was taken; draw another
            return _return_request(row)
        raise RuntimeError(f"no free return id after {RETURN_ID_ATTEMPTS} attempts")

    def returns_for(self, order_id: str) -> list[ReturnRequest]:
        """The order's return requests, newest first; empty for an unknown order."""
        stmt = (
            select(ReturnRequestRow)
            .where(func.upper(ReturnRequestRow.order_id) == _order_key(order_id))
            .order_by(ReturnRequestRow.created_at.desc(), ReturnRequestRow.return_id.desc())
        )
        with self._sessions() as session:
            return [_return_request(row) for row in session.scalars(stmt)]

    # Loading (seeding, or a shop's nightly export)

    def upsert_customer(self, customer: Customer) -> None:
        """Insert the customer, or replace the details of the one with this id."""
        _check_customer(customer)
        with self._sessions.begin() as session:
            _put_customer(session, customer)

    def upsert_order(self, order: Order, customer: Customer) -> None:
        """Insert or replace the order (with its lines and shipment) and its customer."""
        self.upsert_orders([(order, customer)])

    def upsert_orders(self, items: Iterable[tuple[Order, Customer]]) -> int:
        """Upsert every order and its customer in one transaction; how many there were.

        Re-loading an order replaces its lines and shipment and keeps its return requests.
        Everything is checked (`check_order`) before anything is written, so a ValueError
        leaves the database as it was.
        """
        pairs = list(items)
        for order, customer in pairs:
            check_order(order, customer)
        with self._sessions.begin() as session:
            for order, customer in pairs:
                _put_customer(session, customer)
                _put_order(session, order)
                session.flush()  # later pairs of the same customer or order find these rows
        return len(pairs)


# Checks


def check_order(order: Order, customer: Customer) -> None:
    """ValueError naming the first thing wrong with `order` (placed by `customer`).

    Beyond the columns' lengths and vocabularies: at least one line, positive
    quantities, no negative price, and dates in their natural order, with a delivery
    date exactly when the order is delivered.
    """
    _check_customer(customer)
    _check_id("order_id", order.order_id)
    if order.customer_id != customer.customer_id:
        raise ValueError(
            f"order {order.order_id} is for customer {order.customer_id}, "
            f"not {customer.customer_id}"
        )
    if order.status not in ORDER_STATUSES:
        raise ValueError(f"status must be one of {sorted(ORDER_STATUSES)}, not {order.status!r}")
    _check_length("currency", order.currency, CURRENCY_LENGTH)
    if not order.lines:
        raise ValueError(f"order {order.order_id} has no lines")
    for line in order.lines:
        _check_id("sku", line.sku)
        if line.qty < 1:
            raise ValueError(f"{line.sku}: qty must be at least 1, not {line.qty}")
        if line.price < 0:
            raise ValueError(f"{line.sku}: price must not be negative, not {line.price}")
    _check_dates(order)


def _check_dates(order: Order) -> None:
    shipment = order.shipment or Shipment(carrier=None, tracking_number=None)
    _check_length("carrier", shipment.carrier, LABEL_LENGTH)
    _check_length("tracking_number", shipment.tracking_number, LABEL_LENGTH)
    if (order.status == "delivered") != (shipment.delivered_at is not None):
        raise ValueError("delivered_at must be given exactly when the status is delivered")
    ordered: list[tuple[str, date | None]] = [
        ("placed_at", order.placed_at),
        ("shipped_at", shipment.shipped_at),
        ("delivered_at", shipment.delivered_at),
    ]
    known = [(name, day) for name, day in ordered if day is not None]
    for (earlier, first), (later, second) in pairwise(known):
        if second < first:
            raise ValueError(f"{later} {second} is before {earlier} {first}")
    floor = shipment.shipped_at or order.placed_at
    if shipment.expected_delivery is not None and shipment.expected_delivery < floor:
        raise ValueError(f"expected_delivery {shipment.expected_delivery} is before {floor}")


def _check_customer(customer: Customer) -> None:
    _check_id("customer_id", customer.customer_id)
    _check_length("name", customer.name, NAME_LENGTH)
    _check_length("email", customer.email, EMAIL_LENGTH)
    _check_length("phone", customer.phone, PHONE_LENGTH)


def _check_id(name: str, value: str) -> None:
    if not value or value != value.strip():
        raise ValueError(f"{name} must be non-empty without surrounding spaces, not {value!r}")
    _check_length(name, value, LABEL_LENGTH)


def _check_length(name: str, value: str | None, limit: int) -> None:
    if value is not None and len(value) > limit:
        raise ValueError(f"{name} must be at most {limit} characters, not {value!r}")


def _check_return(order: OrderRow, customer_id: str, skus: tuple[str, ...]) -> None:
    if order.customer_id != customer_id:
        raise ValueError(f"order {order.order_id} is not customer {customer_id}'s")
    missing = sorted(set(skus) - {line.sku for line in order.lines})
    if missing:
        raise ValueError(f"order {order.order_id} has no item {', '.join(missing)}")


# Rows


def _order_key(order_id: str) -> str:
    return order_id.strip().upper()


def _select_orders() -> Select[OrderRow]:
    """Orders with their lines and shipment, loaded in one extra query each (not per order)."""
    return select(OrderRow).options(selectinload(OrderRow.lines), selectinload(OrderRow.shipment))


def _find_order(session: Session, order_id: str) -> OrderRow | None:
    key = func.upper(OrderRow.order_id) == _order_key(order_id)
    return session.scalars(_select_orders().where(key)).first()


def _put_customer(session: Session, customer: Customer) -> None:
    row = session.get(CustomerRow, customer.customer_id)
    if row is None:
        row = CustomerRow(customer_id=customer.customer_id)
        session.add(row)
    row.name, row.email, row.phone = customer.name, customer.email, customer.phone


def _put_order(session: Session, order: Order) -> None:
    """Update the order row in place (its return requests point at it); replace the rest."""
    row = _find_order(session, order.order_id)
    if row is None:
        row = OrderRow(order_id=order.order_id)
        session.add(row)
    elif row.order_id != order.order_id:
        raise ValueError(f"order {order.order_id} clashes with {row.order_id} (ids ignore case)")
    row.customer_id = order.customer_id
    row.status = order.status
    row.placed_at = order.placed_at
    row.currency = order.currency
    row.lines = [
        OrderLineRow(sku=line.sku, qty=line.qty, price=line.price, opened=line.opened)
        for line in order.lines
    ]
    shipment = order.shipment
    if shipment is None:
        row.shipment = None
        return
    ship = row.shipment or ShipmentRow(order_id=order.order_id)
    ship.carrier = shipment.carrier
    ship.tracking_number = shipment.tracking_number
    ship.shipped_at = shipment.shipped_at
    ship.expected_delivery = shipment.expected_delivery
    ship.delivered_at = shipment.delivered_at
    row.shipment = ship


# Records


def _customer(row: CustomerRow) -> Customer:
    return Customer(customer_id=row.customer_id, name=row.name, email=row.email, phone=row.phone)


def _order(row: OrderRow) -> Order:
    ship = row.shipment
    return Order(
        order_id=row.order_id,
        customer_id=row.customer_id,
        status=cast(OrderStatus, row.status),  # checked on the way in
        placed_at=row.placed_at,
        lines=tuple(
            OrderLine(sku=line.sku, qty=line.qty, price=float(line.price), opened=line.opened)
            for line in row.lines
        ),
        shipment=None
        if ship is None
        else Shipment(
            carrier=ship.carrier,
            tracking_number=ship.tracking_number,
            shipped_at=ship.shipped_at,
            expected_delivery=ship.expected_delivery,
            delivered_at=ship.delivered_at,
        ),
        currency=row.currency,
    )


def _return_request(row: ReturnRequestRow) -> ReturnRequest:
    return ReturnRequest(
        return_id=row.return_id,
        order_id=row.order_id,
        customer_id=row.customer_id,
        skus=tuple(row.skus),
        status=cast(ReturnStatus, row.status),  # checked on the way in
        created_at=row.created_at,
        reason=row.reason,
    )
