"""The automatic passkey upgrade (issue 14, point 1; contract: "Passkey adoption and reach"):
right after a code login the page asks for a conditional create; only a ceremony the server issued
as conditional accepts a registration without user presence, and a passkey made without user
verification signs nothing in until a use with UV."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import select

from server import stats
from server.models import Credential, SecurityEvent
from mailsink import body
from softkey import AT, BE, BS, UP, UV, SoftKey, b64url_decode
from conftest import login

APPLE = uuid.UUID("fbfc3007-154e-4ecc-8c0b-6e020557d7bd")  # "Apple Passwords" in the shipped list
SILENT = AT | BE | BS  # what a password manager's conditional create may send: no UP, no UV


def conditional_options(c) -> dict:
    r = c.post("/api/passkeys/register/options", json={"mediation": "conditional"})
    assert r.status_code == 200, r.text
    return r.json()["publicKey"]


def ordinary_options(c) -> dict:
    r = c.post("/api/passkeys/register/options", json={})
    assert r.status_code == 200, r.text
    return r.json()["publicKey"]


def answer(c, key, opts, **overrides):
    credential = key.create(b64url_decode(opts["challenge"]), user_handle=b64url_decode(opts["user"]["id"]),
                            **overrides)
    return c.post("/api/passkeys/register/verify", json={"credential": credential})


def passkeys(app) -> list:
    return app.state.ctx.db.run_sync(lambda d: list(d.execute(select(Credential))))


def events(app, kind) -> list[dict]:
    found = app.state.ctx.db.run_sync(
        lambda d: list(d.execute(select(SecurityEvent).where(SecurityEvent.kind == kind))))
    return [json.loads(e.detail or "{}") for e in found]


@pytest.fixture
def after_code_login(client, customer, mailsink):
    login(client, mailsink)
    return client


def test_conditional_options_prefer_uv_and_are_otherwise_the_same(after_code_login, customer):
    opts = conditional_options(after_code_login)
    plain = ordinary_options(after_code_login)
    assert opts["authenticatorSelection"]["userVerification"] == "preferred"
    assert plain["authenticatorSelection"]["userVerification"] == "required"
    assert opts["authenticatorSelection"]["residentKey"] == "required"
    assert opts["hints"] == ["client-device"] and opts["user"] == plain["user"]
    assert opts["challenge"] != plain["challenge"]


def test_a_silent_passkey_is_accepted_from_a_conditional_ceremony(app, after_code_login, mailsink):
    r = answer(after_code_login, SoftKey(aaguid=APPLE), conditional_options(after_code_login), flags=SILENT)
    assert r.status_code == 201, r.text
    made = r.json()["passkey"]
    assert made["name"] == "Apple Passwords" and made["provider"] == "Apple Passwords"
    # Made from a code session: on hold like any such passkey.
    assert made["hold_until"] is not None
    [stored] = passkeys(app)
    assert stored.uv_initialized is False
    [added] = events(app, "passkey_added")
    assert added["automatic"] is True and added["name"] == "Apple Passwords"
    mail = mailsink.wait_for(lambda m: "パスキーを登録しました" in str(m["Subject"]))
    assert "Apple Passwords" in body(mail)


def test_a_passkey_made_with_uv_in_a_conditional_ceremony_is_usable_at_once(app, after_code_login):
    r = answer(after_code_login, SoftKey(), conditional_options(after_code_login), flags=AT | BE | BS | UV)
    assert r.status_code == 201, r.text
    assert passkeys(app)[0].uv_initialized is True
    assert events(app, "passkey_added")[0]["automatic"] is True


def test_no_user_presence_is_refused_on_an_ordinary_ceremony(app, after_code_login):
    for flags in (SILENT, SILENT | UV):
        r = answer(after_code_login, SoftKey(), ordinary_options(after_code_login), flags=flags)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "passkey_rejected"
    assert passkeys(app) == []
    assert events(app, "passkey_added") == []
    assert [e["reason"] for e in events(app, "passkey_registration_rejected")] == ["up", "up"]


def test_the_leniency_belongs_to_the_ceremony_not_to_the_session(app, after_code_login):
    """A conditional ceremony open beside an ordinary one does not make the ordinary one lenient."""
    conditional = conditional_options(after_code_login)
    ordinary = ordinary_options(after_code_login)
    r = answer(after_code_login, SoftKey(), ordinary, flags=SILENT)
    assert r.status_code == 400 and r.json()["error"]["code"] == "passkey_rejected"
    r = answer(after_code_login, SoftKey(), conditional, flags=SILENT)
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("override", [
    {"origin": "https://evil.example"},
    {"rp_id": "evil.example"},
    {"type": "webauthn.get"},
    {"cross_origin": True},
    {"flags": AT | BS},  # backup state without backup eligibility
], ids=["origin", "rp_id", "type", "cross_origin", "bs_without_be"])
def test_a_conditional_ceremony_loosens_nothing_else(app, after_code_login, override):
    opts = conditional_options(after_code_login)
    r = answer(after_code_login, SoftKey(), opts, **{"flags": SILENT, **override})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "passkey_rejected"
    assert passkeys(app) == []


def test_a_conditional_ceremony_is_single_use(after_code_login):
    opts = conditional_options(after_code_login)
    assert answer(after_code_login, SoftKey(), opts, flags=SILENT).status_code == 201
    again = answer(after_code_login, SoftKey(), opts, flags=SILENT)
    assert again.status_code == 400 and again.json()["error"]["code"] == "ceremony_expired"


def test_a_silent_passkey_cannot_log_in_or_step_up_without_uv_until_its_first_uv_use(app, after_code_login):
    key = SoftKey(aaguid=APPLE)
    assert answer(after_code_login, key, conditional_options(after_code_login), flags=SILENT).status_code == 201

    step = after_code_login.post("/api/step-up/passkey/options", json={}).json()["publicKey"]
    r = after_code_login.post("/api/step-up/passkey/verify",
                              json=key.get(b64url_decode(step["challenge"]), flags=UP | BE | BS))
    assert r.status_code == 401 and r.json()["error"]["code"] == "passkey_rejected"

    login_opts = after_code_login.post("/api/login/passkey/options", json={}).json()["publicKey"]
    r = after_code_login.post("/api/login/passkey/verify",
                              json=key.get(b64url_decode(login_opts["challenge"]), flags=UP | BE | BS))
    assert r.status_code == 401 and r.json()["error"]["code"] == "passkey_rejected"
    assert passkeys(app)[0].uv_initialized is False

    login_opts = after_code_login.post("/api/login/passkey/options", json={}).json()["publicKey"]
    r = after_code_login.post("/api/login/passkey/verify", json=key.get(b64url_decode(login_opts["challenge"])))
    assert r.status_code == 200, r.text
    assert passkeys(app)[0].uv_initialized is True


@pytest.mark.parametrize("payload", [
    {"mediation": "silent"},
    {"mediation": "required"},
    {"mediation": True},
    {"mediation": "conditional", "authenticator": "security-key"},
])
def test_other_mediations_and_a_conditional_security_key_are_refused(after_code_login, payload):
    r = after_code_login.post("/api/passkeys/register/options", json=payload)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid_request"


def test_conditional_options_keep_the_registration_rules(client, customer, mailsink, app):
    """Not logged in: 401; at the limit: 409, like any registration."""
    r = client.post("/api/passkeys/register/options", json={"mediation": "conditional"})
    assert r.status_code == 401
    login(client, mailsink)
    for _ in range(app.state.ctx.settings.max_passkeys):
        assert answer(client, SoftKey(), ordinary_options(client)).status_code == 201
    r = client.post("/api/passkeys/register/options", json={"mediation": "conditional"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "passkey_limit_reached"


def test_stats_count_automatic_upgrades_only(app, after_code_login):
    assert answer(after_code_login, SoftKey(), ordinary_options(after_code_login)).status_code == 201
    assert answer(after_code_login, SoftKey(), conditional_options(after_code_login), flags=SILENT).status_code == 201
    numbers = app.state.ctx.db.run_sync(stats.adoption, app.state.ctx.settings, app.state.ctx.clock())
    assert numbers["automatic_upgrades"] == 1
