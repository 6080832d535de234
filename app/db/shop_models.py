"""SQLAlchemy models of the sample order system: customers, orders, lines, shipments, returns.

They live on the conversations' `Base`, so one metadata, one set of migrations
(`migrations/versions/0002_shop.py` mirrors these tables) and one `upgrade` serve both.
As in `models.py`, the vocabularies (order and return statuses) are plain strings checked
by the code that writes them (`app.tools.sql_orders`), and only portable types are used.

A shop with its own order system does not need these tables: it implements
`app.tools.records.OrderRepository` over its own system instead.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Integer, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db.models import LABEL_LENGTH, SHORT_LENGTH, Base, UtcDateTime, utcnow

NAME_LENGTH = 200
EMAIL_LENGTH = 254
"""The longest address SMTP allows."""
PHONE_LENGTH = 32
CURRENCY_LENGTH = 3
"""ISO 4217 codes."""
RETURN_ID_LENGTH = 16
"""`RMA-` and eight characters, with room to spare."""


class CustomerRow(Base):
    """A customer as the shop knows them; email and phone are what verification checks."""

    __tablename__ = "customers"

    customer_id: Mapped[str] = mapped_column(String(LABEL_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False)
    email: Mapped[str] = mapped_column(String(EMAIL_LENGTH), nullable=False)
    phone: Mapped[str] = mapped_column(String(PHONE_LENGTH), nullable=False)


class OrderRow(Base):
    """One order; its lines and shipment are replaced as a whole when it is re-loaded."""

    __tablename__ = "orders"

    order_id: Mapped[str] = mapped_column(String(LABEL_LENGTH), primary_key=True)
    customer_id: Mapped[str] = mapped_column(
        String(LABEL_LENGTH),
        ForeignKey("customers.customer_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )
    status: Mapped[str] = mapped_column(String(SHORT_LENGTH), nullable=False)
    placed_at: Mapped[date] = mapped_column(Date, nullable=False)
    currency: Mapped[str] = mapped_column(String(CURRENCY_LENGTH), nullable=False)

    lines: Mapped[list[OrderLineRow]] = relationship(
        order_by="OrderLineRow.id", cascade="all, delete-orphan", passive_deletes=True
    )
    shipment: Mapped[ShipmentRow | None] = relationship(
        cascade="all, delete-orphan", passive_deletes=True
    )


class OrderLineRow(Base):
    """One item of an order; the autoincrement id keeps the lines in the order given."""

    __tablename__ = "order_lines"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(
        String(LABEL_LENGTH),
        ForeignKey("orders.order_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )
    sku: Mapped[str] = mapped_column(String(LABEL_LENGTH), nullable=False)
    qty: Mapped[int] = mapped_column(Integer, nullable=False)
    # Exact decimal in the database (no binary rounding of money), float in Python as
    # the records carry it.
    price: Mapped[float] = mapped_column(Numeric(12, 2, asdecimal=False), nullable=False)
    opened: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    """Whether the customer opened it: some items are returnable only unopened."""


class ShipmentRow(Base):
    """An order's shipment (at most one); every date is unknown until it happens."""

    __tablename__ = "shipments"

    order_id: Mapped[str] = mapped_column(
        String(LABEL_LENGTH),
        ForeignKey("orders.order_id", ondelete="CASCADE"),
        primary_key=True,
    )
    carrier: Mapped[str | None] = mapped_column(String(LABEL_LENGTH), nullable=True)
    tracking_number: Mapped[str | None] = mapped_column(String(LABEL_LENGTH), nullable=True)
    shipped_at: Mapped[date | None] = mapped_column(Date, nullable=True)
    expected_delivery: Mapped[date | None] = mapped_column(Date, nullable=True)
    delivered_at: Mapped[date | None] = mapped_column(Date, nullable=True)


class ReturnRequestRow(Base):
    """A customer's request to return some lines of an order (by SKU).

    Re-loading the order keeps its return requests: the order row is updated in place.
    """

    __tablename__ = "return_requests"

    return_id: Mapped[str] = mapped_column(String(RETURN_ID_LENGTH), primary_key=True)
    order_id: Mapped[str] = mapped_column(
        String(LABEL_LENGTH),
        ForeignKey("orders.order_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )
    customer_id: Mapped[str] = mapped_column(String(LABEL_LENGTH), nullable=False)
    skus: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    status: Mapped[str] = mapped_column(String(SHORT_LENGTH), nullable=False)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False, default=utcnow)
