"""The order system on a real SQLite file: migration 0002, SqlOrderRepository, seeding, CLI.

Also the conversation columns that migration adds (tool state, actions).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from itertools import count
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, func, inspect, select
from typer.testing import CliRunner

from app.cli import app as cli_app
from app.db.engine import alembic_config, database_url, make_engine, upgrade
from app.db.models import Base, Conversation, Message
from app.db.repository import ConversationStore, NotFound
from app.db.shop_models import CustomerRow, OrderLineRow, OrderRow, ReturnRequestRow, ShipmentRow
from app.tools.records import Customer, Order, OrderLine, OrderRepository, Shipment
from app.tools.seed import load_orders, read_orders
from app.tools.sql_orders import SqlOrderRepository, new_return_id
from tests.support.db import migrated_engine

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample_shop"
SAMPLE_ORDERS = SAMPLE / "orders.jsonl"
SAMPLE_TODAY = date(2026, 10, 16)
T0 = datetime(2026, 10, 16, 9, 0, tzinfo=UTC)
SHOP_TABLES = {"customers", "orders", "order_lines", "shipments", "return_requests"}
ROW_TYPES = (CustomerRow, OrderRow, OrderLineRow, ShipmentRow, ReturnRequestRow)

ALICE = Customer("C100", "Alice", "alice@example.com", "+86 130 0000 0100")
BOB = Customer("C200", "Bob", "bob@example.com", "+86 130 0000 0200")


def _order(order_id: str, customer: Customer = ALICE, **changes: object) -> Order:
    fields: dict[str, object] = {
        "order_id": order_id,
        "customer_id": customer.customer_id,
        "status": "shipped",
        "placed_at": date(2026, 10, 1),
        "lines": (OrderLine("LL-HP-003", 1, 199.0), OrderLine("LL-EB-003", 2, 129.5, True)),
        "shipment": Shipment(
            "SF Express", "SF123", date(2026, 10, 2), date(2026, 10, 5), delivered_at=None
        ),
    }
    return Order(**(fields | changes))  # type: ignore[arg-type]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with migrated_engine(database_url(tmp_path / "data", None)) as engine:
        yield engine


@pytest.fixture
def repo(engine: Engine) -> SqlOrderRepository:
    moments = (T0 + timedelta(seconds=n) for n in count())
    return SqlOrderRepository(engine, clock=lambda: next(moments))


@pytest.fixture
def sample(repo: SqlOrderRepository) -> SqlOrderRepository:
    assert load_orders(SAMPLE_ORDERS, repo) == 20
    return repo


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            row.__tablename__: connection.scalar(select(func.count()).select_from(row)) or 0
            for row in ROW_TYPES
        }


# Migrations


def test_migrations_from_an_empty_database_build_exactly_the_models(engine: Engine) -> None:
    upgrade(engine)  # a second upgrade is a no-op
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert context.get_current_revision() == "0002"
        assert compare_metadata(context, Base.metadata) == []
    inspector = inspect(engine)
    assert set(inspector.get_table_names()) >= SHOP_TABLES
    assert "tool_state" in {c["name"] for c in inspector.get_columns("conversations")}
    assert "actions" in {c["name"] for c in inspector.get_columns("messages")}


def test_downgrade_to_0001_keeps_the_conversations_and_upgrade_restores_0002(
    engine: Engine,
) -> None:
    store = ConversationStore(engine)
    conversation = store.create_conversation("en")
    message = store.add_message(conversation.id, "assistant", "hi", actions=[{"type": "x"}])
    store.set_feedback(message.id, "up", None)
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0001")
    inspector = inspect(engine)
    assert not SHOP_TABLES & set(inspector.get_table_names())
    assert "actions" not in {c["name"] for c in inspector.get_columns("messages")}
    upgrade(engine)
    kept = store.get_message(message.id)
    assert kept is not None
    assert kept.actions == []
    assert store.stats().feedback_up == 1  # dropping a column did not cascade


# The conversation columns


def test_tool_state_is_kept_and_cleared(engine: Engine) -> None:
    store = ConversationStore(engine)
    conversation = store.create_conversation("zh")
    assert conversation.tool_state is None
    state = {"task": "return", "pending": "confirm_return", "return_skus": ["LL-HP-003"]}
    store.set_tool_state(conversation.id, state)
    fetched = store.get_conversation(conversation.id)
    assert fetched is not None
    assert fetched.tool_state == state
    assert fetched.updated_at > conversation.updated_at
    store.set_tool_state(conversation.id, None)
    fetched = store.get_conversation(conversation.id)
    assert fetched is not None
    assert fetched.tool_state is None
    with engine.connect() as connection:  # SQL NULL, not the JSON value null
        assert connection.scalar(select(func.count()).where(Conversation.tool_state.is_(None)))
    with pytest.raises(NotFound):
        store.set_tool_state("missing", {})


def test_set_customer(engine: Engine) -> None:
    store = ConversationStore(engine)
    conversation = store.create_conversation()
    store.set_customer(conversation.id, "C005")
    fetched = store.get_conversation(conversation.id)
    assert fetched is not None
    assert fetched.customer_id == "C005"
    with pytest.raises(ValueError, match="customer_id"):
        store.set_customer(conversation.id, "x" * 65)
    with pytest.raises(ValueError, match="customer_id"):
        store.set_customer(conversation.id, "")
    with pytest.raises(NotFound):
        store.set_customer("missing", "C005")


def test_messages_keep_their_actions_and_the_tool_outcome(engine: Engine) -> None:
    store = ConversationStore(engine)
    conversation = store.create_conversation("en")
    actions = [{"type": "return_created", "order_id": "LL-2026-100018", "skus": ["LL-HP-003"]}]
    added = store.add_message(
        conversation.id, "assistant", "Done.", outcome="tool", actions=actions
    )
    assert added.actions == actions
    assert store.get_message(added.id) == added
    plain = store.add_message(conversation.id, "user", "thanks")
    assert plain.actions == []
    with engine.connect() as connection:
        stored = connection.scalar(select(Message.actions).where(Message.id == plain.id))
    assert stored is None


# The repository


def test_the_repository_is_an_order_repository(repo: SqlOrderRepository) -> None:
    assert isinstance(repo, SqlOrderRepository)
    as_protocol: OrderRepository = repo  # mypy checks the protocol here
    assert as_protocol.get_order("missing") is None


def test_an_order_round_trips_with_lines_and_shipment(repo: SqlOrderRepository) -> None:
    order = _order("AB-2026-000001")
    repo.upsert_order(order, ALICE)
    assert repo.get_order("AB-2026-000001") == order
    assert repo.get_customer("C100") == ALICE
    unshipped = _order("AB-2026-000002", status="processing", shipment=None, currency="USD")
    repo.upsert_order(unshipped, ALICE)
    assert repo.get_order("AB-2026-000002") == unshipped


def test_lookup_ignores_case_and_spaces_and_unknown_is_none(sample: SqlOrderRepository) -> None:
    found = sample.get_order("  ll-2026-100018 ")
    assert found is not None
    assert found.order_id == "LL-2026-100018"
    assert sample.get_order("LL-2026-999999") is None
    assert sample.get_order("") is None
    assert sample.get_customer("C999") is None
    assert sample.orders_for("C999") == []
    assert sample.returns_for("LL-2026-999999") == []


def test_ids_differing_only_in_case_are_refused(repo: SqlOrderRepository) -> None:
    repo.upsert_order(_order("AB-2026-000001"), ALICE)
    with pytest.raises(ValueError, match="ignore case"):
        repo.upsert_order(_order("ab-2026-000001"), ALICE)


def test_orders_for_is_newest_first_and_only_the_customers_own(
    repo: SqlOrderRepository,
) -> None:
    placed = {"A-3": date(2026, 9, 1), "A-1": date(2026, 10, 2), "A-2": date(2026, 10, 2)}
    placed_by_bob = {"B-9": date(2026, 10, 3)}
    for order_id, day in (placed | placed_by_bob).items():
        customer = BOB if order_id in placed_by_bob else ALICE
        order = _order(order_id, customer, status="processing", shipment=None, placed_at=day)
        repo.upsert_order(order, customer)
    assert [o.order_id for o in repo.orders_for("C100")] == ["A-2", "A-1", "A-3"]
    assert [o.order_id for o in repo.orders_for("C200")] == ["B-9"]


def test_create_return_gives_fresh_ids_and_returns_for_lists_them(
    sample: SqlOrderRepository,
) -> None:
    first = sample.create_return("ll-2026-100018", "C005", ("LL-HP-003",), "too big")
    second = sample.create_return("LL-2026-100018", "C005", ("LL-HP-003", "LL-HP-003"), None)
    assert re.fullmatch(r"RMA-[0-9A-HJKMNP-TV-Z]{8}", first.return_id)
    assert first.return_id != second.return_id
    assert (first.order_id, first.customer_id, first.status) == (
        "LL-2026-100018",
        "C005",
        "requested",
    )
    assert (first.skus, first.reason, first.created_at) == (("LL-HP-003",), "too big", T0)
    assert second.skus == ("LL-HP-003",)
    assert sample.returns_for(" ll-2026-100018") == [second, first]
    assert sample.returns_for("LL-2026-100019") == []
    assert len({new_return_id() for _ in range(200)}) == 200


def test_create_return_refuses_what_cannot_be_right(sample: SqlOrderRepository) -> None:
    with pytest.raises(NotFound):
        sample.create_return("LL-2026-999999", "C005", ("LL-HP-003",), None)
    with pytest.raises(ValueError, match="not customer C001"):
        sample.create_return("LL-2026-100018", "C001", ("LL-HP-003",), None)
    with pytest.raises(ValueError, match="no item LL-KT-002"):
        sample.create_return("LL-2026-100018", "C005", ("LL-KT-002",), None)
    with pytest.raises(ValueError, match="at least one"):
        sample.create_return("LL-2026-100018", "C005", (), None)
    assert sample.returns_for("LL-2026-100018") == []


def test_a_taken_return_id_is_drawn_again(engine: Engine, sample: SqlOrderRepository) -> None:
    ids = iter(["RMA-AAAAAAAA", "RMA-AAAAAAAA", "RMA-BBBBBBBB"])
    repo = SqlOrderRepository(engine, new_id=lambda: next(ids))
    assert repo.create_return("LL-2026-100020", "C002", ("LL-SH-003",), None).return_id == (
        "RMA-AAAAAAAA"
    )
    assert repo.create_return("LL-2026-100020", "C002", ("LL-SH-003",), None).return_id == (
        "RMA-BBBBBBBB"
    )


def test_reloading_an_order_replaces_its_lines_and_shipment_and_keeps_returns(
    engine: Engine, repo: SqlOrderRepository
) -> None:
    repo.upsert_order(_order("AB-1"), ALICE)
    made = repo.create_return("AB-1", "C100", ("LL-HP-003",), None)
    delivered = _order(
        "AB-1",
        status="delivered",
        lines=(OrderLine("LL-HP-003", 1, 189.0),),
        shipment=Shipment("JD Logistics", "JD9", date(2026, 10, 2), None, date(2026, 10, 4)),
    )
    repo.upsert_order(delivered, ALICE)
    assert repo.get_order("AB-1") == delivered
    cancelled = _order("AB-1", status="cancelled", shipment=None)
    repo.upsert_order(cancelled, ALICE)
    assert repo.get_order("AB-1") == cancelled
    assert repo.returns_for("AB-1") == [made]
    assert _counts(engine) == {
        "customers": 1,
        "orders": 1,
        "order_lines": 2,
        "shipments": 0,
        "return_requests": 1,
    }


def test_upsert_customer_replaces_the_details(repo: SqlOrderRepository) -> None:
    repo.upsert_customer(ALICE)
    moved = Customer("C100", "Alice Wang", "alice@example.org", "+86 130 0000 0101")
    repo.upsert_customer(moved)
    assert repo.get_customer("C100") == moved
    with pytest.raises(ValueError, match="customer_id"):
        repo.upsert_customer(Customer(" C1", "x", "x", "x"))


# Seeding


def test_the_sample_file_loads_and_reloading_changes_nothing(
    engine: Engine, sample: SqlOrderRepository
) -> None:
    counts = _counts(engine)
    assert counts == {
        "customers": 8,
        "orders": 20,
        "order_lines": 29,
        "shipments": 18,
        "return_requests": 0,
    }
    before = {o.order_id: o for c in range(1, 9) for o in sample.orders_for(f"C{c:03d}")}
    assert load_orders(SAMPLE_ORDERS, sample) == 20
    assert _counts(engine) == counts
    after = {o.order_id: o for c in range(1, 9) for o in sample.orders_for(f"C{c:03d}")}
    assert after == before
    assert len(after) == 20


def test_the_sample_orders_agree_with_the_catalogue_and_the_pinned_date() -> None:
    catalogue = {}
    for text in (SAMPLE / "kb" / "products.jsonl").read_text(encoding="utf-8").splitlines():
        product = json.loads(text)
        catalogue[product["sku"]] = (product["category"], product["price"])
    orders = {order.order_id: order for order, _ in read_orders(SAMPLE_ORDERS)}
    assert [f"LL-2026-{n:06d}" for n in range(100001, 100021)] == list(orders)
    for order in orders.values():
        assert order.placed_at <= SAMPLE_TODAY
        for line in order.lines:
            assert line.price == catalogue[line.sku][1], (order.order_id, line.sku)
        shipment = order.shipment
        if order.status == "shipped":
            assert shipment is not None
            assert shipment.shipped_at, order.order_id
            assert shipment.expected_delivery, order.order_id
            assert shipment.shipped_at <= SAMPLE_TODAY <= shipment.expected_delivery
        if order.status == "processing":
            assert shipment is not None
            assert shipment.expected_delivery, order.order_id
            assert shipment.expected_delivery > SAMPLE_TODAY
    # The return demos: delivered within the 30-day window, a returnable line beside one
    # that is not (opened earbuds, tea).
    demos = {"LL-2026-100018": "C005", "LL-2026-100019": "C001", "LL-2026-100020": "C002"}
    for order_id, customer_id in demos.items():
        order = orders[order_id]
        assert order.customer_id == customer_id
        assert order.delivered_at is not None
        assert SAMPLE_TODAY - timedelta(days=30) <= order.delivered_at <= SAMPLE_TODAY
    emily = {line.sku: line for line in orders["LL-2026-100018"].lines}
    assert not emily["LL-HP-003"].opened
    assert emily["LL-EB-003"].opened
    assert catalogue["LL-EB-003"][0] == "earbuds"
    assert {catalogue[line.sku][0] for line in orders["LL-2026-100019"].lines} == {
        "kitchen",
        "tea",
    }


def _line(**changes: object) -> str:
    row: dict[str, object] = {
        "order_id": "LL-2026-900001",
        "customer": {"customer_id": "C9", "name": "N", "email": "n@example.com", "phone": "1"},
        "status": "delivered",
        "placed_at": "2026-10-01",
        "shipped_at": "2026-10-01",
        "delivered_at": "2026-10-03",
        "carrier": "SF Express",
        "tracking_number": "SF1",
        "lines": [{"sku": "LL-HP-003", "qty": 1, "price": 199.0, "opened": False}],
    }
    return json.dumps(row | changes, ensure_ascii=False)


GOOD_LINE = _line()


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "must be a JSON object"),
        (_line(status="lost"), "status must be one of"),
        (_line(shiped_at="2026-10-01"), "unknown keys shiped_at"),
        (json.dumps({"order_id": "X"}), "lacks customer, lines, placed_at, status"),
        (_line(placed_at="01/10/2026"), "placed_at must be a date"),
        (_line(order_id=7), "order_id must be a string"),
        (_line(lines=[]), "has no lines"),
        (_line(lines=[{"sku": "A", "qty": 0, "price": 1}]), "qty must be at least 1"),
        (_line(lines=[{"sku": "A", "qty": True, "price": 1}]), "qty must be an integer"),
        (_line(lines=[{"sku": "A", "qty": 1, "price": "9"}]), "price must be a number"),
        (_line(lines=[{"sku": "A", "qty": 1, "price": 1, "opened": "no"}]), "opened must be"),
        (_line(delivered_at=None), "delivered_at must be given exactly"),
        (_line(delivered_at="2026-09-30"), "delivered_at 2026-09-30 is before shipped_at"),
        (_line(order_id="ll-2026-900001"), "already on line 1"),
    ],
)
def test_a_bad_line_names_file_and_line_and_writes_nothing(
    tmp_path: Path, engine: Engine, repo: SqlOrderRepository, bad: str, reason: str
) -> None:
    path = tmp_path / "orders.jsonl"
    path.write_text(f"{GOOD_LINE}\n\n{bad}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(f"{path}:3: ") + ".*" + re.escape(reason)):
        load_orders(path, repo)
    assert set(_counts(engine).values()) == {0}


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path, repo: SqlOrderRepository) -> None:
    path = tmp_path / "orders.jsonl"
    path.write_bytes(GOOD_LINE.encode("utf-8") + b"\n\xff\n")
    with pytest.raises(ValueError, match="not UTF-8"):
        load_orders(path, repo)


def test_optional_fields_default(tmp_path: Path, repo: SqlOrderRepository) -> None:
    row = json.loads(_line(status="processing", delivered_at=None))
    for key in ("shipped_at", "delivered_at", "carrier", "tracking_number"):
        del row[key]
    del row["lines"][0]["opened"]
    path = tmp_path / "orders.jsonl"
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    assert load_orders(path, repo) == 1
    order = repo.get_order("LL-2026-900001")
    assert order is not None
    assert (order.shipment, order.currency, order.lines[0].opened) == (None, "CNY", False)


# Command line


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data_dir = tmp_path / "shop"
    monkeypatch.setenv("SHOPDESK_DATA_DIR", str(data_dir))
    for name in ("SHOPDESK_DB__URL", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    return data_dir


def test_cli_orders_load(cli_env: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli_app, ["orders", "load", str(SAMPLE_ORDERS)])
    assert result.exit_code == 0, result.output
    assert "loaded 20 orders" in result.output
    engine = make_engine(database_url(cli_env, None))
    assert _counts(engine)["orders"] == 20
    engine.dispose()

    bad = tmp_path / "bad.jsonl"
    bad.write_text(_line(status="lost") + "\n", encoding="utf-8")
    result = runner.invoke(cli_app, ["orders", "load", str(bad)])
    assert result.exit_code == 1
    assert "bad.jsonl:1" in result.output
