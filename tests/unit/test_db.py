"""The conversation database on a real SQLite file: migrations, store, stats."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, insert, inspect
from sqlalchemy.exc import IntegrityError

from app.db.engine import database_url, make_engine, upgrade
from app.db.models import Base, Message
from app.db.repository import AlreadyExists, ConversationStore, NotFound, Stats
from app.db.stats import Unanswered, nearest_rank, normalise_question
from tests.support.db import add_messages_at_once, migrated_engine

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class Clock:
    """A clock that moves one second every time it is read, so every row is ordered."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def set(self, moment: datetime) -> None:
        self.now = moment

    def __call__(self) -> datetime:
        moment = self.now
        self.now += timedelta(seconds=1)
        return moment


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with migrated_engine(database_url(tmp_path / "data", None)) as engine:
        yield engine


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(engine: Engine, clock: Clock) -> ConversationStore:
    return ConversationStore(engine, clock=clock)


def _is_utc(moment: datetime | None) -> bool:
    return moment is not None and moment.utcoffset() == timedelta(0)


# Engine and migrations


def test_database_url_prefers_the_given_url_else_a_sqlite_file_in_the_data_dir(
    tmp_path: Path,
) -> None:
    assert database_url(tmp_path, "postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    data_dir = tmp_path / "new" / "shop"
    url = database_url(data_dir, None)
    assert data_dir.is_dir()
    assert url == f"sqlite:///{(data_dir / 'shopdesk.db').resolve()}"


def test_migrations_build_exactly_the_models_and_upgrade_twice_is_a_no_op(engine: Engine) -> None:
    upgrade(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert context.get_current_revision() == "0002"
        assert compare_metadata(context, Base.metadata) == []
    tables = set(inspect(engine).get_table_names())
    assert tables == {
        "alembic_version",
        "conversations",
        "messages",
        "tickets",
        "feedback",
        "customers",
        "orders",
        "order_lines",
        "shipments",
        "return_requests",
    }


def test_sqlite_enforces_foreign_keys(engine: Engine) -> None:
    row = {"id": "m1", "conversation_id": "nope", "seq": 1, "role": "user", "text": "hi"}
    row |= {"created_at": T0, "anger": False, "citations": [], "timings": {}}
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(insert(Message).values(**row))


def test_an_in_memory_database_is_shared_between_threads() -> None:
    engine = make_engine("sqlite://")
    upgrade(engine)
    store = ConversationStore(engine)
    created = store.create_conversation("en")
    seen: list[bool] = []
    worker = threading.Thread(
        target=lambda: seen.append(store.get_conversation(created.id) is not None)
    )
    worker.start()
    worker.join()
    assert seen == [True]


# Conversations and messages


def test_create_and_get_conversation(store: ConversationStore) -> None:
    created = store.create_conversation("zh")
    assert len(created.id) == 32
    assert created.status == "bot"
    assert created.created_at == created.updated_at == T0
    fetched = store.get_conversation(created.id)
    assert fetched == created
    assert fetched is not None
    assert _is_utc(fetched.created_at)
    assert fetched.customer_id is None
    assert store.get_conversation("missing") is None

    given = store.create_conversation(conversation_id="chosen-by-client")
    assert given.id == "chosen-by-client"
    assert given.lang is None
    with pytest.raises(AlreadyExists):
        store.create_conversation(conversation_id="chosen-by-client")
    with pytest.raises(ValueError, match="id"):
        store.create_conversation(conversation_id="x" * 33)


def test_set_status(store: ConversationStore) -> None:
    conversation = store.create_conversation()
    store.set_status(conversation.id, "closed")
    fetched = store.get_conversation(conversation.id)
    assert fetched is not None
    assert fetched.status == "closed"
    assert fetched.updated_at > conversation.updated_at
    with pytest.raises(ValueError, match="status"):
        store.set_status(conversation.id, "archived")


def test_messages_get_consecutive_seqs_and_history_keeps_order(
    store: ConversationStore, clock: Clock
) -> None:
    conversation = store.create_conversation("en")
    other = store.create_conversation("en")
    store.add_message(other.id, "user", "unrelated")
    texts = ["hi", "hello!", "where is my parcel", "it left yesterday", "thanks"]
    roles = ["user", "assistant", "user", "assistant", "user"]
    added = [store.add_message(conversation.id, r, t) for r, t in zip(roles, texts, strict=True)]

    assert [m.seq for m in added] == [1, 2, 3, 4, 5]
    assert [m.text for m in store.history(conversation.id)] == texts
    assert [m.seq for m in store.history(conversation.id, limit=2)] == [4, 5]
    assert store.history(conversation.id, limit=10) == store.history(conversation.id)
    assert store.history(conversation.id, limit=0) == []
    assert store.history("missing") == []
    fetched = store.get_conversation(conversation.id)
    assert fetched is not None
    assert fetched.updated_at == added[-1].created_at


def test_a_message_keeps_every_field(store: ConversationStore) -> None:
    conversation = store.create_conversation("zh")
    citations = [{"id": "ret#0", "title": "Returns", "score": 0.91}]
    added = store.add_message(
        conversation.id,
        "assistant",
        "30 天内可以退货。[1]",
        message_id="a" * 32,
        lang="zh",
        intent="returns",
        intent_confidence=0.93,
        sentiment="neutral",
        sentiment_score=0.1,
        anger=True,
        outcome="generated",
        refusal_reason=None,
        rewritten="退货期限是多久",
        citations=citations,
        timings={"retrieve": 12.5, "generate": 800.0},
        response_ms=830.25,
    )
    fetched = store.get_message("a" * 32)
    assert fetched == added
    assert fetched is not None
    assert fetched.citations == citations
    assert fetched.timings == {"retrieve": 12.5, "generate": 800.0}
    assert fetched.anger is True
    assert _is_utc(fetched.created_at)
    plain = store.add_message(conversation.id, "user", "ok")
    assert (plain.citations, plain.timings, plain.anger, plain.outcome) == ([], {}, False, None)
    assert store.get_message("missing") is None
    with pytest.raises(AlreadyExists):
        store.add_message(conversation.id, "user", "again", message_id="a" * 32)


def test_unknown_conversation_is_not_found(store: ConversationStore) -> None:
    with pytest.raises(NotFound):
        store.add_message("missing", "user", "hello")
    with pytest.raises(NotFound):
        store.set_status("missing", "closed")
    with pytest.raises(NotFound):
        store.open_ticket("missing", "requested")


def test_values_outside_the_vocabulary_are_refused(store: ConversationStore) -> None:
    conversation = store.create_conversation()
    with pytest.raises(ValueError, match="role"):
        store.add_message(conversation.id, "bot", "hi")
    with pytest.raises(ValueError, match="outcome"):
        store.add_message(conversation.id, "assistant", "hi", outcome="maybe")
    with pytest.raises(ValueError, match="lang"):
        store.add_message(conversation.id, "user", "hi", lang="english")
    with pytest.raises(ValueError, match="reason"):
        store.open_ticket(conversation.id, "bored")
    assert store.history(conversation.id) == []


def test_concurrent_messages_still_get_distinct_consecutive_seqs(tmp_path: Path) -> None:
    engine = make_engine(database_url(tmp_path, None))
    upgrade(engine)
    store = ConversationStore(engine)
    conversation = store.create_conversation()
    add_messages_at_once(store, conversation.id)  # 4 writers x 10 messages
    assert [m.seq for m in store.history(conversation.id)] == list(range(1, 41))
    engine.dispose()


# Tickets


def test_open_ticket_hands_off_and_is_idempotent_while_open(store: ConversationStore) -> None:
    conversation = store.create_conversation()
    ticket = store.open_ticket(conversation.id, "anger", note="shouting")
    assert (ticket.status, ticket.reason, ticket.note, ticket.closed_at) == (
        "open",
        "anger",
        "shouting",
        None,
    )
    fetched = store.get_conversation(conversation.id)
    assert fetched is not None
    assert fetched.status == "handed_off"
    assert store.open_ticket(conversation.id, "requested") == ticket
    assert store.open_ticket_for(conversation.id) == ticket
    assert store.get_ticket(ticket.id) == ticket
    assert store.get_ticket("missing") is None
    assert store.list_tickets() == [ticket]


def test_close_ticket_gives_the_conversation_back_to_the_bot(store: ConversationStore) -> None:
    conversation = store.create_conversation()
    ticket = store.open_ticket(conversation.id, "requested")
    closed = store.close_ticket(ticket.id, note="refund issued")
    assert closed.status == "closed"
    assert closed.note == "refund issued"
    assert _is_utc(closed.closed_at)
    assert closed.closed_at is not None
    assert closed.closed_at > ticket.created_at
    fetched = store.get_conversation(conversation.id)
    assert fetched is not None
    assert fetched.status == "bot"
    assert store.open_ticket_for(conversation.id) is None
    assert store.close_ticket(ticket.id, note="ignored") == closed
    with pytest.raises(NotFound):
        store.close_ticket("missing")

    again = store.open_ticket(conversation.id, "complaint")
    assert again.id != ticket.id
    assert store.close_ticket(again.id).note is None


def test_list_tickets_newest_first_filtered_by_status(store: ConversationStore) -> None:
    first, second, third = (store.create_conversation() for _ in range(3))
    oldest = store.open_ticket(first.id, "requested")
    middle = store.open_ticket(second.id, "anger")
    newest = store.open_ticket(third.id, "complaint")
    closed = store.close_ticket(middle.id)
    assert [t.id for t in store.list_tickets()] == [newest.id, oldest.id]
    assert store.list_tickets("closed") == [closed]
    assert [t.id for t in store.list_tickets(None)] == [newest.id, middle.id, oldest.id]
    assert [t.id for t in store.list_tickets(None, limit=1)] == [newest.id]


# Feedback


def test_feedback_is_one_row_per_message_upserted(store: ConversationStore) -> None:
    conversation = store.create_conversation()
    message = store.add_message(conversation.id, "assistant", "answer")
    first, created = store.set_feedback(message.id, "up", None)
    assert created is True
    assert (first.message_id, first.rating, first.comment) == (message.id, "up", None)
    assert first.created_at == first.updated_at

    second, created = store.set_feedback(message.id, "down", "wrong price")
    assert created is False
    assert (second.rating, second.comment) == ("down", "wrong price")
    assert second.created_at == first.created_at
    assert second.updated_at > first.updated_at
    assert _is_utc(second.created_at)

    with pytest.raises(NotFound):
        store.set_feedback("missing", "up", None)
    with pytest.raises(ValueError, match="rating"):
        store.set_feedback(message.id, "meh", None)


# Stats


def _scenario(store: ConversationStore, clock: Clock) -> None:
    """Four conversations an hour apart (see test_stats for what each contributes)."""
    clock.set(T0)  # A: answered, then handed off on request; an agent takes over.
    a = store.create_conversation("en").id
    store.add_message(a, "user", "Where is my order?")
    answered = store.add_message(
        a, "assistant", "On its way.", outcome="generated", response_ms=120
    )
    store.set_feedback(answered.id, "up", None)
    store.add_message(a, "user", "I want a human")
    store.add_message(a, "assistant", "Connecting you.", outcome="handoff", response_ms=80)
    store.open_ticket(a, "requested")
    store.add_message(a, "agent", "Hi, I'm Anna.", outcome="agent")

    clock.set(T0 + timedelta(hours=1))  # B: refused twice, thumbs down, no ticket.
    b = store.create_conversation("en").id
    store.add_message(b, "user", "Do you ship to Mars?")
    store.add_message(b, "assistant", "Sorry.", outcome="refused", response_ms=300)
    store.add_message(b, "user", "do you   SHIP to mars ？")
    refused = store.add_message(b, "assistant", "Sorry.", outcome="refused", response_ms=500)
    store.set_feedback(refused.id, "down", "useless")

    clock.set(T0 + timedelta(hours=2))  # C: resolved despite two refusals.
    c = store.create_conversation("en").id
    store.add_message(c, "user", "hello")
    greeting = store.add_message(c, "assistant", "Hi!", outcome="greeting", response_ms=40)
    store.set_feedback(greeting.id, "up", None)
    store.add_message(c, "user", "Can I pay with Bitcoin?")
    store.add_message(c, "assistant", "Sorry.", outcome="refused", response_ms=200)
    # Not "unanswered": the message after the question is not the refusal.
    store.add_message(c, "user", "What about Pluto?")
    store.add_message(c, "system", "context reset")
    store.add_message(c, "assistant", "Sorry.", outcome="refused", response_ms=250)

    clock.set(T0 + timedelta(hours=3))  # D: a ticket but no customer message.
    d = store.create_conversation().id
    store.open_ticket(d, "complaint")


def test_stats_of_a_known_scenario(store: ConversationStore, clock: Clock) -> None:
    _scenario(store, clock)
    assert store.stats() == Stats(
        since=None,
        conversations=3,
        resolved=1,
        resolution_rate=1 / 3,
        handoffs=1,
        handoff_rate=1 / 3,
        handoffs_by_reason={"requested": 1, "complaint": 1},
        assistant_turns=7,
        dont_know_turns=4,
        dont_know_rate=4 / 7,
        response_ms_p50=200.0,  # of 40 80 120 200 250 300 500
        response_ms_p95=500.0,
        feedback_up=2,
        feedback_down=1,
        satisfaction=2 / 3,
        top_unanswered=[
            Unanswered("do you ship to mars", 2),
            Unanswered("can i pay with bitcoin", 1),
        ],
    )

    since_b = T0 + timedelta(hours=1)
    expected_since_b = Stats(
        since=since_b,
        conversations=2,
        resolved=1,
        resolution_rate=0.5,
        handoffs=0,
        handoff_rate=0.0,
        handoffs_by_reason={"complaint": 1},
        assistant_turns=5,
        dont_know_turns=4,
        dont_know_rate=0.8,
        response_ms_p50=250.0,  # of 40 200 250 300 500
        response_ms_p95=500.0,
        feedback_up=1,
        feedback_down=1,
        satisfaction=0.5,
        top_unanswered=[
            Unanswered("do you ship to mars", 2),
            Unanswered("can i pay with bitcoin", 1),
        ],
    )
    assert store.stats(since_b) == expected_since_b
    # The same moment, naive (taken as UTC) or in another zone.
    assert store.stats(since_b.replace(tzinfo=None)) == expected_since_b
    assert store.stats(since_b.astimezone(timezone(timedelta(hours=8)))) == expected_since_b

    assert store.stats(T0 + timedelta(hours=2)) == Stats(
        since=T0 + timedelta(hours=2),
        conversations=1,
        resolved=1,
        resolution_rate=1.0,
        handoffs=0,
        handoff_rate=0.0,
        handoffs_by_reason={"complaint": 1},
        assistant_turns=3,
        dont_know_turns=2,
        dont_know_rate=2 / 3,
        response_ms_p50=200.0,  # of 40 200 250
        response_ms_p95=250.0,
        feedback_up=1,
        feedback_down=0,
        satisfaction=1.0,
        top_unanswered=[Unanswered("can i pay with bitcoin", 1)],
    )


def test_stats_of_an_empty_database_has_no_rates(store: ConversationStore) -> None:
    store.create_conversation()  # no user message: not counted
    assert store.stats() == Stats(
        since=None,
        conversations=0,
        resolved=0,
        resolution_rate=None,
        handoffs=0,
        handoff_rate=None,
        handoffs_by_reason={},
        assistant_turns=0,
        dont_know_turns=0,
        dont_know_rate=None,
        response_ms_p50=None,
        response_ms_p95=None,
        feedback_up=0,
        feedback_down=0,
        satisfaction=None,
        top_unanswered=[],
    )


def test_top_unanswered_keeps_the_ten_most_frequent(
    store: ConversationStore,
) -> None:
    conversation = store.create_conversation().id
    for n in range(12):
        for _ in range(1 + (n == 5)):
            store.add_message(conversation, "user", f"Question {n:02d}?")
            store.add_message(conversation, "assistant", "Sorry.", outcome="refused")
    top = store.stats().top_unanswered
    assert len(top) == 10
    assert top[0] == Unanswered("question 05", 2)
    assert top[1:] == [Unanswered(f"question {n:02d}", 1) for n in (0, 1, 2, 3, 4, 6, 7, 8, 9)]


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("  Do you   ship\tto Mars?! ", "do you ship to mars"),
        ("运费多少？", "运费多少"),
        ("Is it v2.0", "is it v2.0"),
        ("...", ""),
    ],
)
def test_normalise_question(text: str, normalised: str) -> None:
    assert normalise_question(text) == normalised


def test_nearest_rank() -> None:
    assert nearest_rank([], 50) is None
    assert nearest_rank([7.0], 95) == 7.0
    assert nearest_rank([4.0, 1.0, 3.0, 2.0], 50) == 2.0
    assert nearest_rank([float(n) for n in range(1, 21)], 95) == 19.0
