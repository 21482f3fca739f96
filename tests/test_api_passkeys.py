"""Passkeys through the JSON API: registration, "log in with passkey", step-up, management."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select, update
from starlette.testclient import TestClient

from server import store
from server.models import Ceremony, Credential, SecurityEvent, Session, User
from mailsink import body
from softkey import EDDSA, ES256, RS256, SoftKey, b64url, b64url_decode
from conftest import ORIGIN, add_customer, login

APPLE = uuid.UUID("fbfc3007-154e-4ecc-8c0b-6e020557d7bd")  # "Apple Passwords" in the shipped list


def options(c, path="/api/passkeys/register/options"):
    r = c.post(path, json={})
    assert r.status_code == 200, r.text
    return r.json()["publicKey"]


def register(c, key, name=None, opts=None):
    opts = opts or options(c)
    credential = key.create(b64url_decode(opts["challenge"]), user_handle=b64url_decode(opts["user"]["id"]))
    payload = {"credential": credential}
    if name is not None:
        payload["name"] = name
    return c.post("/api/passkeys/register/verify", json=payload)


def passkey_login(c, key, **overrides):
    opts = options(c, "/api/login/passkey/options")
    return c.post("/api/login/passkey/verify", json=key.get(b64url_decode(opts["challenge"]), **overrides))


def rows(app, model):
    return app.state.ctx.db.run_sync(lambda d: list(d.execute(select(model))))


def fresh_client(app):
    return TestClient(app, headers={"Origin": ORIGIN})


@pytest.fixture
def logged_in(client, customer, mailsink):
    """A customer just logged in with password + code (so verified: may register at once)."""
    login(client, mailsink)
    return client


# --- registration ----------------------------------------------------------------------------


def test_registration_options_follow_the_contract(logged_in, customer):
    opts = options(logged_in)
    assert opts["authenticatorSelection"]["residentKey"] == "required"
    assert opts["authenticatorSelection"]["userVerification"] == "required"
    assert opts["attestation"] == "none"
    assert [p["alg"] for p in opts["pubKeyCredParams"]] == [-8, -7, -257]
    assert opts["timeout"] == 300000 and opts["rp"] == {"name": "Tobira", "id": "localhost"}
    assert len(b64url_decode(opts["challenge"])) == 32
    handle = b64url_decode(opts["user"]["id"])
    assert len(handle) == 32 and handle == customer.user_handle
    assert b"TARO" not in handle and opts["excludeCredentials"] == []
    assert options(logged_in)["challenge"] != opts["challenge"]


@pytest.mark.parametrize("alg", [ES256, EDDSA, RS256])
def test_register_each_algorithm(logged_in, alg, app):
    r = register(logged_in, SoftKey(alg))
    assert r.status_code == 201, r.text
    stored = rows(app, Credential)[0]
    assert stored.algorithm == alg


def test_registered_passkey_is_described(logged_in, mailsink, app):
    key = SoftKey(ES256, aaguid=APPLE)
    r = register(logged_in, key)
    p = r.json()["passkey"]
    assert p["id"] == b64url(key.credential_id) and p["provider"] == "Apple Passwords"
    assert p["name"] == "Apple Passwords" and p["synced"] is True and p["backup_eligible"] is True
    assert p["transports"] == ["hybrid", "internal"] and p["last_used_at"] is None
    assert p["created_at"].endswith("+00:00")
    msg = mailsink.wait_for(lambda m: "パスキーを登録しました" in str(m["Subject"]))
    assert "Apple Passwords" in body(msg) and "http" not in body(msg)
    assert "passkey_added" in [e.kind for e in rows(app, SecurityEvent)]


def test_device_bound_key_and_unknown_provider(logged_in):
    r = register(logged_in, SoftKey(ES256, synced=False), name="  会社の   セキュリティキー ")
    p = r.json()["passkey"]
    assert (p["synced"], p["backup_eligible"], p["provider"]) == (False, False, None)
    assert p["name"] == "会社の セキュリティキー"


def test_default_names_are_distinct(logged_in):
    first = register(logged_in, SoftKey(ES256, synced=False)).json()["passkey"]["name"]
    second = register(logged_in, SoftKey(ES256, synced=False)).json()["passkey"]["name"]
    assert first == "セキュリティキー" and second == "セキュリティキー (2)"


def test_exclude_credentials_lists_the_customers_passkeys(logged_in):
    key = SoftKey(ES256)
    register(logged_in, key)
    excluded = options(logged_in)["excludeCredentials"]
    assert [e["id"] for e in excluded] == [b64url(key.credential_id)]


def test_registration_needs_a_session(client, customer):
    r = client.post("/api/passkeys/register/options", json={})
    assert r.status_code == 401 and r.json()["error"]["code"] == "not_authenticated"


def test_registration_needs_an_email(make_app, mailsink, clock):
    app = make_app()
    user = add_customer(app)
    with fresh_client(app) as c:
        login(c, mailsink)
        app.state.ctx.db.run_sync(lambda d: d.execute(update(User).where(User.id == user.id).values(email=None)))
        r = c.post("/api/passkeys/register/options", json={})
        assert r.status_code == 409 and r.json()["error"]["code"] == "email_required"


def test_registration_needs_a_recent_verification(logged_in, clock, mailsink):
    clock.advance(601)
    logged_in.get("/api/session")
    r = logged_in.post("/api/passkeys/register/options", json={})
    assert r.status_code == 403 and r.json()["error"]["code"] == "step_up_required"
    assert logged_in.post("/api/step-up/code/send").json() == {"status": "code_sent"}
    r = logged_in.post("/api/step-up/code", json={"code": mailsink.last_code("taro@example.com")})
    assert r.status_code == 200
    assert register(logged_in, SoftKey(ES256)).status_code == 201


def test_trusted_device_login_must_step_up_first(client, customer, mailsink):
    login(client, mailsink, remember=True)
    client.post("/api/logout")
    assert client.post("/api/login/password", json={"customer_code": "TARO1234",
                                                    "password": "correct horse battery"}).json()["status"] == "ok"
    assert client.post("/api/passkeys/register/options", json={}).json()["error"]["code"] == "step_up_required"


def test_the_limit(logged_in, app):
    for _ in range(5):
        assert register(logged_in, SoftKey(ES256)).status_code == 201
    r = logged_in.post("/api/passkeys/register/options", json={})
    assert r.status_code == 409 and r.json()["error"]["code"] == "passkey_limit_reached"
    assert "5" in r.json()["error"]["message"]
    assert logged_in.get("/api/passkeys").json()["limit"] == 5


def test_parallel_registrations_never_pass_the_limit(logged_in, app):
    for _ in range(3):
        register(logged_in, SoftKey(ES256))
    prepared = []
    for _ in range(3):  # three ceremonies begun while only three passkeys exist
        opts = options(logged_in)
        prepared.append(SoftKey(ES256).create(b64url_decode(opts["challenge"]),
                                              user_handle=b64url_decode(opts["user"]["id"])))
    with ThreadPoolExecutor(3) as pool:
        codes = list(pool.map(lambda cred: logged_in.post("/api/passkeys/register/verify",
                                                          json={"credential": cred}).status_code, prepared))
    assert sorted(codes) == [201, 201, 409]
    assert len(rows(app, Credential)) == 5


def test_the_same_credential_cannot_be_registered_twice(logged_in, app, mailsink):
    key = SoftKey(ES256)
    assert register(logged_in, key).status_code == 201
    r = register(logged_in, key)
    assert r.status_code == 409 and r.json()["error"]["code"] == "credential_exists"
    add_customer(app, code="HANA5678", email="hana@example.com")
    with fresh_client(app) as other:
        login(other, mailsink, code="HANA5678", email="hana@example.com")
        r = register(other, key)
        assert r.status_code == 409 and r.json()["error"]["code"] == "credential_exists"
    assert len(rows(app, Credential)) == 1


def test_a_registration_ceremony_is_used_once(logged_in, app):
    opts = options(logged_in)
    cred = SoftKey(ES256).create(b64url_decode(opts["challenge"]), user_handle=b64url_decode(opts["user"]["id"]))
    assert logged_in.post("/api/passkeys/register/verify", json={"credential": cred}).status_code == 201
    r = logged_in.post("/api/passkeys/register/verify", json={"credential": cred})
    assert r.status_code == 400 and r.json()["error"]["code"] == "ceremony_expired"


def test_a_registration_ceremony_expires_after_5_minutes(logged_in, clock):
    opts = options(logged_in)
    clock.advance(300)
    r = register(logged_in, SoftKey(ES256), opts=opts)
    assert r.status_code == 400 and r.json()["error"]["code"] == "ceremony_expired"


def test_a_challenge_from_another_session_is_refused(logged_in, app, mailsink):
    opts = options(logged_in)
    with fresh_client(app) as other:
        login(other, mailsink)
        r = register(other, SoftKey(ES256), opts=opts)
        assert r.status_code == 400 and r.json()["error"]["code"] == "ceremony_expired"


def test_a_rejected_registration_says_why_and_stores_nothing(logged_in, app):
    opts = options(logged_in)
    cred = SoftKey(ES256).create(b64url_decode(opts["challenge"]), user_handle=b64url_decode(opts["user"]["id"]),
                                 origin="https://evil.example")
    r = logged_in.post("/api/passkeys/register/verify", json={"credential": cred})
    assert r.status_code == 400 and r.json()["error"]["code"] == "passkey_rejected"
    assert "別のサイト" in r.json()["error"]["message"]
    assert rows(app, Credential) == []


@pytest.mark.parametrize("payload", [{}, {"credential": "x"}, {"credential": {"id": "x"}},
                                     {"credential": {"id": "AA", "rawId": "AA", "type": "public-key",
                                                     "response": {"clientDataJSON": "!!", "attestationObject": ""}}}])
def test_unparseable_registration_is_invalid_request(logged_in, payload, app):
    options(logged_in)
    r = logged_in.post("/api/passkeys/register/verify", json=payload)
    assert r.status_code in (400, 422) and r.json()["error"]["code"] == "invalid_request"
    assert rows(app, Credential) == []


# --- log in with passkey ---------------------------------------------------------------------


@pytest.fixture
def registered(logged_in, app):
    """(app, key): TARO1234 with one device-bound ES256 passkey, logged out again."""
    key = SoftKey(ES256, synced=False)
    assert register(logged_in, key).status_code == 201
    logged_in.post("/api/logout")
    return key


def test_login_options_are_usernameless(client):
    r = client.post("/api/login/passkey/options", content=b"")
    opts = r.json()["publicKey"]
    assert opts["allowCredentials"] == [] and opts["userVerification"] == "required"
    assert opts["rpId"] == "localhost" and len(b64url_decode(opts["challenge"])) == 32
    assert "tobira_session" in r.cookies  # the ceremony is bound to this browser


def test_passkey_login(client, registered, app, mailsink):
    before = client.cookies.get("tobira_session")
    r = passkey_login(client, registered)
    assert r.status_code == 200 and r.json() == {"status": "ok", "redirect": "/account"}
    assert client.cookies.get("tobira_session") != before
    s = client.get("/api/session").json()
    assert s["auth_method"] == "passkey" and s["passkey_count"] == 1 and s["verified_at"]
    stored = rows(app, Credential)[0]
    assert stored.sign_count == 1 and stored.last_used_at is not None
    mailsink.wait_for(lambda m: "ログインのお知らせ" in str(m["Subject"]) and "パスキー" in body(m))


def test_a_body_larger_than_any_assertion_is_refused_unread(client, registered, app):
    """Maximum-size junk is turned away by its announced size (400, the contract's "sizes"), and
    the ceremony it claims to answer is not used up by it."""
    from server.verify import MAX_AUTHENTICATION_JSON

    opts = options(client, "/api/login/passkey/options")
    real = registered.get(b64url_decode(opts["challenge"]))
    padded = dict(real, clientExtensionResults={"pad": "A" * MAX_AUTHENTICATION_JSON})
    r = client.post("/api/login/passkey/verify", json=padded)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"
    assert client.post("/api/login/passkey/verify", json=real).status_code == 200
    assert rows(app, Credential)[0].sign_count == 1


def test_junk_registrations_from_strangers_are_refused_before_their_body(client):
    junk = b'{"credential": {"id": "' + b"A" * 60000 + b'"}}'
    r = client.post("/api/passkeys/register/verify", content=junk, headers={"Content-Type": "application/json"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "not_authenticated"
    r = client.post("/api/step-up/passkey/verify", content=junk, headers={"Content-Type": "application/json"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "not_authenticated"


def test_synced_passkey_with_zero_counter_logs_in_again_and_again(logged_in, app):
    key = SoftKey(EDDSA, synced=True)
    register(logged_in, key)
    for _ in range(3):
        logged_in.post("/api/logout")
        assert passkey_login(logged_in, key).status_code == 200


def test_unknown_credential_is_named(client, registered):
    stranger = SoftKey(ES256)
    stranger.user_handle = registered.user_handle
    r = passkey_login(client, stranger)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unknown_credential"
    assert r.json()["error"]["credential_id"] == b64url(stranger.credential_id)


@pytest.mark.parametrize("handle", [None, b"\x00" * 32])
def test_user_handle_must_be_the_owners(client, registered, app, handle):
    r = passkey_login(client, registered, user_handle=handle)
    assert r.status_code == 401 and r.json()["error"]["code"] == "passkey_rejected"
    assert client.get("/api/session").status_code == 401


def test_counter_going_backwards_is_refused_and_reported(client, registered, app, mailsink):
    assert passkey_login(client, registered).status_code == 200
    client.post("/api/logout")
    r = passkey_login(client, registered, counter=1)  # a clone replaying an old count
    assert r.status_code == 401 and r.json()["error"]["code"] == "passkey_rejected"
    assert "passkey_clone_suspected" in [e.kind for e in rows(app, SecurityEvent)]
    mailsink.wait_for(lambda m: "お断り" in str(m["Subject"]))
    assert rows(app, Credential)[0].sign_count == 1, "nothing changed"


def test_bad_signature_is_rejected_and_changes_nothing(client, registered, app):
    def flip(parts):
        parts["signature"] = parts["signature"][:-1] + bytes([parts["signature"][-1] ^ 1])

    r = passkey_login(client, registered, tamper=flip)
    assert r.status_code == 401 and r.json()["error"]["code"] == "passkey_rejected"
    assert rows(app, Credential)[0].sign_count == 0 and rows(app, Credential)[0].last_used_at is None


def test_a_login_ceremony_is_used_once_even_in_parallel(client, registered, app):
    opts = options(client, "/api/login/passkey/options")
    assertion = registered.get(b64url_decode(opts["challenge"]))
    with ThreadPoolExecutor(10) as pool:
        codes = list(pool.map(lambda _: client.post("/api/login/passkey/verify", json=assertion).status_code,
                              range(10)))
    assert codes.count(200) == 1 and set(codes) <= {200, 400}
    assert len([s for s in rows(app, Session) if s.state == "active"]) == 1


def test_registration_challenge_does_not_serve_a_login(client, registered, app, mailsink):
    login(client, mailsink)
    opts = options(client)
    client.post("/api/logout")
    r = client.post("/api/login/passkey/verify", json=registered.get(b64url_decode(opts["challenge"])))
    assert r.status_code == 400 and r.json()["error"]["code"] == "ceremony_expired"


def test_passkey_login_to_a_password_locked_account_works(client, registered, app):
    # security.md 31: the automatic lock closes the password path only.
    user = app.state.ctx.db.run_sync(store.user_by_code, "TARO1234")
    app.state.ctx.db.run_sync(store.lock_user, user.id, app.state.ctx.clock())
    assert passkey_login(client, registered).status_code == 200


def test_passkey_login_to_an_account_on_hold_is_refused(client, registered, app):
    from server import accounts
    app.state.ctx.db.run_sync(accounts.hold, "TARO1234", now=app.state.ctx.clock(), reason="takeover?")
    r = passkey_login(client, registered)
    assert r.status_code == 423 and r.json()["error"]["code"] == "account_locked"
    assert client.get("/api/session").status_code == 401


def test_wrong_origin_at_login(client, registered):
    r = passkey_login(client, registered, origin="http://localhost:8000.evil.example")
    assert r.status_code == 401 and r.json()["error"]["code"] == "passkey_rejected"


# --- step-up ---------------------------------------------------------------------------------


def test_code_step_up_moves_verified_at_and_rotates_the_session(logged_in, mailsink, clock, app):
    before = logged_in.get("/api/session").json()["verified_at"]
    old_cookie = logged_in.cookies.get("tobira_session")
    clock.advance(60)
    logged_in.post("/api/step-up/code/send")
    r = logged_in.post("/api/step-up/code", json={"code": mailsink.last_code("taro@example.com")})
    assert r.status_code == 200 and r.json()["status"] == "ok" and r.json()["verified_at"] > before
    assert logged_in.get("/api/session").json()["verified_at"] == r.json()["verified_at"]
    with TestClient(app, cookies={"tobira_session": old_cookie}) as stale:
        assert stale.get("/api/session").status_code == 401


def test_wrong_step_up_code(logged_in, mailsink):
    logged_in.post("/api/step-up/code/send")
    code = mailsink.last_code("taro@example.com")
    r = logged_in.post("/api/step-up/code", json={"code": f"{(int(code) + 1) % 10**6:06d}"})
    assert r.status_code == 400 and r.json()["error"] == {**r.json()["error"], "code": "code_invalid",
                                                          "attempts_left": 2}


def test_step_up_needs_a_session(client):
    assert client.post("/api/step-up/code/send").status_code == 401
    assert client.post("/api/step-up/passkey/options").status_code == 401


def test_passkey_step_up(client, registered, mailsink, clock):
    login(client, mailsink)
    clock.advance(601)
    assert client.post("/api/passkeys/register/options", json={}).status_code == 403
    opts = options(client, "/api/step-up/passkey/options")
    assert [c["id"] for c in opts["allowCredentials"]] == [b64url(registered.credential_id)]
    r = client.post("/api/step-up/passkey/verify", json=registered.get(b64url_decode(opts["challenge"])))
    assert r.status_code == 200 and r.json()["status"] == "ok"
    assert client.post("/api/passkeys/register/options", json={}).status_code == 200


def test_step_up_with_another_customers_passkey_is_refused(client, registered, app, mailsink):
    add_customer(app, code="HANA5678", email="hana@example.com")
    hana_key = SoftKey(ES256)
    with fresh_client(app) as hana:
        login(hana, mailsink, code="HANA5678", email="hana@example.com")
        register(hana, hana_key)
    login(client, mailsink)
    opts = options(client, "/api/step-up/passkey/options")
    r = client.post("/api/step-up/passkey/verify", json=hana_key.get(b64url_decode(opts["challenge"])))
    assert r.status_code == 401 and r.json()["error"]["code"] == "passkey_rejected"


def test_passkey_step_up_without_a_passkey(logged_in):
    r = logged_in.post("/api/step-up/passkey/options", json={})
    assert r.status_code == 409 and r.json()["error"]["code"] == "no_passkey"


# --- management ------------------------------------------------------------------------------


def test_list_is_oldest_first(logged_in, clock):
    names = []
    for i in range(3):
        clock.advance(1)
        names.append(register(logged_in, SoftKey(ES256), name=f"key {i}").json()["passkey"]["name"])
    listed = logged_in.get("/api/passkeys").json()
    assert [p["name"] for p in listed["passkeys"]] == names and listed["limit"] == 5
    assert set(listed["passkeys"][0]) == {"id", "name", "provider", "backup_eligible", "synced", "created_at",
                                          "last_used_at", "transports", "hold_until"}


def test_list_needs_a_session(client):
    assert client.get("/api/passkeys").status_code == 401


def test_rename(logged_in, app):
    pid = register(logged_in, SoftKey(ES256)).json()["passkey"]["id"]
    r = logged_in.patch(f"/api/passkeys/{pid}", json={"name": "  iPhone  "})
    assert r.status_code == 200 and r.json()["passkey"]["name"] == "iPhone"
    assert "passkey_renamed" in [e.kind for e in rows(app, SecurityEvent)]


@pytest.mark.parametrize("name", ["", "   ", "x" * 65, "bad\x00name"])
def test_rename_refuses_bad_names(logged_in, name):
    pid = register(logged_in, SoftKey(ES256)).json()["passkey"]["id"]
    r = logged_in.patch(f"/api/passkeys/{pid}", json={"name": name})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"


def test_sixty_four_characters_is_fine(logged_in):
    pid = register(logged_in, SoftKey(ES256)).json()["passkey"]["id"]
    assert logged_in.patch(f"/api/passkeys/{pid}", json={"name": "あ" * 64}).status_code == 200


def test_another_customers_passkey_is_not_found(logged_in, app, mailsink):
    pid = register(logged_in, SoftKey(ES256)).json()["passkey"]["id"]
    add_customer(app, code="HANA5678", email="hana@example.com")
    with fresh_client(app) as hana:
        login(hana, mailsink, code="HANA5678", email="hana@example.com")
        assert hana.patch(f"/api/passkeys/{pid}", json={"name": "mine"}).status_code == 404
        assert hana.delete(f"/api/passkeys/{pid}").status_code == 404
        assert hana.delete("/api/passkeys/not-base64!").status_code == 404
    assert logged_in.get("/api/passkeys").json()["passkeys"][0]["name"] != "mine"


def test_delete_needs_a_recent_step_up(logged_in, clock, mailsink, app):
    pid = register(logged_in, SoftKey(ES256)).json()["passkey"]["id"]
    clock.advance(601)
    r = logged_in.delete(f"/api/passkeys/{pid}")
    assert r.status_code == 403 and r.json()["error"]["code"] == "step_up_required"
    assert len(rows(app, Credential)) == 1
    logged_in.post("/api/step-up/code/send")
    logged_in.post("/api/step-up/code", json={"code": mailsink.last_code("taro@example.com")})
    assert logged_in.delete(f"/api/passkeys/{pid}").status_code == 204
    assert rows(app, Credential) == []
    mailsink.wait_for(lambda m: "パスキーを削除しました" in str(m["Subject"]))
    assert "passkey_removed" in [e.kind for e in rows(app, SecurityEvent)]


def test_expired_ceremonies_are_swept(logged_in, app, clock):
    options(logged_in)
    clock.advance(301)
    app.state.ctx.db.run_sync(store.delete_expired_ceremonies, clock())
    assert rows(app, Ceremony) == []


def test_an_overlong_credential_id_at_login_is_rejected_not_unknown(client, registered):
    long_id = bytes(1100)
    r = passkey_login(client, registered, raw_id=long_id, id=b64url(long_id))
    assert r.status_code == 401 and r.json()["error"]["code"] == "passkey_rejected"


def test_wrong_step_up_codes_count_toward_the_lock(make_app, mailsink):
    app = make_app(lock_after_failures=2)
    add_customer(app)
    with fresh_client(app) as c:
        login(c, mailsink)
        c.post("/api/step-up/code/send")
        code = mailsink.last_code("taro@example.com")
        wrong = f"{(int(code) + 1) % 10**6:06d}"
        assert c.post("/api/step-up/code", json={"code": wrong}).status_code == 400
        assert c.post("/api/step-up/code", json={"code": wrong}).status_code == 400
        assert app.state.ctx.db.run_sync(store.user_by_code, "TARO1234").locked_at is not None
        assert c.post("/api/step-up/code", json={"code": code}).status_code == 423
        kinds = [e.kind for e in rows(app, SecurityEvent)]
        assert kinds.count("step_up_failed") == 2 and "account_locked" in kinds
