"""Alembic: `tobira db upgrade` on an empty database and from the first revision; the models and
the migrated schema agree (autogenerate finds nothing to do). On SQLite and PostgreSQL."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlmodel import SQLModel

from server import db as dbmod
from server import models  # noqa: F401  (the tables)


def _empty(database_url, engine):
    """The fixture's PostgreSQL database is cloned from a migrated template: empty it first."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")


def _head(engine) -> str:
    return ScriptDirectory.from_config(dbmod._alembic_config(engine)).get_current_head()


def _current(engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def test_upgrade_an_empty_database_then_models_match(database_url):
    engine = dbmod.make_engine(database_url)
    _empty(database_url, engine)
    dbmod.upgrade(engine)
    assert _current(engine) == _head(engine)
    assert {"users", "sessions", "credentials", "ceremonies", "one_time_codes", "trusted_devices",
            "security_events", "mail_outbox", "rate_limits"} <= set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata)
    assert diff == [], f"models and migrations differ: {diff}"
    dbmod.upgrade(engine)  # idempotent
    engine.dispose()


def test_upgrade_from_the_first_revision_keeps_data(database_url):
    engine = dbmod.make_engine(database_url)
    _empty(database_url, engine)
    command.upgrade(dbmod._alembic_config(engine), "0001")
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO users (customer_code, display_name, email, password_hash, user_handle, failed_logins, "
            "created_at) VALUES ('OLD00001', 'old', 'old@example.com', 'h', "
            + ("'\\x" + "11" * 32 + "'" if engine.dialect.name == "postgresql" else "x'" + "11" * 32 + "'")
            + ", 0, '2026-01-01 00:00:00')")
    assert _current(engine) == "0001"
    dbmod.upgrade(engine)
    assert _current(engine) == _head(engine)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT customer_code FROM users").scalar_one() == "OLD00001"
    engine.dispose()
