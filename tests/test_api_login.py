"""The legacy login through the JSON API, with mail captured by a real SMTP server."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from server import store
from server.models import OneTimeCode, SecurityEvent, Session
from mailsink import body
from conftest import ORIGIN, PASSWORD, add_customer, login


def password(client, code="TARO1234", pw=PASSWORD, **extra):
    return client.post("/api/login/password", json={"customer_code": code, "password": pw, **extra})


def enter(client, code, remember=None):
    payload = {"code": code} if remember is None else {"code": code, "remember_device": remember}
    return client.post("/api/login/code", json=payload)


def wrong(code):
    return f"{(int(code) + 1) % 1_000_000:06d}"


def rows(app, model):
    return app.state.ctx.db.run_sync(lambda d: list(d.execute(select(model))))


# --- step 1 ----------------------------------------------------------------------------------


def test_password_sends_a_code_by_mail(client, customer, mailsink):
    r = password(client)
    assert r.status_code == 200 and r.json() == {"status": "code_sent"}
    msg = mailsink.wait_for(lambda m: "taro@example.com" in m["To"])
    text = body(msg)
    assert re.search(r"^\d{6}\r?$", text, re.M), "the code stands alone on its own line"
    assert msg.get_content_charset() == "utf-8" and msg.get_content_type() == "text/plain"
    assert "http" not in text.lower(), "no e-mail carries a link"


def test_unknown_customer_and_wrong_password_look_the_same(client, customer, app, monkeypatch):
    verified = []
    hasher = app.state.ctx.passwords._hasher

    class Spy:  # records which hash argon2id actually checked
        def verify(self, h, p):
            verified.append(h)
            return hasher.verify(h, p)

    monkeypatch.setattr(app.state.ctx.passwords, "_hasher", Spy())
    unknown = password(client, code="NOBODY99")
    bad_format = password(client, code="x")
    wrong_pw = password(client, pw="not the password")
    assert unknown.status_code == bad_format.status_code == wrong_pw.status_code == 401
    assert unknown.json() == bad_format.json() == wrong_pw.json()
    assert unknown.json()["error"]["code"] == "invalid_credentials"
    # Same work: every attempt runs one argon2id verification (a dummy hash for strangers).
    assert len(verified) == 3 and all(h and h.startswith("$argon2id$") for h in verified)
    assert set(unknown.headers) == set(wrong_pw.headers)


def test_wrong_or_missing_fields(client, customer):
    assert client.post("/api/login/password", json={"customer_code": "TARO1234"}).status_code == 422
    r = client.post("/api/login/password", json={"customer_code": 12345678, "password": PASSWORD})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    assert client.post("/api/login/code", json={"code": 123456}).status_code == 422
    assert client.post("/api/login/code", json={"code": "123456", "remember_device": "yes"}).status_code == 422


# --- step 2 ----------------------------------------------------------------------------------


def test_code_completes_login_with_a_new_session_id(client, customer, mailsink, app):
    password(client)
    pending_cookie = client.cookies.get("tobira_session")
    r = enter(client, mailsink.last_code("taro@example.com"))
    assert r.status_code == 200 and r.json() == {"status": "ok", "redirect": "/account"}
    assert client.cookies.get("tobira_session") != pending_cookie
    s = client.get("/api/session").json()
    assert s["customer_code"] == "TARO1234" and s["display_name"] == "山田 太郎"
    assert s["auth_method"] == "email_code" and s["verified_at"] == s["authenticated_at"]
    assert s["authenticated_at"].endswith("+00:00")
    # The pending session is gone for good: its cookie is worth nothing now.
    with TestClient(app, headers={"Origin": ORIGIN}, cookies={"tobira_session": pending_cookie}) as other:
        assert other.get("/api/session").status_code == 401
        assert enter(other, "000000").json()["error"]["code"] == "no_pending_login"


def test_code_without_pending_login(client, customer):
    r = enter(client, "123456")
    assert r.status_code == 401 and r.json()["error"]["code"] == "no_pending_login"


def test_attempts_left_counts_down_then_code_is_exhausted(client, customer, mailsink):
    password(client)
    code = mailsink.last_code("taro@example.com")
    first, second, third = (enter(client, wrong(code)) for _ in range(3))
    assert first.status_code == 400 and first.json()["error"]["code"] == "code_invalid"
    assert first.json()["error"]["attempts_left"] == 2 and "2" in first.json()["error"]["message"]
    assert second.json()["error"]["attempts_left"] == 1
    assert third.status_code == 400 and third.json()["error"]["code"] == "code_exhausted"
    # Void for good: the right code no longer works.
    assert enter(client, code).json()["error"]["code"] == "code_exhausted"


def test_code_expires(client, customer, mailsink, clock):
    password(client)
    code = mailsink.last_code("taro@example.com")
    clock.advance(300)
    r = enter(client, code)
    assert r.status_code == 400 and r.json()["error"]["code"] == "code_expired"


def test_full_width_code_is_accepted(client, customer, mailsink):
    password(client)
    code = mailsink.last_code("taro@example.com")
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in code)
    assert enter(client, f" {full_width} ").status_code == 200


@pytest.mark.parametrize("typed", ["abc", "", "12345", "1" * 64])
def test_junk_is_a_wrong_entry_not_a_crash(client, customer, mailsink, typed):
    password(client)
    r = enter(client, typed)
    assert r.status_code == 400 and r.json()["error"] == {
        "code": "code_invalid", "attempts_left": 2, "message": r.json()["error"]["message"]}


def test_a_code_is_used_once_even_in_parallel(client, customer, mailsink, app):
    password(client)
    code = mailsink.last_code("taro@example.com")
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: enter(client, code).status_code, range(8)))
    assert answers.count(200) == 1
    assert len([s for s in rows(app, Session) if s.state == "active"]) == 1


# --- resend ----------------------------------------------------------------------------------


def test_resend_waits_then_voids_the_old_code(client, customer, mailsink, clock):
    password(client)
    old = mailsink.last_code("taro@example.com")
    r = client.post("/api/login/code/resend")
    assert r.status_code == 429 and r.json()["error"]["code"] == "resend_too_soon"
    assert r.json()["error"]["retry_after"] == 30 and r.headers["retry-after"] == "30"
    clock.advance(30)
    mailsink.clear()
    r = client.post("/api/login/code/resend", json={})
    assert r.status_code == 200 and r.json() == {"status": "code_sent"}
    new = mailsink.last_code("taro@example.com")
    if new != old:
        assert enter(client, old).json()["error"]["code"] == "code_invalid"
    assert enter(client, new).status_code == 200


def test_resend_after_exhaustion_gives_a_working_code(client, customer, mailsink, clock):
    password(client)
    code = mailsink.last_code("taro@example.com")
    for _ in range(3):
        enter(client, wrong(code))
    clock.advance(30)
    mailsink.clear()
    assert client.post("/api/login/code/resend").status_code == 200
    assert enter(client, mailsink.last_code("taro@example.com")).status_code == 200


def test_resend_without_pending_login(client, customer):
    assert client.post("/api/login/code/resend").json()["error"]["code"] == "no_pending_login"


# --- lockout ---------------------------------------------------------------------------------


def test_consecutive_failures_lock_the_account(client, customer, mailsink, app, clock):
    # 6 wrong passwords + 3 wrong codes + 1 more wrong code after a resend = 10.
    for _ in range(6):
        assert password(client, pw="wrong password").status_code == 401
    password(client)
    code = mailsink.last_code("taro@example.com")
    for _ in range(3):
        enter(client, wrong(code))
    clock.advance(30)
    client.post("/api/login/code/resend")
    code = mailsink.last_code("taro@example.com")
    tenth = enter(client, wrong(code))
    assert tenth.status_code == 400 and tenth.json()["error"]["code"] == "code_invalid"
    assert app.state.ctx.db.run_sync(store.user_by_code, "TARO1234").locked_at is not None
    lock_mail = mailsink.wait_for(lambda m: "taro@example.com" in m["To"] and "ロック" in str(m["Subject"]))
    assert "http" not in body(lock_mail)
    # From now on the password is not checked: the right one is answered exactly like a wrong one.
    right, still_wrong = password(client), password(client, pw="still wrong")
    assert right.status_code == still_wrong.status_code == 401
    assert right.json() == still_wrong.json() and right.json()["error"]["code"] == "invalid_credentials"


def test_the_locking_failure_answers_as_a_failure(make_app, mailsink):
    app = make_app(lock_after_failures=2)
    add_customer(app)
    with TestClient(app, headers={"Origin": ORIGIN}) as c:
        assert password(c, pw="wrong one").status_code == 401
        assert password(c, pw="wrong two").json()["error"]["code"] == "invalid_credentials"
        assert password(c).json()["error"]["code"] == "invalid_credentials"  # locked: not even checked


def test_parallel_wrong_passwords_all_count(make_app):
    app = make_app(lock_after_failures=5)
    add_customer(app)
    with TestClient(app, headers={"Origin": ORIGIN}) as c:
        with ThreadPoolExecutor(5) as pool:
            list(pool.map(lambda _: password(c, pw="wrong password"), range(5)))
        assert app.state.ctx.db.run_sync(store.user_by_code, "TARO1234").locked_at is not None
        assert password(c).status_code == 401


def test_unlock_restores_login(client, customer, app, mailsink):
    from server import accounts
    db = app.state.ctx.db
    db.run_sync(lambda d: store.lock_user(d, customer.id, app.state.ctx.clock()))
    assert password(client).status_code == 401
    db.run_sync(accounts.unlock, "TARO1234", now=app.state.ctx.clock())
    login(client, mailsink)
    assert client.get("/api/session").status_code == 200


def test_code_entry_on_a_locked_account_is_refused(client, customer, app, mailsink):
    password(client)
    code = mailsink.last_code("taro@example.com")
    app.state.ctx.db.run_sync(lambda d: store.lock_user(d, customer.id, app.state.ctx.clock()))
    assert enter(client, code).status_code == 423


# --- trusted device --------------------------------------------------------------------------


def test_remember_this_pc_skips_the_code_next_time(client, customer, mailsink):
    r = login(client, mailsink, remember=True)
    set_cookie = [v for k, v in r.headers.multi_items() if k == "set-cookie" and v.startswith("tobira_device=")]
    assert set_cookie and "HttpOnly" in set_cookie[0] and "samesite=lax" in set_cookie[0].lower()
    assert "Max-Age=2592000" in set_cookie[0]
    client.post("/api/logout")
    mailsink.clear()
    r = password(client)
    assert r.json() == {"status": "ok", "redirect": "/account"}
    s = client.get("/api/session").json()
    assert s["auth_method"] == "trusted_device" and s["verified_at"] is None
    assert not [m for m in mailsink.to("taro@example.com") if re.search(r"^\d{6}\r?$", body(m), re.M)]


def test_a_remembered_pc_login_resets_the_failures_it_follows(client, customer, mailsink, app):
    """The failures before a right password are no longer consecutive: nine wrong guesses, a login
    from the remembered PC, and one typo later the account is not locked (security.md 20)."""
    login(client, mailsink, remember=True)
    client.post("/api/logout")
    for _ in range(9):
        assert password(client, pw="wrong password").status_code == 401
    assert password(client).json()["status"] == "ok"
    user = app.state.ctx.db.run_sync(store.user_by_code, "TARO1234")
    assert user.failed_logins == 0 and user.last_login_at is not None
    client.post("/api/logout")
    assert password(client, pw="wrong password").status_code == 401
    assert app.state.ctx.db.run_sync(store.user_by_code, "TARO1234").locked_at is None


def test_parallel_resends_of_one_pending_login_never_fail(client, customer, mailsink, clock):
    """A double click on "send again": the live code is locked while it is replaced, so the
    answers are sent codes or resend_too_soon, never a server error."""
    password(client)
    clock.advance(30)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: client.post("/api/login/code/resend").status_code, range(4)))
    assert set(answers) <= {200, 429} and 200 in answers
    assert enter(client, mailsink.last_code("taro@example.com")).status_code == 200


def test_trusted_device_still_needs_the_password(client, customer, mailsink):
    login(client, mailsink, remember=True)
    client.post("/api/logout")
    assert password(client, pw="wrong password").status_code == 401


def test_trusted_device_of_one_customer_does_not_help_another(client, customer, app, mailsink):
    add_customer(app, code="HANA5678", email="hana@example.com")
    login(client, mailsink, remember=True)
    client.post("/api/logout")
    assert password(client, code="HANA5678").json()["status"] == "code_sent"


def test_without_remember_the_code_is_asked_again(client, customer, mailsink):
    login(client, mailsink)
    client.post("/api/logout")
    assert password(client).json()["status"] == "code_sent"


def test_new_email_forgets_trusted_devices(client, customer, mailsink, app):
    from server import accounts
    login(client, mailsink, remember=True)
    client.post("/api/logout")
    app.state.ctx.db.run_sync(accounts.set_email, "TARO1234", "taro2@example.com", now=app.state.ctx.clock())
    assert password(client).json()["status"] == "code_sent"


# --- notification ----------------------------------------------------------------------------


def test_login_notification_says_when_how_and_from_where(client, customer, mailsink):
    client.headers["User-Agent"] = "Mozilla/5.0 (Windows NT 10.0) Chrome/156.0 TestBrowser"
    login(client, mailsink)
    msg = mailsink.wait_for(lambda m: "ログインのお知らせ" in str(m["Subject"]))
    text = body(msg)
    assert "2026年11月20日 10:00（日本時間）" in text  # the clock's 01:00 UTC, in JST
    assert "メールの確認コード" in text and "testclient" in text
    assert "ブラウザ：Windows の Chrome\n" in text and "TestBrowser" not in text  # a summary, never the header
    assert "お客様サポート" in text and "http" not in text.lower()


def test_notification_in_english_on_request(client, customer, mailsink):
    client.headers["Accept-Language"] = "en-US,en;q=0.9,ja;q=0.5"
    login(client, mailsink)
    msg = mailsink.wait_for(lambda m: "New login" in str(m["Subject"]))
    assert "2026-11-20 10:00 (Japan time)" in body(msg)


def test_every_login_records_an_event(client, customer, mailsink, app):
    password(client, pw="wrong password")
    login(client, mailsink)
    # In the order they happened (ids grow; a SELECT without ORDER BY promises no order). The run's
    # own three come last, after account_created: the check once compared four with three, was
    # never true, and fell through to a bare count.
    kinds = [e.kind for e in sorted(rows(app, SecurityEvent), key=lambda e: e.id)]
    assert kinds[-3:] == ["login_failed", "code_sent", "login"], kinds
    assert kinds.count("login") == 1 and kinds.count("login_failed") == 1
    assert all(PASSWORD not in (e.detail or "") for e in rows(app, SecurityEvent))


# --- mail failure ----------------------------------------------------------------------------


def test_mail_failure_leaves_no_half_made_login(make_app):
    from server.config import SmtpSettings
    from mailsink import free_port
    app = make_app(smtp=SmtpSettings(host="127.0.0.1", port=free_port(), security="plain"))  # nobody listens
    add_customer(app)
    with TestClient(app, headers={"Origin": ORIGIN}) as c:
        r = password(c)
        assert r.status_code == 503 and r.json()["error"]["code"] == "mail_unavailable"
        assert "メール" in r.json()["error"]["message"]
        assert rows(app, Session) == [] and rows(app, OneTimeCode) == []
        assert enter(c, "123456").json()["error"]["code"] == "no_pending_login"


# --- session ---------------------------------------------------------------------------------


def test_session_requires_login(client):
    r = client.get("/api/session")
    assert r.status_code == 401 and r.json()["error"]["code"] == "not_authenticated"


def test_logout_ends_the_session_for_good(client, customer, mailsink, app):
    login(client, mailsink)
    cookie = client.cookies.get("tobira_session")
    r = client.post("/api/logout")
    assert r.status_code == 204 and r.content == b""
    with TestClient(app, headers={"Origin": ORIGIN}, cookies={"tobira_session": cookie}) as replay:
        assert replay.get("/api/session").status_code == 401
    assert client.get("/api/session").status_code == 401
    assert rows(app, Session) == []


def test_idle_timeout(client, customer, mailsink, clock):
    login(client, mailsink)
    clock.advance(29 * 60)
    assert client.get("/api/session").status_code == 200
    clock.advance(29 * 60)
    assert client.get("/api/session").status_code == 200  # activity moved the idle clock
    clock.advance(30 * 60 + 1)
    assert client.get("/api/session").status_code == 401


def test_absolute_timeout(client, customer, mailsink, clock):
    login(client, mailsink)
    for _ in range(12 * 3 + 1):
        clock.advance(20 * 60)
        last = client.get("/api/session").status_code
    assert last == 401


def test_session_cookie_attributes_on_http(client, customer, mailsink):
    r = login(client, mailsink)
    cookie = [v for k, v in r.headers.multi_items() if k == "set-cookie" and "tobira_session=" in v][0]
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower() and "Path=/" in cookie
    assert "Secure" not in cookie and "Domain" not in cookie


def test_https_cookies_are_secure_and_host_prefixed(make_app):
    app = make_app(origins=("https://example.com",), rp_id="example.com")
    add_customer(app)
    https_origin = {"Origin": "https://example.com"}
    with TestClient(app, base_url="https://example.com", headers=https_origin) as c:
        r = password(c)
        cookie = [v for k, v in r.headers.multi_items() if k == "set-cookie"][0]
        assert cookie.startswith("__Host-tobira_session=")
        assert "Secure" in cookie and "HttpOnly" in cookie and "Domain" not in cookie and "Path=/" in cookie
        assert "max-age=63072000" in c.get("/login").headers["strict-transport-security"]


def test_session_id_has_256_bits_and_only_its_hash_is_stored(client, customer, mailsink, app):
    login(client, mailsink)
    raw = client.cookies.get("tobira_session").split(".")[0]
    assert len(raw) >= 43
    stored = rows(app, Session)[0].id_hash
    assert raw not in stored and len(stored) == 64


def test_forged_cookie_is_ignored(client, customer, mailsink, app):
    login(client, mailsink)
    raw = client.cookies.get("tobira_session")
    assert client.get("/api/session").status_code == 200
    session_id, _, signature = raw.partition(".")
    forged = [session_id + "." + signature[::-1], session_id[::-1] + "." + signature, session_id, "x" * 500]
    for value in forged:
        with TestClient(app, headers={"Origin": ORIGIN}, cookies={"tobira_session": value}) as other:
            assert other.get("/api/session").status_code == 401


def test_redirect_goes_back_to_where_login_started(client, customer, mailsink):
    password(client, next="/account?tab=1")
    assert enter(client, mailsink.last_code("taro@example.com")).json()["redirect"] == "/account?tab=1"


@pytest.mark.parametrize("evil", ["https://evil.example", "//evil.example", "/\\evil.example", "javascript:x", "/login"])
def test_redirect_never_leaves_the_site(client, customer, mailsink, evil):
    password(client, next=evil)
    assert enter(client, mailsink.last_code("taro@example.com")).json()["redirect"] == "/account"


def test_session_reports_the_passkey_rule(make_app, mailsink, clock):
    from datetime import timedelta
    app = make_app(passkey_mandatory_from=clock() + timedelta(hours=1))
    add_customer(app)
    with TestClient(app, headers={"Origin": ORIGIN}) as c:
        login(c, mailsink, remember=True)
        s = c.get("/api/session").json()
        assert (s["important_operations_allowed"], s["important_operations_reason"]) == (True, None)
        for _ in range(3):  # an hour, with activity so the session stays alive
            clock.advance(1200)
            s = c.get("/api/session").json()
        assert (s["important_operations_allowed"], s["important_operations_reason"]) == (False, "passkey_required")
        # From the date, the remembered PC no longer skips the code.
        c.post("/api/logout")
        assert password(c).json()["status"] == "code_sent"


@pytest.mark.parametrize("synced, flags", [(False, 0x01 | 0x04 | 0x08), (True, 0x01 | 0x04)],
                         ids=["device-bound-now-BE", "synced-now-not-BE"])
def test_case35_a_passkey_login_whose_backup_eligibility_differs_from_the_stored_one_is_refused(
        client, customer, mailsink, app, synced, flags):
    """security.md case 35 through the API: a validly signed assertion whose BE flag (0x08) is not
    the one stored at registration is refused like a bad signature, and changes nothing."""
    from server.models import Credential
    from softkey import ES256, SoftKey, b64url_decode

    login(client, mailsink)
    opts = client.post("/api/passkeys/register/options", json={}).json()["publicKey"]
    key = SoftKey(ES256, synced=synced)
    created = key.create(b64url_decode(opts["challenge"]), user_handle=b64url_decode(opts["user"]["id"]))
    assert client.post("/api/passkeys/register/verify", json={"credential": created}).status_code == 201
    assert rows(app, Credential)[0].backup_eligible is synced
    client.post("/api/logout")

    def passkey_login(**overrides):
        challenge = client.post("/api/login/passkey/options", json={}).json()["publicKey"]["challenge"]
        return client.post("/api/login/passkey/verify", json=key.get(b64url_decode(challenge), **overrides))

    r = passkey_login(flags=flags)
    assert r.status_code == 401 and r.json()["error"]["code"] == "passkey_rejected"
    assert client.get("/api/session").status_code == 401
    assert rows(app, Credential)[0].sign_count == 0 and rows(app, Credential)[0].last_used_at is None
    assert any(e.kind == "login_failed" and "flags" in (e.detail or "") for e in rows(app, SecurityEvent))
    assert passkey_login().status_code == 200  # the same passkey, its flags as registered
