"""The conversation database: SQLAlchemy models, Alembic migrations and the store.

`engine.py` builds the engine and brings the schema up to date, `models.py` holds the
tables, `repository.py` the queries the chat service, the agent API and the admin
stats need (`stats.py` the statistics), always returning plain frozen records.
"""
