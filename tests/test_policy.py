"""Lockout and trusted devices, with no HTTP."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from sqlalchemy import select

from server import devices, policy, store
from server.models import TrustedDevice
from conftest import add_customer


def test_failures_lock_at_the_threshold_once(app, clock):
    db = app.state.ctx.db
    user = add_customer(app)
    outcomes = [db.run_sync(policy.count_failure, user.id, now=clock(), lock_after=3) for _ in range(5)]
    assert [o.failures for o in outcomes] == [1, 2, 3, 4, 5]
    assert [o.locked_now for o in outcomes] == [False, False, True, False, False]
    assert db.run_sync(store.user_by_id, user.id).locked_at == clock()


def test_a_login_resets_the_count(app, clock):
    db = app.state.ctx.db
    user = add_customer(app)
    db.run_sync(policy.count_failure, user.id, now=clock(), lock_after=3)
    db.run_sync(policy.count_failure, user.id, now=clock(), lock_after=3)
    db.run_sync(store.record_login, user.id, clock())
    assert not db.run_sync(policy.count_failure, user.id, now=clock(), lock_after=3).locked_now
    assert db.run_sync(store.user_by_id, user.id).failed_logins == 1


def test_trusted_device_token_is_random_hashed_and_bound(app, clock):
    db = app.state.ctx.db
    taro = add_customer(app)
    hana = add_customer(app, code="HANA5678", email="hana@example.com")
    token = db.run_sync(devices.remember, user_id=taro.id, now=clock(), days=30, user_agent="UA")
    assert len(token) >= 43  # 32 random bytes, base64url: 256 bits
    stored = db.run_sync(lambda d: d.execute(select(TrustedDevice)).one())
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest() and token not in stored.token_hash
    assert db.run_sync(devices.recognise, token, user_id=taro.id, now=clock()) is not None
    assert db.run_sync(devices.recognise, token, user_id=hana.id, now=clock()) is None
    assert db.run_sync(devices.recognise, token + "x", user_id=taro.id, now=clock()) is None
    assert db.run_sync(devices.recognise, None, user_id=taro.id, now=clock()) is None


def test_trusted_device_expires_after_its_days(app, clock):
    db = app.state.ctx.db
    user = add_customer(app)
    token = db.run_sync(devices.remember, user_id=user.id, now=clock(), days=30, user_agent=None)
    clock.now += timedelta(days=30) - timedelta(seconds=1)
    assert db.run_sync(devices.recognise, token, user_id=user.id, now=clock()) is not None
    clock.advance(1)
    assert db.run_sync(devices.recognise, token, user_id=user.id, now=clock()) is None


def test_forgetting_devices_revokes_them(app, clock):
    db = app.state.ctx.db
    user = add_customer(app)
    token = db.run_sync(devices.remember, user_id=user.id, now=clock(), days=30, user_agent=None)
    assert db.run_sync(devices.forget_all, user.id) == 1
    assert db.run_sync(devices.recognise, token, user_id=user.id, now=clock()) is None


def _session(method):
    from server.models import Session
    return Session(id_hash="x", state="active", auth_method=method, created_at=None, last_seen_at=None)


def test_before_the_mandatory_date_any_two_step_session_qualifies(settings):
    import dataclasses
    from datetime import datetime, timezone
    date = datetime(2027, 4, 1, tzinfo=timezone.utc)
    s = dataclasses.replace(settings, passkey_mandatory_from=date)
    before = datetime(2027, 3, 31, 23, 59, 59, tzinfo=timezone.utc)
    for method in ("email_code", "trusted_device", "passkey"):
        assert policy.important_operations_reason(_session(method), s, before) is None
    assert policy.trusted_devices_apply(s, before)
    for method in ("email_code", "trusted_device"):
        assert policy.important_operations_reason(_session(method), s, date).reason == "passkey_required"
    assert policy.important_operations_reason(_session("passkey"), s, date) is None
    assert not policy.trusted_devices_apply(s, date)
    # No date: never mandatory.
    assert policy.important_operations_reason(_session("email_code"), settings, date) is None
