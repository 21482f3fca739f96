"""The ways around "passkeys mandatory" (security.md 29-33, 40 and the hold of 31), each tried as an
attacker would: a phishing proxy enrolling its own passkey, the lock used against passkey customers,
parallel guesses, a refusal only a right password reaches. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest
from starlette.testclient import TestClient

from server import accounts, store
from server.models import Credential, SecurityEvent, TrustedDevice
from sqlalchemy import select
from mailsink import body
from softkey import SoftKey, b64url_decode
from conftest import ORIGIN, PASSWORD, add_customer, login

HOLD = 3600  # a short hold, so one session can outlive it


def new_client(app) -> TestClient:
    return TestClient(app, headers={"Origin": ORIGIN})


def register(c, key):
    r = c.post("/api/passkeys/register/options", json={})
    assert r.status_code == 200, r.text
    opts = r.json()["publicKey"]
    credential = key.create(b64url_decode(opts["challenge"]), user_handle=b64url_decode(opts["user"]["id"]))
    return c.post("/api/passkeys/register/verify", json={"credential": credential})


def passkey_login(c, key, **overrides):
    opts = c.post("/api/login/passkey/options", json={}).json()["publicKey"]
    return c.post("/api/login/passkey/verify", json=key.get(b64url_decode(opts["challenge"]), **overrides))


def passkey_step_up(c, key):
    r = c.post("/api/step-up/passkey/options", json={})
    assert r.status_code == 200, r.text
    return c.post("/api/step-up/passkey/verify", json=key.get(b64url_decode(r.json()["publicKey"]["challenge"])))


def code_step_up(c, mailsink, email="taro@example.com"):
    assert c.post("/api/step-up/code/send").status_code == 200
    return c.post("/api/step-up/code", json={"code": mailsink.last_code(email)})


def rows(app, model):
    return app.state.ctx.db.run_sync(lambda d: list(d.execute(select(model))))


def events(app, kind):
    return [e for e in rows(app, SecurityEvent) if e.kind == kind]


def the_user(app):
    return app.state.ctx.db.run_sync(store.user_by_code, "TARO1234")


def password(c, pw=PASSWORD, code="TARO1234"):
    return c.post("/api/login/password", json={"customer_code": code, "password": pw})


@pytest.fixture
def after_date(make_app, clock):
    """An app whose passkey date has passed; new passkeys held for HOLD seconds."""
    app = make_app(passkey_mandatory_from=clock() - timedelta(days=1), new_passkey_hold=HOLD)
    add_customer(app)
    return app


# --- 1. a phished session enrolling its own passkey (security.md 29) ---------------------------


def test_case29_proxy_enrolled_passkey_is_on_hold_until_it_ends(after_date, mailsink, clock):
    """The attack end to end: a relayed password and code, the proxy's own passkey, a passkey login."""
    app = after_date
    proxy_key = SoftKey()
    with new_client(app) as proxy:
        login(proxy, mailsink)  # what a real-time phishing proxy holds: an email_code session
        added = register(proxy, proxy_key)
        assert added.status_code == 201, added.text
        hold_until = datetime.fromisoformat(added.json()["passkey"]["hold_until"])
        assert hold_until == clock() + timedelta(seconds=HOLD)
        assert proxy.get("/api/passkeys").json()["passkeys"][0]["hold_until"] == hold_until.isoformat()
        proxy.post("/api/logout")

        assert passkey_login(proxy, proxy_key).status_code == 200  # it logs in as usual...
        session = proxy.get("/api/session").json()
        assert session["auth_method"] == "passkey"
        assert session["important_operations_allowed"] is False  # ...but counts for nothing important
        assert session["important_operations_reason"] == "passkey_on_hold"
        assert datetime.fromisoformat(session["hold_until"]) == hold_until
        for operation in ("withdrawal", "trade", "bank_account_change", "email_change"):
            r = proxy.post("/api/authorize", json={"operation": operation})
            assert r.status_code == 403 and r.json()["error"]["code"] == "passkey_on_hold"
            assert datetime.fromisoformat(r.json()["error"]["hold_until"]) == hold_until
        check = proxy.get("/auth/check", params={"operation": "withdrawal"})
        assert check.status_code == 403 and check.json()["error"]["code"] == "passkey_on_hold"
        # A step-up with the same held passkey does not help either.
        assert passkey_step_up(proxy, proxy_key).status_code == 200
        assert proxy.post("/api/authorize", json={"operation": "trade"}).json()["error"]["code"] == "passkey_on_hold"
        # An e-mail change is an important operation too: refused, and nothing changed.
        assert proxy.post("/api/account/email", json={"email": "proxy@evil.example"}).status_code == 403
        assert the_user(app).email == "taro@example.com"

        # The hold ends by itself; the same session follows the rule at once, with no new login.
        for _ in range(HOLD // 900):
            clock.advance(900)
            assert proxy.get("/api/session").status_code == 200  # (kept alive, as a browser would)
        clock.advance(HOLD % 900 + 1)
        session = proxy.get("/api/session").json()
        assert session["important_operations_allowed"] is True and session["hold_until"] is None
        assert proxy.get("/api/passkeys").json()["passkeys"][0]["hold_until"] is None
        assert passkey_step_up(proxy, proxy_key).status_code == 200
        assert proxy.post("/api/authorize", json={"operation": "withdrawal"}).status_code == 200


def test_case29_the_passkey_added_mail_warns_of_the_hold(after_date, mailsink):
    with new_client(after_date) as c:
        login(c, mailsink)
        assert register(c, SoftKey()).status_code == 201
    mail = mailsink.wait_for(lambda m: "パスキー" in str(m["Subject"]) and "登録" in str(m["Subject"]))
    text = body(mail)
    assert "http" not in text
    assert "お取引" in text or "取引" in text  # until when it cannot trade or withdraw
    assert "サポート" in text  # and whom to call if it was not them


def test_case29_code_step_up_does_not_open_registration_for_a_passkey_holder(after_date, mailsink, clock):
    app = after_date
    own = SoftKey()
    with new_client(app) as customer:
        login(customer, mailsink)
        assert register(customer, own).status_code == 201  # their first passkey (from a code session: held)
    clock.advance(HOLD + 1)  # the customer's own hold ran out long ago
    with new_client(app) as proxy:
        login(proxy, mailsink)  # the relayed password and code: verified just now, by e-mail
        r = proxy.post("/api/passkeys/register/options", json={})
        assert r.status_code == 403 and r.json()["error"]["code"] == "step_up_required"
        assert code_step_up(proxy, mailsink).status_code == 200  # a relayed step-up code...
        r = proxy.post("/api/passkeys/register/options", json={})
        assert r.status_code == 403 and r.json()["error"]["code"] == "step_up_required"  # ...opens nothing
        own_id = proxy.get("/api/passkeys").json()["passkeys"][0]["id"]
        r = proxy.delete(f"/api/passkeys/{own_id}")
        assert r.status_code == 403 and r.json()["error"]["code"] == "step_up_required"
        assert proxy.post("/api/step-up/passkey/options", json={}).status_code == 200  # the only way on
    assert len(rows(app, Credential)) == 1


def test_case29_a_passkey_step_up_opens_registration_and_the_new_passkey_is_not_held(after_date, mailsink, clock):
    app = after_date
    own = SoftKey()
    with new_client(app) as c:
        login(c, mailsink)
        assert register(c, own).status_code == 201
        clock.advance(HOLD + 1)
        c.post("/api/logout")
        login(c, mailsink)
        assert passkey_step_up(c, own).status_code == 200
        second = register(c, SoftKey())
        assert second.status_code == 201 and second.json()["passkey"]["hold_until"] is None
        # A passkey login counts as that step-up too, and so does deleting.
        c.post("/api/logout")
        assert passkey_login(c, own).status_code == 200
        third = register(c, SoftKey())
        assert third.status_code == 201 and third.json()["passkey"]["hold_until"] is None
        assert c.delete(f"/api/passkeys/{third.json()['passkey']['id']}").status_code == 204


def test_case29_a_passkey_registered_from_a_held_passkey_is_held_too(after_date, mailsink):
    app = after_date
    first = SoftKey()
    with new_client(app) as c:
        login(c, mailsink)
        assert register(c, first).status_code == 201
        c.post("/api/logout")
        assert passkey_login(c, first).status_code == 200  # a held passkey's session
        second = register(c, SoftKey())
        assert second.status_code == 201 and second.json()["passkey"]["hold_until"] is not None


def test_case29_deleting_the_held_passkey_does_not_free_its_session(after_date, mailsink):
    app = after_date
    proxy_key = SoftKey()
    with new_client(app) as proxy:
        login(proxy, mailsink)
        pid = register(proxy, proxy_key).json()["passkey"]["id"]
        proxy.post("/api/logout")
        assert passkey_login(proxy, proxy_key).status_code == 200
        assert proxy.delete(f"/api/passkeys/{pid}").status_code == 204  # the fresh passkey login is the step-up
        assert proxy.get("/api/passkeys").json()["passkeys"] == []
        # The session was made with a held passkey; the passkey's going does not lift that.
        assert proxy.get("/api/session").json()["important_operations_reason"] == "passkey_on_hold"
        r = proxy.post("/api/authorize", json={"operation": "withdrawal"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "passkey_on_hold"


def test_case29_a_remembered_pc_gives_a_held_passkey(mailsink, make_app, clock):
    # Before the date a remembered PC skips the code; a passkey added from it is held.
    app = make_app(passkey_mandatory_from=clock() + timedelta(days=1), new_passkey_hold=HOLD)
    add_customer(app)
    with new_client(app) as c:
        login(c, mailsink, remember=True)
        c.post("/api/logout")
        assert password(c).json()["status"] == "ok"  # trusted_device
        assert code_step_up(c, mailsink).status_code == 200
        added = register(c, SoftKey())
        assert added.status_code == 201 and added.json()["passkey"]["hold_until"] is not None


def test_case29_before_the_date_a_held_passkey_changes_nothing(make_app, mailsink, clock):
    app = make_app(passkey_mandatory_from=clock() + timedelta(days=7), new_passkey_hold=HOLD)
    add_customer(app)
    key = SoftKey()
    with new_client(app) as c:
        login(c, mailsink)
        assert register(c, key).json()["passkey"]["hold_until"] is not None
        c.post("/api/logout")
        assert passkey_login(c, key).status_code == 200
        session = c.get("/api/session").json()
        assert session["important_operations_allowed"] is True and session["important_operations_reason"] is None
        assert c.post("/api/authorize", json={"operation": "trade"}).status_code == 200
        # and a code step-up still opens registration for a passkey holder
        assert code_step_up(c, mailsink).status_code == 200
        assert register(c, SoftKey()).status_code == 201


def test_case29_a_hold_of_zero_holds_nothing(make_app, mailsink, clock):
    app = make_app(passkey_mandatory_from=clock() - timedelta(days=1), new_passkey_hold=0)
    add_customer(app)
    key = SoftKey()
    with new_client(app) as c:
        login(c, mailsink)
        assert register(c, key).json()["passkey"]["hold_until"] is None
        c.post("/api/logout")
        assert passkey_login(c, key).status_code == 200
        assert c.post("/api/authorize", json={"operation": "trade"}).status_code == 200


def test_case29_release_hold_by_the_support_desk(after_date, mailsink, clock):
    app = after_date
    key = SoftKey()
    with new_client(app) as c:
        login(c, mailsink)
        assert register(c, key).status_code == 201
        c.post("/api/logout")
        assert passkey_login(c, key).status_code == 200
        assert c.get("/api/session").json()["important_operations_reason"] == "passkey_on_hold"
        released = app.state.ctx.db.run_sync(accounts.release_hold, "TARO1234", now=clock())
        assert released == 1
        # The live session counts at once (it was made with that passkey), and the passkey too.
        assert c.get("/api/session").json()["important_operations_allowed"] is True
        assert c.post("/api/authorize", json={"operation": "trade"}).status_code == 200
        assert c.get("/api/passkeys").json()["passkeys"][0]["hold_until"] is None
    assert events(app, "passkey_hold_released")[0].user_id == the_user(app).id


# --- 2. the lock stops guessing, not customers (security.md 30-33) ------------------------------


class CountingPasswords:
    """The real argon2id, counting the checks of a real hash (None: the dummy of an unknown or
    locked account), and able to hold a chosen password's check until told to go on."""

    def __init__(self, real, hold_for: str | None = None) -> None:
        self.real, self.hold_for = real, hold_for
        self.real_checks = self.dummy_checks = 0
        self.release = threading.Event()
        self.lock = threading.Lock()

    def hash(self, password):
        return self.real.hash(password)

    async def verify_async(self, stored, password):
        with self.lock:
            if stored is None:
                self.dummy_checks += 1
            else:
                self.real_checks += 1
        result = await self.real.verify_async(stored, password)
        if password == self.hold_for:
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 10)
        return result

    def __getattr__(self, name):
        return getattr(self.real, name)


def _lock_by_guessing(c, app, times):
    for _ in range(times):
        assert password(c, pw="a wrong guess").status_code == 401
    assert the_user(app).locked_at is not None


def test_case30_after_the_lock_a_right_password_is_answered_like_a_wrong_one(make_app, passwords, mailsink):
    app = make_app(lock_after_failures=3)
    add_customer(app)
    counting = app.state.ctx.passwords = CountingPasswords(passwords)
    with new_client(app) as c:
        _lock_by_guessing(c, app, 3)
        checks = counting.real_checks + counting.dummy_checks
        right, wrong = password(c), password(c, pw="another guess")
    assert right.status_code == wrong.status_code == 401
    assert right.json() == wrong.json() and right.json()["error"]["code"] == "invalid_credentials"
    # The same work for both: one (dummy) hash each, so the time tells nothing either.
    assert counting.real_checks + counting.dummy_checks == checks + 2 and counting.dummy_checks == 2
    assert not [m for m in mailsink.to("taro@example.com") if "確認コード" in str(m["Subject"])][3:]


def test_case31_the_password_lock_leaves_passkey_login_and_the_customer_lifts_it(make_app, mailsink, clock):
    app = make_app(lock_after_failures=3)
    add_customer(app)
    key = SoftKey()
    with new_client(app) as customer:
        login(customer, mailsink)
        assert register(customer, key).status_code == 201
        customer.post("/api/logout")
    with new_client(app) as guesser:
        _lock_by_guessing(guesser, app, 3)
    with new_client(app) as customer:
        assert passkey_login(customer, key).status_code == 200  # ten wrong passwords shut nobody out
        page = customer.get("/account").text
        assert 'id="password-locked"' in page
        r = customer.post("/api/account/unlock-password")
        assert r.status_code == 200 and r.json()["unlocked"] is True
        assert the_user(app).locked_at is None
        assert 'id="password-locked"' not in customer.get("/account").text
    assert events(app, "password_unlocked")
    mailsink.wait_for(lambda m: "解除" in str(m["Subject"]))
    with new_client(app) as c:
        login(c, mailsink)  # the password works again


def test_case31_unlocking_the_password_needs_a_fresh_passkey_verification(make_app, mailsink, clock):
    app = make_app(lock_after_failures=3)
    add_customer(app)
    key = SoftKey()
    with new_client(app) as customer:
        login(customer, mailsink)  # a code session, from before the lock
        assert register(customer, key).status_code == 201
        with new_client(app) as guesser:
            _lock_by_guessing(guesser, app, 3)
        r = customer.post("/api/account/unlock-password")  # a code is not a passkey
        assert r.status_code == 403 and r.json()["error"]["code"] == "step_up_required"
        assert customer.post("/api/step-up/code/send").status_code == 423  # the lock closes the code path
        customer.post("/api/logout")
        assert passkey_login(customer, key).status_code == 200
        clock.advance(601)  # no longer fresh
        assert customer.post("/api/account/unlock-password").status_code == 403
        assert passkey_step_up(customer, key).status_code == 200
        assert customer.post("/api/account/unlock-password").status_code == 200
    assert the_user(app).locked_at is None


def test_case31_a_support_hold_stops_every_sign_in_until_unlock(make_app, mailsink, clock):
    app = make_app()
    add_customer(app)
    key = SoftKey()
    db = app.state.ctx.db
    with new_client(app) as c:
        login(c, mailsink)
        assert register(c, key).status_code == 201
        db.run_sync(accounts.hold, "TARO1234", now=clock(), reason="suspected takeover")
        assert c.get("/api/session").status_code == 401  # its sessions ended at once
        r = passkey_login(c, key)
        assert r.status_code == 423 and r.json()["error"]["code"] == "account_locked"
        assert password(c).status_code == 401  # the password path says nothing of the hold
        assert c.post("/api/account/unlock-password").status_code == 401
        assert db.run_sync(accounts.describe, "TARO1234", now=clock())["locked"] == "hold"
        assert db.run_sync(accounts.unlock, "TARO1234", now=clock()) == "hold"
        assert passkey_login(c, key).status_code == 200
    assert events(app, "account_held")[0].user_id == the_user(app).id


def test_case31_a_hold_is_told_only_after_the_assertion_is_verified(make_app, mailsink, clock):
    app = make_app()
    add_customer(app)
    key = SoftKey()
    with new_client(app) as c:
        login(c, mailsink)
        assert register(c, key).status_code == 201
        app.state.ctx.db.run_sync(accounts.hold, "TARO1234", now=clock(), reason=None)
        # The credential ID and user handle are right, the signature is not: no 423.
        forged = passkey_login(c, key, signature=b"\x30\x06\x02\x01\x01\x02\x01\x01")
        assert forged.status_code == 401 and forged.json()["error"]["code"] == "passkey_rejected"
        assert passkey_login(c, key).status_code == 423


def test_case32_parallel_guesses_count_before_any_hash(make_app, passwords):
    app = make_app(lock_after_failures=5)
    add_customer(app)
    counting = app.state.ctx.passwords = CountingPasswords(passwords)
    with new_client(app) as c:
        with ThreadPoolExecutor(30) as pool:
            answers = list(pool.map(lambda i: password(c, pw=f"guess {i}"), range(30)))
    # 401, or 429 once the per-customer limit (twice the lock's count) is used up; never anything else.
    assert {r.status_code for r in answers} <= {401, 429} and 401 in {r.status_code for r in answers}
    assert counting.real_checks <= 5  # past the lock's count nobody's password is even looked at
    assert the_user(app).locked_at is not None


def test_case32_parallel_guesses_get_no_more_than_the_address_limit(make_app, passwords):
    app = make_app(rate_limit=(5, 60), lock_after_failures=50, customer_rate_limit=(100, 900))
    add_customer(app)
    counting = app.state.ctx.passwords = CountingPasswords(passwords)
    with new_client(app) as c:
        with ThreadPoolExecutor(30) as pool:
            answers = list(pool.map(lambda i: password(c, pw=f"guess {i}"), range(30)))
    assert sorted(r.status_code for r in answers) == [401] * 5 + [429] * 25
    assert counting.real_checks + counting.dummy_checks == 5


def test_case32_a_right_password_that_lands_after_the_lock_gets_nothing(make_app, passwords, mailsink):
    app = make_app(lock_after_failures=5)
    add_customer(app)
    counting = app.state.ctx.passwords = CountingPasswords(passwords, hold_for=PASSWORD)
    with new_client(app) as c:
        with ThreadPoolExecutor(10) as pool:
            right = pool.submit(password, c)  # its check is held until the guesses have locked
            while counting.real_checks == 0:
                pass
            guesses = list(pool.map(lambda i: password(c, pw=f"guess {i}"), range(9)))
            assert the_user(app).locked_at is not None
            counting.release.set()
            answer = right.result()
        assert {g.status_code for g in guesses} == {401}
        assert answer.status_code == 401 and answer.json() == guesses[0].json()
        assert c.get("/api/session").status_code == 401
    assert not [m for m in mailsink.to("taro@example.com") if "確認コード" in str(m["Subject"])]


def test_case32_a_right_password_gives_its_count_back(make_app, mailsink):
    app = make_app(lock_after_failures=3, rate_limit=(3, 60), customer_rate_limit=(3, 900))
    add_customer(app)
    with new_client(app) as c:
        for _ in range(5):  # five right passwords in a row: no count stays behind
            login(c, mailsink)
            c.post("/api/logout")
        assert the_user(app).failed_logins == 0 and the_user(app).locked_at is None


def test_case33_the_code_mail_budget_is_asked_before_the_password(make_app, mailsink):
    app = make_app(code_send_limit=(1, 3600))
    add_customer(app)
    with new_client(app) as c:
        assert password(c).json()["status"] == "code_sent"  # the hour's one code
        right, wrong = password(c), password(c, pw="a guess")
    assert right.status_code == wrong.status_code == 429
    assert right.json() == wrong.json()


# --- 3.9 remembered PCs forgotten when a passkey is added or removed (security.md 40) -------------


def test_case40_adding_or_removing_a_passkey_forgets_remembered_pcs(make_app, mailsink):
    app = make_app(new_passkey_hold=0)
    add_customer(app)
    with new_client(app) as c:
        login(c, mailsink, remember=True)
        assert len(rows(app, TrustedDevice)) == 1
        added = register(c, SoftKey())
        assert added.status_code == 201 and rows(app, TrustedDevice) == []
        c.post("/api/logout")
        login(c, mailsink, remember=True)
        assert len(rows(app, TrustedDevice)) == 1
        assert c.delete(f"/api/passkeys/{added.json()['passkey']['id']}").status_code == 204
        assert rows(app, TrustedDevice) == []
        c.post("/api/logout")
        assert password(c).json()["status"] == "code_sent"  # the PC must prove itself again
