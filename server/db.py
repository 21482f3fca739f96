"""Engines, schema migrations and the bridge between the event loop and the database.

Domain code runs its queries inside `Database.run(fn, ...)`: one worker-thread hop and one
transaction per call (`Tx`), so the event loop never waits on the database and a failure leaves
nothing half-written. The SQLite/PostgreSQL differences live here (engines, threads, when a
transaction opens) and in the few statements that differ (store.py: ON CONFLICT, row locks;
store_batch.py: writes combined into one statement on PostgreSQL).
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
from typing import Any, Awaitable, Callable, Iterator, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Connection, CursorResult, Engine, create_engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.sql.expression import Executable

from .dbthread import DatabaseThread
from .errors import Refusal, Unavailable

T = TypeVar("T")
event_log = logging.getLogger("tobira.events")
_MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        try:
            Path(parsed.database or "").parent.mkdir(parents=True, exist_ok=True)
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

        # pysqlite's own transaction handling would issue its own BEGIN at its own moments: the one
        # who opens a transaction sends BEGIN (Tx: BEGIN IMMEDIATE; the migrations: BEGIN). Not an
        # engine "begin" listener: any engine listener makes SQLAlchemy dispatch events around
        # every statement, which cost the login path more than the statements themselves.
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
    keeping a connection of its own (see `_connection`).
    """

    def __init__(self, engine: Engine, *, threads: int | None = None) -> None:
        self.engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        self._submit: Callable[[Callable[[], Any]], Awaitable[Any]]
        if self._sqlite and threads in (None, 1):
            self._submit = DatabaseThread("tobira-db").submit
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

    async def run(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """fn(tx, ...) in one transaction on a database thread."""
        return await self._submit(functools.partial(self.run_sync, fn, *args, **kwargs))

    def run_sync(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """fn(tx, ...) in one transaction on this thread (the CLI and tests call it directly).

        Committed as a whole or rolled back as a whole (but see Tx.execute_alone); a refusal of a
        `commits_refusals` function is committed, then raised; committed security events are
        logged; a database that does not answer is raised as Unavailable (503)."""
        with self._connection() as conn:
            try:
                transaction = conn.begin()  # the driver sends nothing (see Tx)
                tx = Tx(conn)
            except BaseException as exc:
                _raise_outage(exc)
                raise
            try:
                try:
                    result = fn(tx, *args, **kwargs)
                except Refusal:
                    if _commits_refusals(fn):
                        transaction.commit()
                        _log_events(tx.info)
                    raise
                transaction.commit()  # PostgreSQL: a COMMIT only when a BEGIN was sent
                _log_events(tx.info)
                return result
            except BaseException as exc:
                tx.info.pop("events", None)  # a rolled-back event never happened
                if transaction.is_active:  # (a refusal's commit may have ended it)
                    with contextlib.suppress(Exception):  # a lost connection has nothing to roll back
                        transaction.rollback()
                _raise_outage(exc)
                raise

    async def ping(self) -> None:
        """A connection from the pool, and one statement on it (Unavailable when the database does
        not answer): a connection a thread keeps could outlive the database's ability to take new ones."""
        await self._submit(self._ping)

    def _ping(self) -> None:
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except DBAPIError as exc:
            raise Unavailable(reason=_first_line(exc.orig) if exc.orig else type(exc).__name__) from exc

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Connection]:
        """The connection for one transaction. A database thread keeps one between transactions: a
        pool checkout costs more than the login path's transactions do (SQLite: the pool's reset;
        PostgreSQL: the pre-ping and the reset on return, a round trip each). A kept PostgreSQL
        connection is checked by a poll of its socket instead (`_still_open`); any other thread (a
        CLI command, a test) takes a pooled one and gives it back."""
        if not (self._sqlite or getattr(_thread_role, "database", False)):
            with self._checkout() as conn:
                yield conn
            return
        kept = getattr(self._held, "kept", None)
        if kept is None:
            kept = self._held.kept = _Kept()
            self._kept.append(kept)
        with kept.lock:  # close() gives it back between transactions, never during one
            if kept.conn is not None and (kept.conn.invalidated or kept.conn.closed
                                          or not (self._sqlite or _still_open(kept.conn))):
                _drop(kept.conn)
                kept.conn = None
            if kept.conn is None:
                kept.conn = self._checkout()
            yield kept.conn

    def _checkout(self) -> Connection:
        try:
            conn = self.engine.connect()
            if not self._sqlite:
                # The driver sends no BEGIN of its own: Tx sends one when the call needs it.
                conn.execution_options(isolation_level="AUTOCOMMIT")
            return conn
        except DBAPIError as exc:  # no connection at all: the database is down or unreachable
            raise Unavailable(reason=_first_line(exc.orig) if exc.orig else type(exc).__name__) from exc


class Tx:
    """One call of `Database.run`: what every store function is given, to send its statements.

    The call's transaction opens at the first statement that needs one (`execute`: a write, or a
    read that locks); `read`s before it run on their own. At READ COMMITTED (PostgreSQL) every
    statement of a transaction reads its own snapshot anyway, and SQLite's single writer is only
    needed for writing, so a read outside the transaction sees what it would have seen inside; a
    call that only reads opens none (and, on SQLite, does not wait for another process's writer).
    What a read found may have changed by the time the call writes, on either database: the
    writes carry their own conditions (a compare-and-set, a single-use take, a gate of
    store_batch, a row lock taken with `execute`), never a read's word.

    SQLite opens it with BEGIN IMMEDIATE (the write lock at once: read-then-write transactions
    never deadlock on upgrade). PostgreSQL opens it with BEGIN, and there BEGIN and COMMIT are a
    round trip each, as much as a statement: so `execute_alone` statements, whole by themselves,
    run on their own before the transaction opens, and a call whose writes are one combined
    statement (store_batch.write_together) sends no BEGIN and no COMMIT at all. (On SQLite,
    which has no round trips to save, they open the transaction like `execute`: one commit for
    the call costs less than one each.)
    """

    __slots__ = ("conn", "dialect", "info", "_open", "_begin")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.dialect = conn.dialect
        self.info: dict[str, Any] = {}  # store.add_event's list of events, logged after the commit
        self._open = False
        self._begin = "BEGIN IMMEDIATE" if conn.dialect.name == "sqlite" else "BEGIN"

    def read(self, statement: Executable, params: dict[str, Any] | None = None) -> CursorResult:
        """A plain read (no lock): in the call's transaction when one is open, else on its own."""
        return self.conn.execute(statement, params)

    def execute(self, statement: Executable, params: dict[str, Any] | None = None) -> CursorResult:
        """Any statement, in the call's transaction (opened now if it is not yet)."""
        if not self._open:
            self.conn.exec_driver_sql(self._begin)
            self._open = True
        return self.conn.execute(statement, params)

    def execute_alone(self, statement: Executable, params: dict[str, Any] | None = None) -> CursorResult:
        """A statement that is whole by itself: a single-use take, a count, a compare-and-set with
        everything that hangs on it. On PostgreSQL, before the call's transaction opens, it commits
        on its own and stays even when the call fails later (as a `commits_refusals` refusal's
        writes do); on SQLite it is one of the call's statements like any other."""
        if self._begin == "BEGIN IMMEDIATE":
            return self.execute(statement, params)
        return self.conn.execute(statement, params)


def commits_refusals(fn: Callable[..., T]) -> Callable[..., T]:
    """Marks a transaction function whose refusals (errors.Refusal) are committed before they are
    raised: what such a refusal leaves behind must stay (a counted failure, a used-up ceremony or
    code, its security event), and a refusal is still an exception, not a returned string."""
    fn.commits_refusals = True  # type: ignore[attr-defined]  # a marker read by _commits_refusals
    return fn


def _commits_refusals(fn) -> bool:
    return getattr(fn, "commits_refusals", False)


_thread_role = threading.local()


def _mark_database_thread() -> None:
    _thread_role.database = True


def _still_open(conn: Connection) -> bool:
    """Whether a kept, idle PostgreSQL connection is still open, without a round trip: the server
    sends nothing unasked to an idle connection unless it is ending it (a restart, a terminated
    backend), so anything to read (its farewell, end-of-file) means: take a new one."""
    try:
        poller = select.poll()
        poller.register(conn.connection.driver_connection.fileno(), select.POLLIN)  # type: ignore[union-attr]  # a closed one raises: caught below
        return not poller.poll(0)
    except Exception:  # noqa: BLE001 -- closed or broken: not usable either way
        return False


class _Kept:
    """A thread's kept connection (None until its first transaction, or after close())."""

    __slots__ = ("conn", "lock")

    def __init__(self) -> None:
        self.conn: Connection | None = None
        self.lock = threading.Lock()


def _drop(conn: Connection) -> None:
    with contextlib.suppress(Exception):
        if not conn.invalidated:
            conn.invalidate()  # its connection is closed, not handed to anyone else
        conn.close()  # and its place in the pool given back


def _close_kept(kept: list) -> None:
    for one in list(kept):
        # A transaction still running (a database that hangs, say) keeps its connection.
        if one.lock.acquire(timeout=5):
            try:
                if one.conn is not None:
                    with contextlib.suppress(Exception):
                        one.conn.close()
                    one.conn = None
            finally:
                one.lock.release()


def _raise_outage(exc: BaseException) -> None:
    """A database that does not answer becomes Unavailable (503); anything else is left alone."""
    if isinstance(exc, OperationalError) and _is_outage(exc):
        # Never str(exc) itself: SQLAlchemy's text carries the statement and its parameters.
        raise Unavailable(reason=_first_line(exc.orig) if exc.orig else type(exc).__name__) from exc


def _first_line(exc: BaseException) -> str:
    """The driver's first line (never the statement or its parameters) tells the operator why."""
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:200]


def _log_events(info: dict) -> None:
    """One JSON line per committed security event, for operators (never a secret: see store.add_event)."""
    for row in info.pop("events", []):
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
