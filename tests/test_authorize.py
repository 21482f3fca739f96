"""Decisions for the broker's other services: POST /api/authorize and GET /auth/check."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from server import policy
from server.models import SecurityEvent
from softkey import SoftKey, b64url_decode
from conftest import ORIGIN, PASSWORD, add_customer, login

OPERATIONS = policy.IMPORTANT_OPERATIONS
DATE_IN = timedelta(hours=1)  # the passkey date, one hour after the clock's start


_OPEN: list[TestClient] = []


@pytest.fixture(autouse=True)
def _close_clients():
    yield
    while _OPEN:
        _OPEN.pop().__exit__(None, None, None)


@pytest.fixture
def app(make_app, clock):
    # Holds on new passkeys have tests of their own (test_walkarounds.py).
    return make_app(passkey_mandatory_from=clock() + DATE_IN, new_passkey_hold=0)


def session_of(kind, app, mailsink):
    """A client logged in the given way ("none", "email_code", "trusted_device", "passkey")."""
    c = TestClient(app, headers={"Origin": ORIGIN})
    c.__enter__()
    _OPEN.append(c)
    if kind == "none":
        return c
    login(c, mailsink)
    key = SoftKey()
    opts = c.post("/api/passkeys/register/options", json={}).json()["publicKey"]
    cred = key.create(b64url_decode(opts["challenge"]), user_handle=b64url_decode(opts["user"]["id"]))
    assert c.post("/api/passkeys/register/verify", json={"credential": cred}).status_code == 201
    c.post("/api/logout")
    if kind == "trusted_device":  # remembered after the passkey was added: adding one forgets remembered PCs
        login(c, mailsink, remember=True)
        c.post("/api/logout")
    if kind == "passkey":
        opts = c.post("/api/login/passkey/options", json={}).json()["publicKey"]
        assert c.post("/api/login/passkey/verify", json=key.get(b64url_decode(opts["challenge"]))).status_code == 200
    elif kind == "email_code":
        login(c, mailsink)
    else:
        r = c.post("/api/login/password", json={"customer_code": "TARO1234", "password": PASSWORD})
        assert r.json()["status"] == "ok"
    assert c.get("/api/session").json()["auth_method"] == kind
    c.passkey = key  # for passkey step-ups
    return c


def decide(c, operation):
    return c.post("/api/authorize", json={"operation": operation})


def check(c, operation=None):
    return c.get("/auth/check", params={"operation": operation} if operation else None)


@pytest.fixture
def customer(app):
    return add_customer(app)


# Before the date: any two-step session, with a recent verification.
@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("kind,expected", [("passkey", 200), ("email_code", 200), ("trusted_device", 403),
                                           ("none", 401)])
def test_before_the_date(app, customer, mailsink, operation, kind, expected):
    c = session_of(kind, app, mailsink)
    r, fa = decide(c, operation), check(c, operation)
    assert r.status_code == fa.status_code == expected
    if expected == 200:
        assert r.json() == {"allowed": True, "customer_code": "TARO1234", "auth_method": kind}
        assert fa.headers["x-tobira-customer"] == "TARO1234" and fa.headers["x-tobira-auth-method"] == kind
    elif expected == 403:  # a remembered PC verified nothing: it must step up first
        assert r.json()["error"]["code"] == fa.json()["error"]["code"] == "step_up_required"
    else:
        assert r.json()["error"]["code"] == fa.json()["error"]["code"] == "not_authenticated"


def _past_the_date(c, clock):
    for _ in range(4):  # an hour, keeping the session alive
        clock.advance(DATE_IN.total_seconds() / 4)
        c.get("/api/session")


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("kind", ["email_code", "trusted_device"])
def test_after_the_date_legacy_sessions_need_a_passkey(app, customer, mailsink, clock, operation, kind):
    c = session_of(kind, app, mailsink)
    _past_the_date(c, clock)
    for r in (decide(c, operation), check(c, operation)):
        assert r.status_code == 403 and r.json()["error"]["code"] == "passkey_required"


def test_passkey_required_wins_over_step_up_required(app, customer, mailsink, clock):
    c = session_of("trusted_device", app, mailsink)  # not verified and not passkey
    _past_the_date(c, clock)
    assert decide(c, "trade").json()["error"]["code"] == "passkey_required"


def test_after_the_date_a_passkey_session_needs_a_passkey_step_up(app, customer, mailsink, clock):
    c = session_of("passkey", app, mailsink)
    _past_the_date(c, clock)  # the login's verification is now an hour old
    assert decide(c, "withdrawal").json()["error"]["code"] == "step_up_required"
    # An e-mailed code does not count any more ...
    c.post("/api/step-up/code/send")
    c.post("/api/step-up/code", json={"code": mailsink.last_code("taro@example.com")})
    assert decide(c, "withdrawal").json()["error"]["code"] == "step_up_required"
    # ... a passkey does.
    opts = c.post("/api/step-up/passkey/options", json={}).json()["publicKey"]
    assert c.post("/api/step-up/passkey/verify",
                  json=c.passkey.get(b64url_decode(opts["challenge"]))).status_code == 200
    assert decide(c, "withdrawal").status_code == 200


def test_stale_verification_needs_a_step_up_before_the_date(app, customer, mailsink, clock):
    c = session_of("email_code", app, mailsink)
    clock.advance(601)
    c.get("/api/session")
    assert decide(c, "trade").json()["error"]["code"] == "step_up_required"
    c.post("/api/step-up/code/send")
    c.post("/api/step-up/code", json={"code": mailsink.last_code("taro@example.com")})
    assert decide(c, "trade").status_code == 200


def test_check_without_operation_only_asks_for_a_session(app, customer, mailsink, clock):
    c = session_of("trusted_device", app, mailsink)
    _past_the_date(c, clock)
    r = check(c)
    assert r.status_code == 200 and r.headers["x-tobira-auth-method"] == "trusted_device"
    c.post("/api/logout")
    r = check(c)
    assert r.status_code == 401 and r.json()["error"]["code"] == "not_authenticated"


def test_unknown_operation(app, customer, mailsink):
    c = session_of("email_code", app, mailsink)
    for r in (decide(c, "launch_rocket"), check(c, "launch_rocket")):
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    assert c.post("/api/authorize", json={}).status_code == 422


def test_refusals_are_recorded(app, customer, mailsink):
    c = session_of("trusted_device", app, mailsink)
    decide(c, "withdrawal")
    events = app.state.ctx.db.run_sync(lambda d: list(d.execute(select(SecurityEvent))))
    refused = [e for e in events if e.kind == "authorization_refused"]
    assert len(refused) == 1 and '"operation": "withdrawal"' in refused[0].detail


def test_customer_changes_their_email(app, customer, mailsink):
    c = session_of("email_code", app, mailsink)
    c.post("/api/logout")
    login(c, mailsink, remember=True)  # a remembered PC, to see it forgotten
    r = c.post("/api/account/email", json={"email": "new@example.com"})
    assert r.status_code == 200 and r.json() == {"status": "ok", "email": "new@example.com"}
    told = mailsink.wait_for(lambda m: "taro@example.com" in m["To"] and "メールアドレスを変更" in str(m["Subject"]))
    from mailsink import body
    assert "n***@example.com" in body(told) and "http" not in body(told)
    c.post("/api/logout")
    r = c.post("/api/login/password", json={"customer_code": "TARO1234", "password": PASSWORD})
    assert r.json()["status"] == "code_sent", "remembered PCs are forgotten"
    assert mailsink.last_code("new@example.com")


def test_email_change_needs_a_recent_step_up(app, customer, mailsink, clock):
    c = session_of("email_code", app, mailsink)
    clock.advance(601)
    r = c.post("/api/account/email", json={"email": "new@example.com"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "step_up_required"


def test_email_change_after_the_date_needs_a_passkey_session(app, customer, mailsink, clock):
    c = session_of("email_code", app, mailsink)
    _past_the_date(c, clock)
    r = c.post("/api/account/email", json={"email": "new@example.com"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "passkey_required"


@pytest.mark.parametrize("bad", ["not-an-email", "a@b", "x" * 250 + "@example.com", "a b@example.com"])
def test_email_change_refuses_bad_addresses(app, customer, mailsink, bad):
    c = session_of("email_code", app, mailsink)
    r = c.post("/api/account/email", json={"email": bad})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"


def test_email_change_needs_a_session(app, customer):
    with TestClient(app, headers={"Origin": ORIGIN}) as c:
        assert c.post("/api/account/email", json={"email": "new@example.com"}).status_code == 401


# --- telling customers in time ---------------------------------------------------------------


def test_banner_before_the_date_until_there_is_a_passkey(app, customer, mailsink):
    c = TestClient(app, headers={"Origin": ORIGIN})
    with c:
        login(c, mailsink)
        for path in ("/account", "/account/activity", "/account/passkeys"):
            html = c.get(path).text
            assert 'id="passkey-banner"' in html and "パスキーでのログインが必要になります" in html, path
            assert 'id="banner-passkey-create"' in html
        en = c.get("/account?lang=en").text
        assert "will need a login with a passkey" in en and "(Japan time)" in en
        key = SoftKey()
        opts = c.post("/api/passkeys/register/options", json={}).json()["publicKey"]
        c.post("/api/passkeys/register/verify", json={
            "credential": key.create(b64url_decode(opts["challenge"]), user_handle=b64url_decode(opts["user"]["id"]))})
        assert 'id="passkey-banner"' not in c.get("/account").text


def test_no_banner_without_a_date(make_app, mailsink):
    app = make_app()
    add_customer(app)
    with TestClient(app, headers={"Origin": ORIGIN}) as c:
        login(c, mailsink)
        assert 'id="passkey-banner"' not in c.get("/account").text


def test_after_the_date_a_password_login_lands_on_the_restriction_page(app, customer, mailsink, clock):
    clock.advance(DATE_IN.total_seconds())
    with TestClient(app, headers={"Origin": ORIGIN}) as c:
        r = login(c, mailsink)
        assert r.json()["redirect"] == "/account/passkey-required"
        html = c.get("/account/passkey-required").text
        assert "パスキーでのログインが必要です" in html and 'id="banner-passkey-create"' in html
        assert "パスキーを作成すると" in html
        # The account itself stays open (to see it and to set up a passkey), with the banner.
        html = c.get("/account").text
        assert "山田 太郎" in html and 'id="passkey-banner"' in html
