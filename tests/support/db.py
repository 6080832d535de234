"""The conversation database in tests: a migrated engine, and writers racing on one conversation."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine

from app.db.engine import make_engine, upgrade
from app.db.repository import ConversationStore


@contextmanager
def migrated_engine(url: str) -> Iterator[Engine]:
    """An engine on `url`, migrated to the newest schema; disposed on exit."""
    engine = make_engine(url)
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()


def add_messages_at_once(
    store: ConversationStore, conversation_id: str, *, writers: int = 4, each: int = 10
) -> None:
    """`writers` threads each add `each` user messages ("writer-n") to one conversation at
    the same time, and are all done on return."""

    def write(writer: int) -> None:
        for n in range(each):
            store.add_message(conversation_id, "user", f"{writer}-{n}")

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
