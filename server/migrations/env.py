"""Alembic environment: runs on the engine Tobira hands over (see db.upgrade)."""

from alembic import context
from sqlmodel import SQLModel

from server import models  # noqa: F401  (registers the tables on SQLModel.metadata)

engine = context.config.attributes["engine"]

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=True,  # SQLite can only ALTER by copying a table
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN")  # pysqlite leaves BEGIN to its caller (db.make_engine)
        context.run_migrations()
    connection.commit()
