"""The order system (customers, orders, lines, shipments, returns) and the tools' columns.

Revision ID: 0002
Revises: 0001
Create Date: 2026-10-16

Mirrors app/db/shop_models.py and the two new columns of app/db/models.py exactly (a unit
test compares the models with the migrated database). The added columns are nullable
and have no server default, so SQLite adds them in place (batch mode only copies a table
when it must); PostgreSQL gets a plain ALTER TABLE.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the five order tables and add `tool_state` and `actions`."""
    op.create_table(
        "customers",
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("phone", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", name="pk_customers"),
    )

    op.create_table(
        "orders",
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("placed_at", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.customer_id"],
            name="fk_orders_customer_id_customers",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("order_id", name="pk_orders"),
    )
    op.create_index("ix_orders_customer_id", "orders", ["customer_id"])

    op.create_table(
        "order_lines",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("qty", sa.Integer(), nullable=False),
        sa.Column("price", sa.Numeric(12, 2), nullable=False),
        sa.Column("opened", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.order_id"],
            name="fk_order_lines_order_id_orders",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_order_lines"),
    )
    op.create_index("ix_order_lines_order_id", "order_lines", ["order_id"])

    op.create_table(
        "shipments",
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("carrier", sa.String(64), nullable=True),
        sa.Column("tracking_number", sa.String(64), nullable=True),
        sa.Column("shipped_at", sa.Date(), nullable=True),
        sa.Column("expected_delivery", sa.Date(), nullable=True),
        sa.Column("delivered_at", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.order_id"],
            name="fk_shipments_order_id_orders",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("order_id", name="pk_shipments"),
    )

    op.create_table(
        "return_requests",
        sa.Column("return_id", sa.String(16), nullable=False),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("skus", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.order_id"],
            name="fk_return_requests_order_id_orders",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("return_id", name="pk_return_requests"),
    )
    op.create_index("ix_return_requests_order_id", "return_requests", ["order_id"])

    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("tool_state", sa.JSON(), nullable=True))
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("actions", sa.JSON(), nullable=True))


def downgrade() -> None:
    """Drop everything 0002 added, children first.

    The two columns are dropped with plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+),
    not batch mode: batch mode would copy and drop `messages`, and with foreign keys on
    SQLite's DROP TABLE deletes its rows first, cascading to every feedback row.
    """
    op.drop_column("messages", "actions")
    op.drop_column("conversations", "tool_state")
    op.drop_index("ix_return_requests_order_id", table_name="return_requests")
    op.drop_table("return_requests")
    op.drop_table("shipments")
    op.drop_index("ix_order_lines_order_id", table_name="order_lines")
    op.drop_table("order_lines")
    op.drop_index("ix_orders_customer_id", table_name="orders")
    op.drop_table("orders")
    op.drop_table("customers")
