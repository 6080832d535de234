"""Build the database engine and bring its schema up to date.

SQLite (a file in the data dir) is the local-first default; any SQLAlchemy URL, such as
`postgresql+psycopg://...`, selects another server. The schema is owned by the Alembic
migrations in `app/db/migrations`, run programmatically so no `alembic.ini` is needed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
DB_FILENAME = "shopdesk.db"
MIGRATION_LOCK = 0x5D0E5C_0001
"""PostgreSQL advisory-lock key held while migrating (any constant no one else uses)."""


def database_url(data_dir: Path, url: str | None) -> str:
    """The URL to connect to: `url` when given, else the SQLite file in `data_dir`.

    The data dir is created so that the default works on a fresh install.
    """
    if url:
        return url
    data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(data_dir / DB_FILENAME).resolve()}"


def make_engine(url: str) -> Engine:
    """An engine for `url`, safe to share between FastAPI's worker threads.

    SQLite connections may cross threads (the pool hands each to one thread at a time),
    enforce foreign keys (off by default in SQLite) and use WAL so the admin's readers
    never block the chat's writer. An in-memory SQLite database is one shared
    connection, otherwise every thread would see its own empty database. Other servers
    get `pool_pre_ping` so a connection dropped by the server is replaced, not failed.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    in_memory = parsed.database in (None, "", ":memory:")
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False},
        poolclass=StaticPool if in_memory else None,
    )
    event.listen(engine, "connect", _sqlite_pragmas(wal=not in_memory))
    return engine


def _sqlite_pragmas(*, wal: bool) -> Callable[[Any, Any], None]:
    """A connect listener setting the per-connection SQLite pragmas."""

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            if wal:
                cursor.execute("PRAGMA journal_mode=WAL")
        finally:
            cursor.close()

    return on_connect


def alembic_config() -> Config:
    """Alembic configuration pointing at the packaged migrations, without an ini file."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def upgrade(engine: Engine) -> None:
    """Migrate the database to the newest schema; a no-op when it is already there.

    Replicas that start together would migrate together, and on PostgreSQL all but one
    would fail (two CREATE TABLEs of one name). The first takes an advisory lock for its
    transaction; the others wait for it and then find the schema at head.
    """
    config = alembic_config()
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    logger.info("database schema at head (%s)", engine.url.render_as_string(hide_password=True))
