"""A login's last writes, together (store_batch.write_together), and when a call's transaction
opens (db.Tx): on both databases, and on PostgreSQL as one statement with no BEGIN or COMMIT."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError

from server import sessions, store
from server.models import Credential, SecurityEvent, Session
from server.store_batch import Batch, write_together
from conftest import add_customer

WHEN = datetime(2026, 12, 5, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def db(app):
    return app.state.ctx.db


@pytest.fixture
def passkey(app, db):
    user = add_customer(app)
    return db.run_sync(store.add_credential, user_id=user.id, credential_id=b"\x07" * 16, public_key=b"\xa5",
                       algorithm=-7, sign_count=5, aaguid="00000000-0000-0000-0000-000000000000", transports="",
                       backup_eligible=True, backup_state=True, name="鍵", created_at=WHEN, hold_until=None)


@pytest.fixture
def sent(db):
    """The statements sent to the database, as the driver got them."""
    statements: list[str] = []

    def record(conn, cursor, statement, *_):
        statements.append(statement.split()[0].upper())

    event.listen(db.engine, "before_cursor_execute", record)
    yield statements
    event.remove(db.engine, "before_cursor_execute", record)


def rows(db, model):
    return db.run_sync(lambda d: list(d.read(select(model))))


def counter_step(passkey, old, new):
    return store.gate_sign_counter(passkey.id, old_count=old, new_count=new, backup_state=True, uv_initialized=True,
                                   when=WHEN)


def a_login(user_id, batch):
    """What a passkey login writes besides its compare-and-set: a session, an event, the old session's end."""
    made = sessions.create(batch, now=WHEN, state=sessions.ACTIVE, user=None, auth_method="passkey")
    store.add_event(batch, kind="login", when=WHEN, user_id=user_id, method="passkey")
    return made


def test_the_writes_are_made_when_the_gate_passes(db, passkey, sent):
    def login(d):
        batch = Batch()
        made = a_login(passkey.user_id, batch)
        return made, write_together(d, batch, gates=[counter_step(passkey, 5, 6)])

    sent.clear()
    made, written = db.run_sync(login)
    statements = list(sent)
    assert written.made and written.blocked_by is None
    assert [s.id_hash for s in rows(db, Session)] == [made.row.id_hash]
    assert [e.kind for e in rows(db, SecurityEvent) if e.user_id == passkey.user_id][-1:] == ["login"]
    assert [c.sign_count for c in rows(db, Credential)] == [6]
    if db.engine.dialect.name == "postgresql":
        assert statements == ["WITH"]  # one statement: no BEGIN, no COMMIT, nothing else
    else:  # the call's transaction (BEGIN IMMEDIATE), the gate, the two writes, one after another
        assert statements == ["BEGIN", "UPDATE", "INSERT", "INSERT"]


def test_nothing_is_written_when_the_gate_does_not_pass(db, passkey):
    """A parallel login moved the counter first: no session, no event, no counter change."""
    events_before = len(rows(db, SecurityEvent))

    def login(d):
        batch = Batch()
        a_login(passkey.user_id, batch)
        return write_together(d, batch, gates=[counter_step(passkey, 4, 6)])

    written = db.run_sync(login)
    assert not written.made and written.blocked_by == 0
    assert rows(db, Session) == [] and len(rows(db, SecurityEvent)) == events_before
    assert [c.sign_count for c in rows(db, Credential)] == [5]


def test_a_later_gate_is_not_tried_when_an_earlier_one_fails(db, passkey):
    db.run_sync(store.hold_user, passkey.user_id, WHEN, "test")  # the login gate will not pass

    def login(d, old):
        batch = Batch()
        a_login(passkey.user_id, batch)
        return write_together(d, batch, gates=[counter_step(passkey, old, 9),
                                               store.gate_login_unless_locked(passkey.user_id, WHEN)])

    assert db.run_sync(login, 4).blocked_by == 0
    assert db.run_sync(store.user_by_id, passkey.user_id).last_login_at is None
    # An earlier gate that passed has made its own write (as a used-up code stays used); the
    # writes that hang on all of them are not made.
    assert db.run_sync(login, 5).blocked_by == 1
    assert [c.sign_count for c in rows(db, Credential)] == [9]
    assert rows(db, Session) == [] and db.run_sync(store.user_by_id, passkey.user_id).last_login_at is None


def test_a_failing_write_undoes_the_gate_and_every_other_write(db, passkey):
    """One write breaks a constraint: the whole call fails and the counter is where it was."""
    taken = db.run_sync(lambda d: sessions.create(d, now=WHEN, state=sessions.ANONYMOUS, user=None).row)

    def login(d):
        batch = Batch()
        store.add_event(batch, kind="login", when=WHEN, user_id=passkey.user_id)
        store.add_session(batch, taken)  # its id is taken: the primary key refuses it
        return write_together(d, batch, gates=[counter_step(passkey, 5, 6)])

    with pytest.raises(IntegrityError):
        db.run_sync(login)
    assert [c.sign_count for c in rows(db, Credential)] == [5]
    assert [e.kind for e in rows(db, SecurityEvent) if e.user_id == passkey.user_id] == ["account_created"]


def test_a_write_hands_back_what_it_returned(db, passkey):
    made = db.run_sync(lambda d: sessions.create(d, now=WHEN, state=sessions.ANONYMOUS, user=None,
                                                 next_path="/trade").row)

    def login(d):
        batch = Batch()
        store.end_session_for_next(batch, made.id_hash)
        return write_together(d, batch, gates=[counter_step(passkey, 5, 6)])

    assert db.run_sync(login).values == ["/trade"]
    assert rows(db, Session) == []


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_call_that_only_reads_sends_no_begin(db, passkey, sent):
    sent.clear()
    assert db.run_sync(store.credential_with_owner, b"\x07" * 16)[1] == passkey
    assert sent == ["SELECT"]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_call_with_two_writes_is_one_transaction(db, passkey, sent):
    """The first write opens the transaction (BEGIN), so a failure later undoes it."""
    def two_writes(d):
        store.hold_user(d, passkey.user_id, WHEN, "test")
        d.execute(select(1).where(False).with_for_update())  # a statement that must be in the transaction
        raise RuntimeError("after the first write")

    sent.clear()
    with pytest.raises(RuntimeError):
        db.run_sync(two_writes)
    assert sent[:2] == ["BEGIN", "UPDATE"]
    assert db.run_sync(store.user_by_id, passkey.user_id).held_at is None


def test_two_parts_changing_one_table_are_refused_on_both_databases(db, passkey):
    """PostgreSQL keeps one of two changes to one row in one statement (a login once lost its
    failure-count reset that way): such a batch is refused before anything is sent, on SQLite too."""
    def login(d):
        batch = Batch()
        store.record_login(batch, passkey.user_id, WHEN)  # a second UPDATE of users: the gate is one
        return write_together(d, batch, gates=[store.gate_login_unless_locked(passkey.user_id, WHEN)])

    with pytest.raises(ValueError, match="one table"):
        db.run_sync(login)
    assert db.run_sync(store.user_by_id, passkey.user_id).last_login_at is None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_on_sqlite_a_call_that_only_reads_does_not_wait_for_a_writer(db, passkey):
    """Another process holds SQLite's write lock (a worker mid-login, the mail worker): a call
    that only reads (every page asking for its session) answers at once instead of queueing."""
    import sqlite3
    import time

    other = sqlite3.connect(db.engine.url.database, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        assert db.run_sync(store.credential_with_owner, b"\x07" * 16)[1] == passkey
        assert time.monotonic() - started < 1  # the busy timeout is 15 s
    finally:
        other.execute("ROLLBACK")
        other.close()
