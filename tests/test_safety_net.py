"""The safety net before the refactor (one data layer, one WebAuthn path): the security.md cases
that had no test through the API yet. Each test is named after its case and, like every API test,
runs on SQLite and on PostgreSQL (conftest.database_url).

What is pinned is what a client can see (status, error code, cookies, headers, log lines) and what
is stored (rows, the sign counter), never how the server gets there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient

from server.models import Credential, Session, User
from mailsink import body, free_port
from softkey import ES256, SoftKey, b64url, b64url_decode
from conftest import ORIGIN, PASSWORD, _pg_admin, add_customer, login

TARO = ("TARO1234", "taro@example.com")
HANA = ("HANA5678", "hana@example.com")


# --- helpers ---------------------------------------------------------------------------------


def rows(app, model):
    return app.state.ctx.db.run_sync(lambda d: list(d.execute(select(model))))


def browser(app, origin: str = ORIGIN, **kwargs) -> TestClient:
    """Another browser: its own cookie jar. Used bare beside the test's `client` (whose lifespan
    runs the outbox worker; every request still runs the whole app), entered with `with` where it
    is the app's only client."""
    kwargs.setdefault("base_url", origin)  # https: Secure cookies come back
    return TestClient(app, headers={"Origin": origin}, **kwargs)


def code_login(c, mailsink, who=TARO, remember=False):
    return login(c, mailsink, code=who[0], email=who[1], remember=remember)


def public_key(c, path: str, **payload) -> dict:
    r = c.post(path, json=payload)
    assert r.status_code == 200, r.text
    return r.json()["publicKey"]


def challenge(opts: dict) -> bytes:
    return b64url_decode(opts["challenge"])


def register(c, key: SoftKey, opts: dict | None = None):
    opts = opts or public_key(c, "/api/passkeys/register/options")
    credential = key.create(challenge(opts), user_handle=b64url_decode(opts["user"]["id"]))
    return c.post("/api/passkeys/register/verify", json={"credential": credential})


def error(r) -> str:
    assert r.headers["content-type"].startswith("application/json"), r.text
    return r.json()["error"]["code"]


def stored(app, key: SoftKey) -> Credential:
    [row] = [c for c in rows(app, Credential) if c.credential_id == key.credential_id]
    return row


def session_of(c) -> dict | None:
    r = c.get("/api/session")
    return r.json() if r.status_code == 200 else None


def flip_signature(parts):
    parts["signature"] = parts["signature"][:-1] + bytes([parts["signature"][-1] ^ 1])


@pytest.fixture
def with_passkey(client, customer, mailsink, app):
    """TARO logged in with password + code (verified just now) and one device-bound ES256 passkey."""
    code_login(client, mailsink)
    key = SoftKey(ES256, synced=False)
    assert register(client, key).status_code == 201
    return key


# --- case 2: expired or foreign ceremonies at passkey login and step-up ----------------------


def test_case2_login_challenge_expires_after_5_minutes(app, with_passkey, client, clock):
    """Issued at t: still good at t+299 s, void at t+300 s (two browsers, so that the first one's
    login does not take the second one's session, and its ceremony, with it)."""
    key = with_passkey
    client.post("/api/logout")
    early, late = browser(app), browser(app)
    early_opts = public_key(early, "/api/login/passkey/options")
    late_opts = public_key(late, "/api/login/passkey/options")
    clock.advance(299)
    assert early.post("/api/login/passkey/verify", json=key.get(challenge(early_opts))).status_code == 200
    count = stored(app, key).sign_count
    clock.advance(1)
    r = late.post("/api/login/passkey/verify", json=key.get(challenge(late_opts)))
    assert r.status_code == 400 and error(r) == "ceremony_expired"
    assert session_of(late) is None and stored(app, key).sign_count == count


def test_case2_login_challenge_of_another_browser_is_refused(app, with_passkey, client):
    key = with_passkey
    client.post("/api/logout")
    victim, attacker = browser(app), browser(app)
    victim_opts = public_key(victim, "/api/login/passkey/options")
    public_key(attacker, "/api/login/passkey/options")  # the attacker's browser has a session of its own
    r = attacker.post("/api/login/passkey/verify", json=key.get(challenge(victim_opts)))
    assert r.status_code == 400 and error(r) == "ceremony_expired"
    assert session_of(attacker) is None and stored(app, key).sign_count == 0
    # A foreign browser cannot use the ceremony, nor use it up: it is still its own browser's.
    assert victim.post("/api/login/passkey/verify", json=key.get(challenge(victim_opts))).status_code == 200


def test_case2_login_challenge_used_twice_is_refused(app, with_passkey, client):
    key = with_passkey
    client.post("/api/logout")
    # Used by a success, then replayed.
    opts = public_key(client, "/api/login/passkey/options")
    assertion = key.get(challenge(opts))
    assert client.post("/api/login/passkey/verify", json=assertion).status_code == 200
    r = client.post("/api/login/passkey/verify", json=assertion)
    assert r.status_code == 400 and error(r) == "ceremony_expired"
    client.post("/api/logout")
    # Used by a refusal (a bad signature) in this same browser session: the good answer comes too late.
    opts = public_key(client, "/api/login/passkey/options")
    r = client.post("/api/login/passkey/verify", json=key.get(challenge(opts), tamper=flip_signature))
    assert r.status_code == 401 and error(r) == "passkey_rejected"
    r = client.post("/api/login/passkey/verify", json=key.get(challenge(opts)))
    assert r.status_code == 400 and error(r) == "ceremony_expired"
    assert session_of(client) is None and stored(app, key).sign_count == 1


def test_case2_step_up_challenge_expires_after_5_minutes(app, with_passkey, client, clock):
    key = with_passkey
    opts = public_key(client, "/api/step-up/passkey/options")
    before = session_of(client)["verified_at"]
    cookie = client.cookies.get("tobira_session")
    clock.advance(300)
    r = client.post("/api/step-up/passkey/verify", json=key.get(challenge(opts)))
    assert r.status_code == 400 and error(r) == "ceremony_expired"
    assert client.cookies.get("tobira_session") == cookie and session_of(client)["verified_at"] == before
    assert stored(app, key).sign_count == 0
    # A young one still works at that moment: the refusal was the age.
    fresh = public_key(client, "/api/step-up/passkey/options")
    assert client.post("/api/step-up/passkey/verify", json=key.get(challenge(fresh))).status_code == 200


def test_case2_step_up_challenge_of_another_session_is_refused(app, with_passkey, client, mailsink):
    """Two browsers of the same customer: one browser's step-up challenge does not step up the other."""
    key = with_passkey
    other = browser(app)
    code_login(other, mailsink)
    opts = public_key(client, "/api/step-up/passkey/options")
    before = session_of(other)["verified_at"]
    r = other.post("/api/step-up/passkey/verify", json=key.get(challenge(opts)))
    assert r.status_code == 400 and error(r) == "ceremony_expired"
    assert session_of(other)["verified_at"] == before and stored(app, key).sign_count == 0
    assert client.post("/api/step-up/passkey/verify", json=key.get(challenge(opts))).status_code == 200


def test_case2_step_up_challenge_used_twice_is_refused(app, with_passkey, client):
    key = with_passkey
    # Used by a success, then replayed (with the new cookie the success gave).
    opts = public_key(client, "/api/step-up/passkey/options")
    assertion = key.get(challenge(opts))
    assert client.post("/api/step-up/passkey/verify", json=assertion).status_code == 200
    r = client.post("/api/step-up/passkey/verify", json=assertion)
    assert r.status_code == 400 and error(r) == "ceremony_expired"
    # Used by a refusal in this same session: the good answer to the same challenge comes too late.
    opts = public_key(client, "/api/step-up/passkey/options")
    before = session_of(client)["verified_at"]
    r = client.post("/api/step-up/passkey/verify", json=key.get(challenge(opts), tamper=flip_signature))
    assert r.status_code == 401 and error(r) == "passkey_rejected"
    r = client.post("/api/step-up/passkey/verify", json=key.get(challenge(opts)))
    assert r.status_code == 400 and error(r) == "ceremony_expired"
    assert session_of(client)["verified_at"] == before and stored(app, key).sign_count == 1


# (issued by, answered at): each ceremony kind serves only itself, in the same browser session.
# Registration -> login is in test_api_passkeys.py.
KINDS = {
    "login": ("/api/login/passkey/options", "/api/login/passkey/verify"),
    "step_up": ("/api/step-up/passkey/options", "/api/step-up/passkey/verify"),
    "registration": ("/api/passkeys/register/options", "/api/passkeys/register/verify"),
}


@pytest.mark.parametrize("issued, used", [("login", "step_up"), ("step_up", "login"), ("registration", "step_up"),
                                          ("step_up", "registration"), ("login", "registration")])
def test_case2_a_challenge_of_another_ceremony_kind_is_refused(app, with_passkey, client, issued, used):
    key = with_passkey
    opts = public_key(client, KINDS[issued][0])
    cookie = client.cookies.get("tobira_session")
    before = session_of(client)
    if used == "registration":
        newcomer = SoftKey(ES256)
        credential = newcomer.create(challenge(opts), user_handle=key.user_handle)
        r = client.post(KINDS[used][1], json={"credential": credential})
    else:
        r = client.post(KINDS[used][1], json=key.get(challenge(opts)))
    assert r.status_code == 400 and error(r) == "ceremony_expired", r.text
    # Nothing moved: the same session, not verified again, no passkey added, the counter unchanged.
    assert client.cookies.get("tobira_session") == cookie and session_of(client) == before
    assert len(rows(app, Credential)) == 1 and stored(app, key).sign_count == 0


# --- case 7: two parallel registrations of one credential -------------------------------------


def _race(*calls):
    """Run the calls at the same moment, each in its own thread; their results in order."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


@pytest.mark.parametrize("who", ["two_customers", "one_customer_two_browsers", "one_ceremony_twice"])
def test_case7_parallel_registrations_of_one_credential_store_it_once(app, client, customer, mailsink, who):
    """One credential ID, two registrations at once: exactly one 201; the other is 409
    credential_exists (two ceremonies), or 400 ceremony_expired (the same ceremony sent twice).
    Three rounds, a new credential each, for more chances of a real overlap."""
    code_login(client, mailsink)
    other = browser(app)
    if who == "two_customers":
        add_customer(app, code=HANA[0], email=HANA[1], name="花子")
        code_login(other, mailsink, HANA)
    elif who == "one_customer_two_browsers":
        code_login(other, mailsink)
    for _ in range(3):
        key = SoftKey(ES256)
        first = public_key(client, "/api/passkeys/register/options")
        if who == "one_ceremony_twice":
            second, sender = first, client
        else:
            second, sender = public_key(other, "/api/passkeys/register/options"), other
        bodies = [{"credential": key.create(challenge(o), user_handle=b64url_decode(o["user"]["id"]))}
                  for o in (first, second)]
        answers = _race(lambda: client.post("/api/passkeys/register/verify", json=bodies[0]),
                        lambda: sender.post("/api/passkeys/register/verify", json=bodies[1]))
        codes = sorted((r.status_code, error(r) if r.status_code >= 400 else None) for r in answers)
        loser = (400, "ceremony_expired") if who == "one_ceremony_twice" else (409, "credential_exists")
        assert codes == sorted([(201, None), loser]), [r.text for r in answers]
        mine = [c for c in rows(app, Credential) if c.credential_id == key.credential_id]
        assert len(mine) == 1, "exactly one row for the credential"
        winner = answers[0] if answers[0].status_code == 201 else answers[1]
        winner_browser = client if winner is answers[0] else sender
        owner = app.state.ctx.db.run_sync(lambda d: d.execute(select(User).where(User.id == mine[0].user_id)).one())
        assert owner.customer_code == session_of(winner_browser)["customer_code"]
        assert winner.json()["passkey"]["id"] == b64url(key.credential_id)
    assert len(rows(app, Credential)) == 3


# --- case 12: parallel assertions racing the sign-counter compare-and-set ---------------------


@pytest.mark.parametrize("stored_before", [0, 3], ids=["stored-0", "stored-3"])
def test_case12_parallel_assertions_with_one_counter_value_log_in_at_most_once(app, client, customer, mailsink,
                                                                             stored_before):
    """A device-bound key signs N assertions that all report the same counter value, each for its
    own login ceremony in its own browser, sent at once. Whatever the interleaving, one may win the
    compare-and-set; every other is a counter that did not grow (a clone) or lost the race: 401.

    On SQLite the single database thread runs the logins one after another, so the counter check
    alone decides; on PostgreSQL they overlap and the compare-and-set does (with a plain UPDATE in
    its place this test failed there 24 times out of 24 with N = 8)."""
    n, value = 8, 7
    code_login(client, mailsink)
    key = SoftKey(ES256, synced=False)
    assert register(client, key).status_code == 201
    client.post("/api/logout")
    if stored_before:
        opts = public_key(client, "/api/login/passkey/options")
        r = client.post("/api/login/passkey/verify", json=key.get(challenge(opts), counter=stored_before))
        assert r.status_code == 200
        client.post("/api/logout")
    assert stored(app, key).sign_count == stored_before
    browsers = [browser(app) for _ in range(n)]
    assertions = [key.get(challenge(public_key(b, "/api/login/passkey/options")), counter=value) for b in browsers]
    answers = _race(*[lambda b=b, a=a: b.post("/api/login/passkey/verify", json=a)
                      for b, a in zip(browsers, assertions)])
    codes = [r.status_code for r in answers]
    assert codes.count(200) <= 1 and set(codes) <= {200, 401}, [r.text for r in answers]
    assert all(error(r) == "passkey_rejected" for r in answers if r.status_code == 401)
    assert stored(app, key).sign_count == value
    # The stored value moved, so one did win; and only the winner holds a session.
    assert codes.count(200) == 1
    logged_in = [b for b in browsers if session_of(b) is not None]
    assert len(logged_in) == 1 and logged_in[0] is browsers[codes.index(200)]
    assert len([s for s in rows(app, Session) if s.state == "active"]) == 1


# --- case 15: a new session id after a passkey step-up (and a passkey login) ------------------


def test_case15_a_passkey_step_up_gives_a_new_session_id_and_kills_the_old(app, with_passkey, client, clock):
    key = with_passkey
    clock.advance(601)  # no longer fresh: the step-up is needed, and must move verified_at
    old = client.cookies.get("tobira_session")
    before = session_of(client)
    opts = public_key(client, "/api/step-up/passkey/options")
    r = client.post("/api/step-up/passkey/verify", json=key.get(challenge(opts)))
    assert r.status_code == 200 and r.json()["status"] == "ok"
    new = client.cookies.get("tobira_session")
    assert new and new != old
    assert [v for v in r.headers.get_list("set-cookie") if v.startswith("tobira_session=")]
    after = session_of(client)
    assert after["verified_at"] > before["verified_at"] and after["authenticated_at"] == before["authenticated_at"]
    with browser(app, cookies={"tobira_session": old}) as stale:
        r = stale.get("/api/session")
        assert r.status_code == 401 and error(r) == "not_authenticated"
        # Dead for everything, not only for reading: it cannot use the step-up it came before.
        r = stale.post("/api/passkeys/register/options", json={})
        assert r.status_code == 401 and error(r) == "not_authenticated"
    assert client.post("/api/passkeys/register/options", json={}).status_code == 200


def test_case15_a_passkey_login_over_a_live_session_kills_the_old_one(app, with_passkey, client):
    """A browser already logged in (by code) logs in with its passkey: the old, authenticated
    session id must not live on beside the new one."""
    key = with_passkey
    old = client.cookies.get("tobira_session")
    assert session_of(client)["auth_method"] == "email_code"
    opts = public_key(client, "/api/login/passkey/options")
    assert client.post("/api/login/passkey/verify", json=key.get(challenge(opts))).status_code == 200
    assert client.cookies.get("tobira_session") != old and session_of(client)["auth_method"] == "passkey"
    with browser(app, cookies={"tobira_session": old}) as stale:
        assert stale.get("/api/session").status_code == 401
    assert len([s for s in rows(app, Session) if s.state == "active"]) == 1


# --- case 16: cookie attributes, every Set-Cookie header of every answer ----------------------


def cookie_attributes(header: str) -> tuple[str, dict[str, str]]:
    """('name', {'attribute lower-cased': 'value'}) of one Set-Cookie header."""
    first, *rest = [p.strip() for p in header.split(";")]
    name = first.split("=", 1)[0]
    attributes = {}
    for part in rest:
        key, _, value = part.partition("=")
        attributes[key.strip().lower()] = value.strip()
    return name, attributes


@pytest.mark.parametrize("origin", ["https://example.com", "http://localhost:8000"])
def test_case16_both_cookies_carry_their_attributes_in_every_answer(make_app, mailsink, origin):
    """Through a whole day (pending login, login remembering this PC, a code step-up, logout, a login
    on the remembered PC, passkey login options), every Set-Cookie header of every answer is read:
    HttpOnly, SameSite=Lax, Path=/, no Domain, and on https Secure with the __Host- prefix."""
    https = origin.startswith("https")
    rp_id = "example.com" if https else "localhost"
    app = make_app(origins=(origin,), rp_id=rp_id)
    add_customer(app)
    prefix = "__Host-" if https else ""
    seen: list[str] = []

    def post(c, path, **kwargs):
        r = c.post(path, **kwargs)
        assert r.status_code < 300, (path, r.text)
        seen.extend(r.headers.get_list("set-cookie"))
        return r

    with TestClient(app, base_url=origin, headers={"Origin": origin}) as c:
        post(c, "/api/login/password", json={"customer_code": TARO[0], "password": PASSWORD})
        r = post(c, "/api/login/code", json={"code": mailsink.last_code(TARO[1]), "remember_device": True})
        names = [cookie_attributes(h)[0] for h in r.headers.get_list("set-cookie")]
        assert sorted(names) == [f"{prefix}tobira_device", f"{prefix}tobira_session"], names
        post(c, "/api/step-up/code/send")
        post(c, "/api/step-up/code", json={"code": mailsink.last_code(TARO[1])})
        post(c, "/api/logout")
        r = post(c, "/api/login/password", json={"customer_code": TARO[0], "password": PASSWORD})
        # The browser sent the remembered-PC cookie back under its prefixed name, and it worked.
        assert r.json()["status"] == "ok"
        post(c, "/api/logout")
        post(c, "/api/login/passkey/options", json={})
    names = {cookie_attributes(h)[0] for h in seen}
    assert names == {f"{prefix}tobira_session", f"{prefix}tobira_device"}, names
    assert len(seen) >= 8
    for header in seen:
        name, attributes = cookie_attributes(header)
        assert "httponly" in attributes, header
        assert attributes.get("samesite", "").lower() == "lax", header
        assert attributes.get("path") == "/", header
        assert "domain" not in attributes, header
        assert ("secure" in attributes) == https, header
        assert name.startswith("__Host-") == https, header


# --- case 25: security headers on refusals and outages ----------------------------------------


def _csrf(app, origin, **_):
    with browser(app, origin="https://evil.example") as c:
        return c.post("/api/login/password", json={"customer_code": TARO[0], "password": PASSWORD})


def _step_up_required(app, origin, mailsink, clock):
    with browser(app, origin) as c:
        code_login(c, mailsink)
        clock.advance(601)
        return c.post("/api/passkeys/register/options", json={})


def _too_large(app, origin, **_):
    with browser(app, origin) as c:
        return c.post("/api/login/password", content=b'{"x": "' + b"A" * (65 * 1024) + b'"}',
                      headers={"Content-Type": "application/json"})


def _not_json(app, origin, **_):
    with browser(app, origin) as c:
        return c.post("/api/login/password", content=b"customer_code=TARO1234",
                      headers={"Content-Type": "application/x-www-form-urlencoded"})


def _resend_too_soon(app, origin, **_):
    with browser(app, origin) as c:
        assert c.post("/api/login/password", json={"customer_code": TARO[0], "password": PASSWORD}).status_code == 200
        return c.post("/api/login/code/resend")


def _rate_limited(app, origin, **_):
    with browser(app, origin) as c:
        for _ in range(10):
            r = c.post("/api/login/password", json={"customer_code": TARO[0], "password": "wrong password"})
            if r.status_code == 429:
                break
        return r


def _mail_down(app, origin, **_):
    with browser(app, origin) as c:
        return c.post("/api/login/password", json={"customer_code": TARO[0], "password": PASSWORD})


def _database_down(app, origin, **_):
    """The database goes away for real while the server runs: a PostgreSQL database is dropped
    (its connections end), a SQLite file is replaced by a directory (nothing can open it). The
    connections the server keeps are given back, as at any outage they would be lost."""
    url = make_url(app.state.ctx.settings.database_url)
    with browser(app, origin) as c:
        # The background senders (mail, back-channel logouts) stop first: a transaction of theirs
        # running across the switch would hold its kept connection to the moved file past close().
        app.state.ctx.outbox.stop()
        app.state.ctx.logouts.stop()
        time.sleep(0.2)
        # Gone first, then the kept connections given back: a connection opened between the two
        # would still reach a moved SQLite file.
        if url.get_backend_name() == "sqlite":
            path = url.database
            shutil.move(path, path + ".gone")
            os.mkdir(path)
        else:
            with _pg_admin() as admin:
                admin.execute(f'DROP DATABASE "{url.database}" WITH (FORCE)')
        app.state.ctx.db.close()
        app.state.ctx.db.engine.dispose()
        r = c.post("/api/login/password", json={"customer_code": TARO[0], "password": PASSWORD})
        ready = c.get("/readyz")
        assert ready.status_code == 503 and error(ready) == "unavailable", ready.text
        return r


def _refusing_smtp():
    from server.config import SmtpSettings
    return SmtpSettings(host="127.0.0.1", port=free_port(), security="plain")  # nobody listens there


# name: (how to get the answer, status, error code, settings to change)
ANSWERS = {
    "403-csrf_rejected": (_csrf, 403, "csrf_rejected", {}),
    "403-step_up_required": (_step_up_required, 403, "step_up_required", {}),
    "413-payload_too_large": (_too_large, 413, "payload_too_large", {}),
    "415-unsupported_media_type": (_not_json, 415, "unsupported_media_type", {}),
    "429-resend_too_soon": (_resend_too_soon, 429, "resend_too_soon", {}),
    "429-rate_limited": (_rate_limited, 429, "rate_limited", {"rate_limit": (2, 60)}),
    "503-mail_unavailable": (_mail_down, 503, "mail_unavailable", {"smtp": _refusing_smtp}),
    "503-unavailable": (_database_down, 503, "unavailable", {}),
}


@pytest.mark.parametrize("origin", ["http://localhost:8000", "https://example.com"], ids=["http", "https"])
@pytest.mark.parametrize("kind", list(ANSWERS))
def test_case25_security_headers_on_refusals_and_outages(make_app, mailsink, clock, kind, origin):
    """The headers every answer carries (web/middleware.py), on the answers a refusal or an outage
    gives: the CSP with frame-ancestors 'none', nosniff, Referrer-Policy, no-store, HSTS on https."""
    make, status, code, changes = ANSWERS[kind]
    changes = {name: value() if callable(value) else value for name, value in changes.items()}
    https = origin.startswith("https")
    app = make_app(origins=(origin,), rp_id="example.com" if https else "localhost", **changes)
    add_customer(app)
    r = make(app, origin, mailsink=mailsink, clock=clock)
    assert r.status_code == status and error(r) == code, r.text
    csp = r.headers["content-security-policy"]
    for directive in ("frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'", "script-src 'self'"):
        assert directive in csp, (kind, csp)
    assert "unsafe-inline" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "same-origin"
    assert r.headers["cache-control"] == "no-store"
    if https:
        assert "max-age=" in r.headers["strict-transport-security"]
    else:
        assert "strict-transport-security" not in r.headers


# --- case 27: no secret in the logs of the passkey and step-up flows --------------------------


class _Secrets:
    """Everything that must never reach a log line, gathered as the run goes."""

    def __init__(self) -> None:
        self.values: set[str] = {PASSWORD}

    def add(self, *values: str) -> None:
        self.values.update(v for v in values if v)

    def answer(self, r):
        """Every cookie value an answer sets, whole and in its signed parts (the raw session id)."""
        for header in r.headers.get_list("set-cookie"):
            value = header.split(";", 1)[0].split("=", 1)[1]
            if value and value != '""':
                self.add(value)
                self.add(*(part for part in value.split(".") if len(part) > 10))
        return r


def test_case27_passkey_and_step_up_flows_leak_nothing_into_the_logs(app, client, customer, mailsink, clock, json_log):
    """A customer's passkey day at DEBUG: a remembered-PC login, code and passkey step-ups (wrong
    code included), a passkey registered, passkey logins (a refused one included), a passkey
    deleted. No password, code, cookie value, raw session id, trusted-device token or challenge
    appears in any log line (tests/test_logs.py does the same for the password + code login)."""
    secrets = _Secrets()
    secrets.add("wrong password 27")
    key = SoftKey(ES256, synced=False)

    def post(path, **kwargs):
        return secrets.answer(client.post(path, **kwargs))

    def options(path):
        r = post(path, json={})
        assert r.status_code == 200, r.text
        opts = r.json()["publicKey"]
        secrets.add(opts["challenge"])
        return opts

    def step_up_code(wrong_first: bool):
        assert post("/api/step-up/code/send").status_code == 200
        code = mailsink.last_code(TARO[1])
        secrets.add(code)
        if wrong_first:
            wrong = f"{(int(code) + 1) % 10**6:06d}"
            secrets.add(wrong)
            assert post("/api/step-up/code", json={"code": wrong}).status_code == 400
        assert post("/api/step-up/code", json={"code": code}).status_code == 200

    # A login that remembers this PC (the trusted-device token), then a login on it.
    post("/api/login/password", json={"customer_code": TARO[0], "password": "wrong password 27"})
    post("/api/login/password", json={"customer_code": TARO[0], "password": PASSWORD})
    code = mailsink.last_code(TARO[1])
    secrets.add(code)
    assert post("/api/login/code", json={"code": code, "remember_device": True}).status_code == 200
    assert client.cookies.get("tobira_device")
    post("/api/logout")
    r = post("/api/login/password", json={"customer_code": TARO[0], "password": PASSWORD})
    assert r.json()["status"] == "ok"
    # Step-up by code (a wrong entry first), then a passkey registered.
    step_up_code(wrong_first=True)
    opts = options("/api/passkeys/register/options")
    credential = key.create(challenge(opts), user_handle=b64url_decode(opts["user"]["id"]))
    assert post("/api/passkeys/register/verify", json={"credential": credential}).status_code == 201
    # Step-up by passkey: a refused one, then a good one.
    opts = options("/api/step-up/passkey/options")
    assert post("/api/step-up/passkey/verify", json=key.get(challenge(opts), tamper=flip_signature)).status_code == 401
    opts = options("/api/step-up/passkey/options")
    assert post("/api/step-up/passkey/verify", json=key.get(challenge(opts))).status_code == 200
    client.get("/api/session")
    post("/api/logout")
    # Passkey login: a refused one, an unknown passkey, then a good one.
    opts = options("/api/login/passkey/options")
    assert post("/api/login/passkey/verify", json=key.get(challenge(opts), tamper=flip_signature)).status_code == 401
    opts = options("/api/login/passkey/options")
    stranger = SoftKey(ES256)
    stranger.user_handle = key.user_handle
    assert post("/api/login/passkey/verify", json=stranger.get(challenge(opts))).status_code == 401
    opts = options("/api/login/passkey/options")
    assert post("/api/login/passkey/verify", json=key.get(challenge(opts))).status_code == 200
    # A challenge issued and never answered.
    options("/api/step-up/passkey/options")
    # The passkey deleted after a fresh code step-up, then out.
    clock.advance(601)
    client.get("/api/session")
    step_up_code(wrong_first=False)
    r = secrets.answer(client.delete(f"/api/passkeys/{b64url(key.credential_id)}"))
    assert r.status_code == 204, r.text
    post("/api/logout")
    mailsink.wait_for(lambda m: "パスキーを削除しました" in str(m["Subject"]))
    text = json_log.getvalue()
    assert text.count("\n") >= 30, "the run was logged"
    for line in text.splitlines():
        assert line.startswith("{") and '"request_id"' in line, line[:200]
    assert len(secrets.values) >= 15
    for secret in secrets.values:
        assert secret not in text, f"a secret reached the logs: {secret[:4]}…"
    # Codes in any form: no 6-digit run of any mail appears in the log.
    for code in re.findall(r"^(\d{6})\r?$", "\n".join(body(m) for m in mailsink.messages), re.M):
        assert code not in text
    # The events made it to the log (so the run really went through the logged paths).
    events = [json.loads(line).get("event") for line in text.splitlines() if '"tobira.events"' in line]
    for kind in ("login", "step_up", "step_up_failed", "passkey_added", "passkey_removed", "login_failed"):
        assert kind in events, (kind, events)
