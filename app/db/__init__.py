"""The conversation database: SQLAlchemy models, Alembic migrations and the store.

`engine.py` builds the engine and brings the schema up to date, `models.py` holds the
tables, `repository.py` the queries the chat service, the agent API and the admin
stats need (`stats.py` the statistics), always returning plain frozen records.
`shop_models.py` holds the sample order system's tables on the same `Base`.
"""

# Importing any part of the package registers every table on `Base.metadata`, so the
# migrations' environment and the models-vs-migrations test always see all of them.
from app.db import shop_models as shop_models
