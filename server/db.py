"""Engines, schema migrations and the bridge between the event loop and the database.

Every SQLite/PostgreSQL difference lives here. Domain code runs its queries inside
`Database.run(fn, ...)`: one worker-thread hop and one transaction per call, so the event loop
never waits on the database and a failure leaves nothing half-written.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Engine, create_engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session as Db

from .errors import Unavailable

T = TypeVar("T")
event_log = logging.getLogger("tobira.events")
_MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        try:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            pass  # check_connection reports the unusable path in one line
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 15})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):
            # WAL lets readers run beside the one writer; FKs are off by default in SQLite.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=15000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn):
            # Take the write lock at BEGIN: read-then-write transactions never deadlock on upgrade.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        # pysqlite's own transaction handling would issue its own BEGIN; hand control to SQLAlchemy.
        @event.listens_for(engine, "connect")
        def _no_autobegin(dbapi_conn, _record):
            dbapi_conn.isolation_level = None

        return engine
    # pool_pre_ping: after a database restart the pooled connections are dead; each is tested at
    # checkout and replaced, so the first request after an outage does not fail. connect_timeout:
    # a server that accepts TCP but does not answer (hung or frozen) would otherwise hold the
    # request, and a database thread, for as long as it stays silent; with it the request ends as
    # a 503 within seconds (tests/test_faults.py). A connect_timeout in the URL wins.
    connect_args = {} if "connect_timeout" in parsed.query else {"connect_timeout": 5}
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10, connect_args=connect_args)


def insert_for(dialect_name: str):
    """The dialect's INSERT, which knows ON CONFLICT (SQLite 3.24+ and PostgreSQL spell it alike)."""
    if dialect_name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def _alembic_config(engine: Engine):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest revision; does nothing when it is there already."""
    from alembic import command

    command.upgrade(_alembic_config(engine), "head")


def check_connection(engine: Engine) -> None:
    """Fail early, with one line, when the database cannot be reached or opened."""
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        raise ConnectionError(f"database unusable: {reason}") from None


class Database:
    """Runs transactions off the event loop on the database's own threads.

    SQLite allows one writer at a time, so it gets one thread (and so one connection) doing every
    transaction in turn. Several threads would only queue on the file lock, and SQLite's busy handler
    waits in sleeps of up to 100 ms: under load that costs far more than it overlaps. PostgreSQL
    runs transactions side by side, so it gets a pool of threads the size of the connection pool.
    """

    def __init__(self, engine: Engine, *, threads: int | None = None) -> None:
        self.engine = engine
        if threads is None:
            threads = 1 if engine.dialect.name == "sqlite" else 8
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="tobira-db")

    def run_sync(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """Run fn(db, ...) in one transaction on this thread (for the CLI and tests)."""
        with Db(self.engine, expire_on_commit=False) as db:
            try:
                result = fn(db, *args, **kwargs)
                db.commit()
                _log_events(db)
                return result
            except BaseException as exc:
                db.rollback()
                db.info.pop("events", None)  # a rolled-back event never happened
                if isinstance(exc, OperationalError) and _is_outage(exc):
                    # The driver's first line (never the statement or its parameters) tells the operator why.
                    first_line = (str(exc.orig) if exc.orig else type(exc).__name__).strip().splitlines()
                    raise Unavailable(reason=(first_line[0] if first_line else "database error")[:200]) from exc
                raise

    async def run(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """fn(db, ...) in one transaction on a database thread."""
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, functools.partial(self.run_sync, fn, *args, **kwargs))


def _log_events(db: Db) -> None:
    """One JSON line per committed security event, for operators (never a secret: see store.add_event)."""
    for event in db.info.pop("events", []):
        event_log.info("security event", extra={
            "event": event.kind, "user_id": event.user_id, "ip": event.ip,
            "detail": json.loads(event.detail) if event.detail else None,
        })


def _is_outage(exc: OperationalError) -> bool:
    """A database that does not answer (or is locked past its timeout), not a bug in a query."""
    text = str(exc.orig).lower() if exc.orig else ""
    return exc.connection_invalidated or any(
        w in text for w in ("database is locked", "connection", "could not connect", "server closed", "terminating")
    )
