"""What the tools read and write, independent of where a shop keeps it.

`OrderRepository` is the seam a shop plugs its own order system into; ShopDesk's
own implementation (`app.tools.sql_orders.SqlOrderRepository`) keeps the tables in
the same database as the conversations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal, Protocol

OrderStatus = Literal["processing", "shipped", "delivered", "cancelled"]
ReturnStatus = Literal["requested", "approved", "received", "refunded", "rejected"]


@dataclass(frozen=True)
class Customer:
    customer_id: str
    name: str
    email: str
    phone: str


@dataclass(frozen=True)
class OrderLine:
    sku: str
    qty: int
    price: float
    opened: bool = False


@dataclass(frozen=True)
class Shipment:
    carrier: str | None
    tracking_number: str | None
    shipped_at: date | None = None
    expected_delivery: date | None = None
    delivered_at: date | None = None


@dataclass(frozen=True)
class Order:
    order_id: str
    customer_id: str
    status: OrderStatus
    placed_at: date
    lines: tuple[OrderLine, ...]
    shipment: Shipment | None = None
    currency: str = "CNY"

    @property
    def delivered_at(self) -> date | None:
        return self.shipment.delivered_at if self.shipment else None

    @property
    def total(self) -> float:
        return round(sum(line.qty * line.price for line in self.lines), 2)


@dataclass(frozen=True)
class ReturnRequest:
    return_id: str
    order_id: str
    customer_id: str
    skus: tuple[str, ...]
    status: ReturnStatus
    created_at: datetime
    reason: str | None = None


class OrderRepository(Protocol):
    """A shop's orders. Every read is by id; nothing lists other customers' data."""

    def get_customer(self, customer_id: str) -> Customer | None: ...

    def get_order(self, order_id: str) -> Order | None:
        """The order with this id (case-insensitive, surrounding spaces ignored), or None."""
        ...

    def orders_for(self, customer_id: str) -> list[Order]:
        """The customer's orders, newest first."""
        ...

    def create_return(
        self, order_id: str, customer_id: str, skus: tuple[str, ...], reason: str | None
    ) -> ReturnRequest:
        """A new return request (status `requested`) with a fresh id like `RMA-7F3K2Q`."""
        ...

    def returns_for(self, order_id: str) -> list[ReturnRequest]: ...


@dataclass(frozen=True)
class Product:
    """One catalogue entry in one language, as ingest stored it."""

    sku: str
    lang: str
    name: str
    category: str
    price: float
    currency: str
    stock: int
    doc_id: str
    attributes: dict[str, Any] = field(default_factory=dict)
    text: str = ""
    source: str = ""

    @property
    def in_stock(self) -> bool:
        return self.stock > 0
