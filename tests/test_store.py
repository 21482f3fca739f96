"""The data layer (store.py, db.Database): typed rows that hold what the tables hold, on both
databases; single-use reads; driver errors and lost connections as outages (503), never a 500."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import SQLModel

from server import rows, sessions, store
from server.errors import Unavailable
from server.models import Ceremony, Credential, Session, User
from conftest import add_customer

ROWS = {"users": rows.UserRow, "sessions": rows.SessionRow, "one_time_codes": rows.CodeRow,
        "trusted_devices": rows.DeviceRow, "security_events": rows.EventRow, "rate_limits": rows.WindowRow,
        "credentials": rows.CredentialRow, "ceremonies": rows.CeremonyRow, "oauth_clients": rows.ClientRow,
        "signing_keys": rows.SigningKeyRow, "oauth_grants": rows.GrantRow, "oauth_codes": rows.AuthorizationCodeRow,
        "oauth_refresh_tokens": rows.RefreshTokenRow, "logout_deliveries": rows.LogoutDeliveryRow,
        "staff": rows.StaffRow, "staff_credentials": rows.StaffCredentialRow, "staff_ceremonies": rows.StaffCeremonyRow,
        "staff_sessions": rows.StaffSessionRow, "staff_requests": rows.StaffRequestRow, "audit_log": rows.AuditRow}


def test_every_table_has_its_row_with_the_columns_in_order():
    """store.py builds rows from `select(table)` by position: a column added to a table and not to
    its row (or in another place) must fail here, not mix values up at run time."""
    # The outbox is read only by the mail sender, as ClaimedMail (its own columns, by name).
    assert set(ROWS) | {"mail_outbox"} == set(SQLModel.metadata.tables)
    for name, row in ROWS.items():
        assert [f.name for f in dataclasses.fields(row)] == list(SQLModel.metadata.tables[name].columns.keys()), name


def test_rows_hold_what_the_tables_hold(app):
    db = app.state.ctx.db
    user = add_customer(app)
    when = datetime(2026, 11, 21, 9, 30, 15, 123456, tzinfo=timezone(timedelta(hours=9)))
    made = db.run_sync(lambda d: sessions.create(d, now=when, state=sessions.ACTIVE, user=user, auth_method="passkey",
                                                 verified=True, ip="203.0.113.5", user_agent="UA"))
    row = db.run_sync(store.session_by_hash, made.row.id_hash)
    assert row == made.row
    raw = db.run_sync(lambda d: d.execute(select(Session).where(Session.id_hash == made.row.id_hash)).one())
    assert dataclasses.astuple(row) == tuple(raw)
    assert row.created_at == when and row.created_at.tzinfo == timezone.utc  # aware UTC, microseconds kept
    u_row = db.run_sync(store.user_by_id, user.id)
    assert dataclasses.astuple(u_row) == tuple(db.run_sync(lambda d: d.execute(select(User).where(User.id == user.id)).one()))
    assert isinstance(u_row.user_handle, bytes) and len(u_row.user_handle) == 32
    with pytest.raises(dataclasses.FrozenInstanceError):
        u_row.email = "x@example.com"  # type: ignore[misc]  # what this test checks: rows are read-only


def test_a_naive_datetime_is_refused_and_nothing_is_written(app):
    """A naive datetime could mean any zone: the column type refuses it rather than guess UTC."""
    db = app.state.ctx.db
    user = add_customer(app)
    naive = datetime(2026, 11, 21, 9, 30)
    with pytest.raises(Exception, match="naive datetime"):
        db.run_sync(lambda d: sessions.create(d, now=naive, state=sessions.ACTIVE, user=user, auth_method="passkey"))
    count = db.run_sync(lambda d: d.read(select(Session).where(Session.user_id == user.id)).all())
    assert count == []


def test_a_passkey_and_its_owner_read_in_one_statement(app):
    db = app.state.ctx.db
    user = add_customer(app)
    stored = db.run_sync(store.add_credential, user_id=user.id, credential_id=b"\x01" * 16, public_key=b"\xa5\x01\x02",
                         algorithm=-7, sign_count=3, aaguid="00000000-0000-0000-0000-000000000000",
                         transports="internal", backup_eligible=True, backup_state=False, name="鍵",
                         created_at=datetime(2026, 11, 22, 1, 2, 3, tzinfo=timezone.utc), hold_until=None)
    db.run_sync(store.lock_user, user.id, datetime(2026, 11, 22, 4, 5, 6, tzinfo=timezone.utc))
    owner, credential = db.run_sync(store.credential_with_owner, b"\x01" * 16)
    assert credential == stored
    assert dataclasses.astuple(credential) == tuple(
        db.run_sync(lambda d: d.execute(select(Credential).where(Credential.id == stored.id)).one()))
    # the owner's columns are not the passkey's (both have id, created_at, ...)
    assert owner == db.run_sync(store.user_by_id, user.id) and owner.id == user.id
    assert owner.locked_at is not None and credential.backup_eligible is True and credential.backup_state is False
    assert db.run_sync(store.credential_with_owner, b"\x02" * 16) is None


def test_a_taken_ceremony_comes_back_whole_and_only_once(app):
    db = app.state.ctx.db
    made = db.run_sync(lambda d: sessions.create(d, now=datetime.now(timezone.utc), state=sessions.ANONYMOUS,
                                                 user=None))
    expires = datetime.now(timezone.utc) + timedelta(minutes=5)
    db.run_sync(store.add_ceremony, rows.CeremonyRow(challenge_hash="c" * 64, kind="login",
                                                     session_id_hash=made.row.id_hash, user_id=None,
                                                     challenge=b"\x00\xff" * 16, expires_at=expires))
    taken = db.run_sync(store.take_ceremony, challenge_hash="c" * 64, session_id_hash=made.row.id_hash, kind="login")
    assert (taken.challenge, taken.expires_at, taken.user_id) == (b"\x00\xff" * 16, expires, None)
    assert db.run_sync(store.take_ceremony, challenge_hash="c" * 64, session_id_hash=made.row.id_hash,
                       kind="login") is None
    assert db.run_sync(lambda d: d.execute(select(Ceremony)).all()) == []


def test_driver_errors_become_sqlalchemy_errors(app):
    db = app.state.ctx.db
    with pytest.raises(DBAPIError):
        db.run_sync(lambda d: d.execute(text("SELECT * FROM no_such_table WHERE id = :id"), {"id": 1}))


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # a server connection to terminate
def test_a_lost_connection_is_an_outage_not_a_crash(app):
    """Kill the transaction's own connection: 503 (Unavailable), and the
    next transaction works on a fresh connection."""
    db = app.state.ctx.db

    def killed(d):
        _terminate_own_connection(db, d)
        return store.user_by_id(d, 1)

    with pytest.raises(Unavailable):
        db.run_sync(killed)
    assert db.run_sync(store.count_credentials, 1) == 0


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # a server connection to terminate
def test_a_connection_lost_before_commit_is_an_outage(app):
    """The COMMIT goes through the same translation as the statements: a lost
    connection there is 503 (Unavailable), not the driver's own exception (a 500)."""
    db = app.state.ctx.db
    with pytest.raises(Unavailable):
        db.run_sync(lambda tx: _terminate_own_connection(db, tx))  # then the commit fails
    assert db.run_sync(store.count_credentials, 1) == 0


def _terminate_own_connection(db, transaction) -> None:
    """PostgreSQL ends the server process behind this transaction's connection (as in a crash)."""
    pid = transaction.execute(text("SELECT pg_backend_pid()")).scalar_one()
    with db.engine.connect() as other:
        other.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
        other.commit()


def test_a_database_that_cannot_be_opened_is_an_outage(tmp_path):
    """SQLite's kept connection is opened through the same translation as PostgreSQL's checkouts."""
    from server import db as dbmod

    database = dbmod.Database(dbmod.make_engine(f"sqlite:///{tmp_path}"))  # a directory, not a database file
    with pytest.raises(Unavailable):
        database.run_sync(lambda tx: None)


# --- the connections database threads keep --------------------------------------------------


def _backend_pid(tx) -> int:
    return tx.execute(text("SELECT pg_backend_pid()")).scalar_one()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_kept_connection_ended_by_the_server_is_replaced_without_a_failed_request(app):
    """A database thread keeps its connection between transactions. When PostgreSQL ends it while
    it is idle (a restart, an operator's pg_terminate_backend), the next transaction notices before
    using it and runs on a new one: no 503 for the customer who happens to come next."""
    import asyncio

    db = app.state.ctx.db

    async def on_database_threads():
        first = await db.run(_backend_pid)
        assert await db.run(_backend_pid) == first  # kept, not a new checkout each time
        with db.engine.connect() as other:
            other.exec_driver_sql(f"SELECT pg_terminate_backend({int(first)})")
            other.commit()
        await asyncio.sleep(0.2)  # the farewell reaches the kept connection's socket
        second = await db.run(_backend_pid)
        assert second != first
        return second

    asyncio.run(on_database_threads())


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_kept_connections_are_given_back_when_the_database_closes(app):
    import asyncio

    db = app.state.ctx.db
    asyncio.run(db.run(_backend_pid))
    assert db.engine.pool.checkedout() >= 1
    db.close()
    assert db.engine.pool.checkedout() == 0
    assert asyncio.run(db.run(_backend_pid))  # and it still works: a new one is taken


def test_a_thread_that_is_not_a_database_thread_keeps_no_postgresql_connection(app):
    """The CLI and tests run transactions on their own threads: those go back to the pool."""
    db = app.state.ctx.db
    db.run_sync(store.count_credentials, 1)
    expected = 1 if db.engine.dialect.name == "sqlite" else 0  # SQLite: one connection, kept by any thread
    assert db.engine.pool.checkedout() == expected
