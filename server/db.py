"""Engines, schema migrations and the bridge between the event loop and the database.

Every SQLite/PostgreSQL difference lives here. Domain code runs its queries inside
`Database.run(fn, ...)`: one worker-thread hop and one transaction per call, so the event loop
never waits on the database and a failure leaves nothing half-written.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import select
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Engine, create_engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session as Db

from .dbthread import DatabaseThread
from .errors import ServiceError, Unavailable

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

    SQLite allows one writer at a time, so it gets one thread (`DatabaseThread`) doing every
    transaction in turn, on one connection it keeps. Several threads would only queue on the file
    lock, and SQLite's busy handler waits in sleeps of up to 100 ms: under load that costs far more
    than it overlaps. PostgreSQL runs transactions side by side, so it gets a pool of threads, each
    keeping a connection for the plain transactions of the login path (see `_connection`).
    """

    def __init__(self, engine: Engine, *, threads: int | None = None) -> None:
        self.engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        if self._sqlite and threads in (None, 1):
            self._thread = DatabaseThread("tobira-db")
            self._submit = self._thread.submit
        else:
            executor = ThreadPoolExecutor(max_workers=threads or 8, thread_name_prefix="tobira-db",
                                          initializer=_mark_database_thread)
            self._submit = lambda fn: asyncio.wrap_future(executor.submit(fn))
        self._held = threading.local()  # the connection each thread keeps (see _connection)
        self._kept: list[_Kept] = []  # all of them, to give back when this Database closes or is collected
        weakref.finalize(self, _close_kept, self._kept)

    def close(self) -> None:
        """Give back the connections the threads keep (at shutdown, before the engine is disposed)."""
        _close_kept(self._kept)

    def run_sync(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """Run fn(db, ...) in one transaction on this thread (for the CLI and tests)."""
        with Db(self.engine, expire_on_commit=False) as db:
            try:
                try:
                    result = fn(db, *args, **kwargs)
                except ServiceError:
                    if _commits_refusals(fn):
                        db.commit()
                        _log_events(db)
                    raise
                db.commit()
                _log_events(db)
                return result
            except BaseException as exc:
                db.rollback()
                db.info.pop("events", None)  # a rolled-back event never happened
                _raise_outage(exc)
                raise

    async def ping(self) -> None:
        """A connection from the pool, and one statement on it (Unavailable when the database does
        not answer): a connection a thread keeps could outlive the database's ability to take new ones."""
        await self.run(lambda db: db.connection().exec_driver_sql("SELECT 1"))

    async def run(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """fn(db, ...) in one transaction on a database thread."""
        return await self._submit(functools.partial(self.run_sync, fn, *args, **kwargs))

    def run_plain_sync(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """Run fn(tx, ...) in one transaction on a bare DB-API connection (see `Tx`)."""
        with self._connection() as fairy:
            tx = Tx(fairy, self.engine.dialect)
            try:
                tx.begin()
                try:
                    result = fn(tx, *args, **kwargs)
                except ServiceError:
                    if _commits_refusals(fn):
                        tx.commit()
                        _log_events(tx)
                    raise
                tx.commit()
                _log_events(tx)
                return result
            except BaseException as exc:
                tx.rollback()
                _raise_outage(exc)
                raise

    @contextlib.contextmanager
    def _connection(self):
        """The connection for a plain transaction. A thread keeps one between transactions: a pool
        checkout costs more than the login path's transactions do (SQLite: the pool's reset;
        PostgreSQL: the pre-ping and the reset on return, a round trip each). A kept PostgreSQL
        connection is checked by a poll of its socket instead (`_still_open`); only database
        threads keep one (any other thread, a CLI command say, takes and returns a pooled one)."""
        if not (self._sqlite or getattr(_thread_role, "database", False)):
            fairy = self._checkout()
            try:
                yield fairy
            finally:
                fairy.close()
            return
        kept = getattr(self._held, "kept", None)
        if kept is None:
            kept = self._held.kept = _Kept()
            self._kept.append(kept)
        with kept.lock:  # close() gives it back between transactions, never during one
            if kept.fairy is not None and not (kept.fairy.is_valid and (self._sqlite or _still_open(kept.fairy))):
                _drop(kept.fairy)
                kept.fairy = None
            if kept.fairy is None:
                kept.fairy = self._checkout()
            yield kept.fairy

    def _checkout(self):
        try:
            return self.engine.raw_connection()
        except self.engine.dialect.loaded_dbapi.Error as exc:  # no connection: unwrapped, unlike the ORM's
            raise Unavailable(reason=_first_line(exc)) from exc

    async def run_plain(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """fn(tx, ...) in one transaction on a database thread, without the ORM (the login path)."""
        return await self._submit(functools.partial(self.run_plain_sync, fn, *args, **kwargs))


def commits_refusals(fn: Callable[..., T]) -> Callable[..., T]:
    """Marks a transaction function whose refusals (ServiceError) are committed before they are
    raised: what such a refusal leaves behind must stay (a counted failure, a used-up ceremony or
    code, its security event), and a refusal is still an exception, not a returned string."""
    fn.commits_refusals = True  # type: ignore[attr-defined]  # a marker read by _commits_refusals
    return fn


def _commits_refusals(fn) -> bool:
    return getattr(fn, "commits_refusals", False)


_thread_role = threading.local()


def _mark_database_thread() -> None:
    _thread_role.database = True


def _still_open(fairy) -> bool:
    """Whether a kept, idle PostgreSQL connection is still open, without a round trip: the server
    sends nothing unasked to an idle connection unless it is ending it (a restart, a terminated
    backend), so anything to read (its farewell, end-of-file) means: take a new one."""
    try:
        poller = select.poll()
        poller.register(fairy.driver_connection.fileno(), select.POLLIN)
        return not poller.poll(0)
    except Exception:  # noqa: BLE001 -- closed or broken: not usable either way
        return False


class _Kept:
    """A thread's kept connection (None until its first transaction, or after close())."""

    __slots__ = ("fairy", "lock")

    def __init__(self) -> None:
        self.fairy = None
        self.lock = threading.Lock()


def _drop(fairy) -> None:
    with contextlib.suppress(Exception):
        if fairy.is_valid:
            fairy.invalidate()  # its connection is closed, not handed to anyone else
        fairy.close()  # and its place in the pool given back


def _close_kept(kept: list) -> None:
    for one in list(kept):
        # A transaction still running (a database that hangs, say) keeps its connection.
        if one.lock.acquire(timeout=5):
            try:
                if one.fairy is not None:
                    with contextlib.suppress(Exception):
                        one.fairy.close()
                    one.fairy = None
            finally:
                one.lock.release()


class Tx:
    """One transaction on a DB-API connection, for store.py's plain SQL.

    The ORM session costs more Python per transaction (its state machine, its connection lookup
    per statement) than SQLite spends on the whole transaction; the login path's transactions use
    only plain SQL, so they run here. Same contract as `Database.run`: one transaction, committed or
    rolled back as a whole, committed security events logged, outages raised as Unavailable.
    """

    def __init__(self, fairy, dialect, *, invalidate: Callable[[BaseException], None] | None = None) -> None:
        self.fairy = fairy
        self.dbapi = fairy.driver_connection
        self.dialect = dialect
        self.invalidate = invalidate or fairy.invalidate
        self.info: dict = {}  # what the ORM session's .info holds for store.add_event

    def begin(self) -> None:
        if self.dialect.name == "sqlite":
            # The write lock at BEGIN, as for the ORM's transactions (make_engine).
            self.execute("BEGIN IMMEDIATE")
        # psycopg opens the transaction itself at the first statement.

    def execute(self, sql: str, params=None):
        """The driver's cursor; its errors become SQLAlchemy's (a lost connection is invalidated)."""
        if self.dialect.name == "sqlite":
            return self._driver(lambda: self.dbapi.execute(sql, params or ()), sql, params)
        cursor = self.dbapi.cursor()
        self._driver(lambda: cursor.execute(sql, params), sql, params, cursor)
        return cursor

    def commit(self) -> None:
        if self.dialect.name == "sqlite":
            self.execute("COMMIT")
        else:
            self._driver(self.dbapi.commit, "COMMIT", None)

    def _driver(self, call: Callable[[], T], sql: str, params, cursor=None) -> T:
        """What SQLAlchemy does for its own statements: a lost connection is dropped from the pool,
        and the driver's error becomes SQLAlchemy's, so an outage is a 503 (commit included)."""
        try:
            return call()
        except self.dialect.loaded_dbapi.Error as exc:
            lost = self.dialect.is_disconnect(exc, self.dbapi, cursor)
            if lost:
                self.invalidate(exc)
            raise DBAPIError.instance(sql, params, exc, self.dialect.loaded_dbapi.Error,
                                      connection_invalidated=lost) from exc

    def rollback(self) -> None:
        self.info.pop("events", None)  # a rolled-back event never happened
        if not self.fairy.is_valid:
            return  # invalidated when it was lost: the server has rolled back already
        try:
            if self.dialect.name == "sqlite":
                if self.dbapi.in_transaction:
                    self.dbapi.execute("ROLLBACK")
            else:
                self.dbapi.rollback()
        except Exception:  # noqa: BLE001 -- a dead connection has nothing to roll back
            self.fairy.invalidate()


def _raise_outage(exc: BaseException) -> None:
    """A database that does not answer becomes Unavailable (503); anything else is left alone."""
    if isinstance(exc, OperationalError) and _is_outage(exc):
        # Never str(exc) itself: SQLAlchemy's text carries the statement and its parameters.
        raise Unavailable(reason=_first_line(exc.orig) if exc.orig else type(exc).__name__) from exc


def _first_line(exc: BaseException) -> str:
    """The driver's first line (never the statement or its parameters) tells the operator why."""
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:200]


def _log_events(db) -> None:
    """One JSON line per committed security event, for operators (never a secret: see store.add_event)."""
    for row in db.info.pop("events", []):
        event_log.info("security event", extra={
            "event": row.kind, "user_id": row.user_id, "ip": row.ip,
            "detail": json.loads(row.detail) if row.detail else None,
        })


def _is_outage(exc: OperationalError) -> bool:
    """A database that does not answer (or is locked past its timeout), not a bug in a query."""
    text = str(exc.orig).lower() if exc.orig else ""
    return exc.connection_invalidated or any(
        w in text for w in ("database is locked", "connection", "could not connect", "server closed", "terminating",
                            # SQLite: the file is gone or unreadable (a lost disk, a replaced path)
                            "unable to open database file", "disk i/o error")
    )
