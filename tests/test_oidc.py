"""OpenID Connect provider (contract: "OpenID Connect"): Authlib's client against a live Tobira.

The app's side is Authlib's OAuth2Client (PKCE S256, client authentication, the token request);
the ID token is checked with joserfc against the published JWKS, as any relying party would.
The browser's side (the customer's login, the authorization request with its cookie) is a plain
HTTP client with a cookie jar, logging in with a software passkey or the e-mailed code.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from datetime import timedelta
from urllib.parse import urlencode, urlsplit

import httpx2
import pytest
from sqlalchemy import select

from server import store_oidc
from server.models import OAuthGrant, SecurityEvent
from softkey import SoftKey
from conftest import PASSWORD, add_customer
from oidckit import REDIRECT, Live, add_passkey, authorize, code_login, exchange, id_claims, passkey_login, query_of

# --- discovery and keys -------------------------------------------------------------------------

def test_discovery_and_keys_describe_the_code_flow_only(live):
    server = live()
    doc = httpx2.get(server.url("/.well-known/openid-configuration")).json()
    assert doc["issuer"] == server.origin
    assert doc["authorization_endpoint"] == server.url("/oauth/authorize")
    assert doc["response_types_supported"] == ["code"]
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert set(doc["acr_values_supported"]) == {"phr", "phrh"}
    keys = httpx2.get(doc["jwks_uri"]).json()["keys"]
    assert {k["alg"] for k in keys} == {"RS256", "ES256"}
    assert all("d" not in k and "p" not in k for k in keys)  # never a private part


def test_private_keys_are_stored_encrypted_and_rotation_keeps_the_old_key_published(live, clock):
    server = live()
    before = {k["kid"] for k in httpx2.get(server.url("/oauth/jwks")).json()["keys"]}
    rows = server.ctx.db.run_sync(store_oidc.signing_keys, retired_after=clock())
    assert len(rows) == 2 and all('"d"' not in row.private_jwk for row in rows)
    from server import oidc_keys
    new = server.ctx.db.run_sync(oidc_keys.rotate, server.ctx.settings.secret_key, clock())
    server.ctx.keys._read_at = 0  # this instance reads the table again now, not in 30 s
    after = {k["kid"] for k in httpx2.get(server.url("/oauth/jwks")).json()["keys"]}
    assert after == before | set(new)
    clock.advance(oidc_keys.PUBLISHED_AFTER_RETIREMENT.total_seconds() + 1)
    server.ctx.keys._read_at = 0
    assert {k["kid"] for k in httpx2.get(server.url("/oauth/jwks")).json()["keys"]} == set(new)


# --- the code flow ------------------------------------------------------------------------------

@pytest.mark.parametrize("synced, amr, acr", [(False, ["hwk", "user", "mfa"], "phrh"),
                                              (True, ["swk", "user", "mfa"], "phr")])
def test_a_passkey_login_signs_the_customer_in_to_the_app(live, mailsink, synced, amr, acr):
    server = live(new_passkey_hold=0)
    user = add_customer(server.app)
    client_id, secret = server.add_client()
    browser, key = server.browser(), SoftKey(synced=synced, origin=server.origin)
    code_login(browser, mailsink)
    add_passkey(browser, key)
    browser.cookies.clear()
    passkey_login(browser, key)
    rp = server.rp(client_id, secret)
    r, verifier, nonce = authorize(server, browser, rp, state="s-123")
    assert r.status_code == 303 and r.headers["cache-control"] == "no-store"
    answer = query_of(r.headers["location"])
    assert answer["state"] == "s-123" and answer["iss"] == server.origin  # RFC 9207
    token = exchange(server, rp, r.headers["location"], verifier)
    claims = id_claims(server, token, nonce, client_id)
    assert claims["amr"] == amr and claims["acr"] == acr
    assert claims["sub"] == base64.urlsafe_b64encode(user.user_handle).rstrip(b"=").decode() != "TARO1234"
    assert claims["name"] == "山田 太郎" and claims["email"] == "taro@example.com"
    assert claims["customer_code"] == "TARO1234" and claims["important_operations_allowed"] is True
    assert abs(claims["auth_time"] - server.ctx.clock().timestamp()) < 5
    info = rp.get(server.url("/oauth/userinfo")).json()
    assert info["sub"] == claims["sub"] and info["customer_code"] == "TARO1234"
    header = json.loads(base64.urlsafe_b64decode(token["access_token"].split(".")[0] + "=="))
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256"  # RFC 9068


def test_the_legacy_login_is_pwd_otp_mfa_without_acr(live, mailsink):
    server = live()
    add_customer(server.app)
    client_id, secret = server.add_client(scopes="openid")
    browser = server.browser()
    code_login(browser, mailsink)
    rp = server.rp(client_id, secret, scope="openid")
    r, verifier, nonce = authorize(server, browser, rp)
    claims = id_claims(server, exchange(server, rp, r.headers["location"], verifier), nonce, client_id)
    assert claims["amr"] == ["pwd", "otp", "mfa"] and "acr" not in claims
    assert "name" not in claims and "email" not in claims  # only what the scopes give


def test_a_passkey_still_on_hold_gives_no_acr(live, mailsink):
    server = live()  # the default hold: a passkey added from a code login is held a day
    add_customer(server.app)
    client_id, secret = server.add_client()
    browser, key = server.browser(), SoftKey(synced=False, origin=server.origin)
    code_login(browser, mailsink)
    add_passkey(browser, key)
    browser.cookies.clear()
    passkey_login(browser, key)
    rp = server.rp(client_id, secret)
    r, verifier, nonce = authorize(server, browser, rp)
    claims = id_claims(server, exchange(server, rp, r.headers["location"], verifier), nonce, client_id)
    assert claims["amr"] == ["hwk", "user", "mfa"] and "acr" not in claims
    r, _, _ = authorize(server, browser, rp, acr_values="phr", prompt="none")
    assert query_of(r.headers["location"])["error"] == "unmet_authentication_requirements"


def test_without_a_session_the_login_page_comes_first_and_the_request_comes_back(live, mailsink, clock):
    server = live()
    add_customer(server.app)
    client_id, secret = server.add_client()
    browser, rp = server.browser(), server.rp(client_id, secret)
    r, verifier, nonce = authorize(server, browser, rp, ui_locales="en-US ja")
    assert r.status_code == 303
    login_url = urlsplit(r.headers["location"])
    assert login_url.path == "/login" and query_of(r.headers["location"]).get("lang") == "en"
    next_path = query_of(r.headers["location"])["next"]
    assert next_path.startswith("/oauth/authorize?") and "tobira_after=" in next_path
    assert browser.get(r.headers["location"]).status_code == 200  # the login page itself
    clock.advance(1)  # (the test's clock stands still: the login comes after the request)
    r = browser.post("/api/login/password", json={"customer_code": "TARO1234", "password": PASSWORD,
                                                  "next": next_path})
    r = browser.post("/api/login/code", json={"code": mailsink.last_code("taro@example.com")})
    assert r.json()["redirect"] == next_path  # the login lands back on the authorization request
    r = browser.get(next_path)
    token = exchange(server, rp, r.headers["location"], verifier)
    assert id_claims(server, token, nonce, client_id)["amr"] == ["pwd", "otp", "mfa"]


def test_prompt_none_without_a_session_is_login_required_at_the_app(live):
    server = live()
    client_id, secret = server.add_client()
    r, _, _ = authorize(server, server.browser(), server.rp(client_id, secret), prompt="none", state="xyz")
    answer = query_of(r.headers["location"])
    assert r.headers["location"].startswith(REDIRECT)
    assert answer["error"] == "login_required" and answer["state"] == "xyz" and answer["iss"] == server.origin
    assert "code" not in answer


def test_prompt_login_asks_again_even_with_a_session(live, mailsink, clock):
    server = live()
    add_customer(server.app)
    client_id, secret = server.add_client()
    browser, rp = server.browser(), server.rp(client_id, secret)
    code_login(browser, mailsink)
    r, _, _ = authorize(server, browser, rp, prompt="login")
    assert urlsplit(r.headers["location"]).path == "/login"
    next_path = query_of(r.headers["location"])["next"]
    assert "prompt=" not in next_path
    # Coming back without a new login: still the login page (the old login is older than the request).
    clock.advance(2)
    assert urlsplit(browser.get(next_path).headers["location"]).path == "/login"


def test_acr_values_ask_for_a_passkey_and_a_code_login_does_not_loop(live, mailsink, clock):
    server = live()
    add_customer(server.app)
    client_id, secret = server.add_client()
    browser, rp = server.browser(), server.rp(client_id, secret)
    code_login(browser, mailsink)
    r, _, _ = authorize(server, browser, rp, acr_values="phr", prompt="none")
    assert query_of(r.headers["location"])["error"] == "unmet_authentication_requirements"
    r, _, _ = authorize(server, browser, rp, acr_values="phr")
    assert urlsplit(r.headers["location"]).path == "/login"
    next_path = query_of(r.headers["location"])["next"]
    clock.advance(1)
    code_login(browser, mailsink)  # the customer logs in again, with the code, not a passkey
    r = browser.get(next_path)
    answer = query_of(r.headers["location"])
    assert r.headers["location"].startswith(REDIRECT) and answer["error"] == "unmet_authentication_requirements"


def test_a_client_that_requires_passkeys_gets_none_but_passkey_logins_from_the_date(live, mailsink, clock):
    server = live(passkey_mandatory_from=clock() - timedelta(days=1), new_passkey_hold=0)
    add_customer(server.app)
    strict_id, strict_secret = server.add_client(require_passkey=True)
    browser = server.browser()
    code_login(browser, mailsink)
    r, _, _ = authorize(server, browser, server.rp(strict_id, strict_secret), prompt="none")
    assert query_of(r.headers["location"])["error"] == "unmet_authentication_requirements"
    other_id, other_secret = server.add_client()
    r, _, _ = authorize(server, browser, server.rp(other_id, other_secret), prompt="none")
    assert "code" in query_of(r.headers["location"])


# --- what is refused ----------------------------------------------------------------------------

def _raw_authorize(server: Live, browser, **params):
    base = {"response_type": "code", "scope": "openid", "redirect_uri": REDIRECT, "state": "st",
            "code_challenge": base64.urlsafe_b64encode(hashlib.sha256(b"v" * 43).digest()).rstrip(b"=").decode(),
            "code_challenge_method": "S256"}
    base.update({k: v for k, v in params.items() if v is not None})
    for k in [k for k, v in params.items() if v is None]:
        base.pop(k, None)
    return browser.get("/oauth/authorize?" + urlencode(base))


@pytest.mark.parametrize("params, error", [
    ({"client_id": "nope"}, "invalid_client"),
    ({"redirect_uri": "https://evil.example/callback"}, "invalid_request"),
    ({"redirect_uri": REDIRECT + "/"}, "invalid_request"),  # exact match: not even a slash more
    ({"redirect_uri": None}, "invalid_request"),
])
def test_an_untrusted_redirect_uri_gets_an_error_page_never_a_redirect(live, params, error):
    server = live()
    client_id, _ = server.add_client()
    r = _raw_authorize(server, server.browser(), **{"client_id": client_id, **params})
    assert r.status_code == 400 and "location" not in r.headers
    assert f'data-error="{error}"' in r.text


@pytest.mark.parametrize("params, error", [
    ({"code_challenge": None}, "invalid_request"),
    ({"code_challenge_method": "plain"}, "invalid_request"),
    ({"code_challenge_method": None}, "invalid_request"),
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"response_type": "code id_token"}, "unsupported_response_type"),
    ({"scope": "profile"}, "invalid_scope"),
    ({"scope": "openid admin"}, "invalid_scope"),
    ({"prompt": "none login"}, "invalid_request"),
    ({"prompt": "consent"}, "invalid_request"),
    ({"max_age": "-1"}, "invalid_request"),
    ({"request": "eyJ..."}, "request_not_supported"),
])
def test_a_bad_authorization_request_is_answered_at_the_registered_uri(live, params, error):
    server = live()
    client_id, _ = server.add_client()
    r = _raw_authorize(server, server.browser(), client_id=client_id, **params)
    assert r.status_code == 303 and r.headers["location"].startswith(REDIRECT + "?"), r.text[r.text.find("oauth-error"):][:300]
    answer = query_of(r.headers["location"])
    assert answer["error"] == error and answer["state"] == "st" and answer["iss"] == server.origin
    assert "code" not in answer


def test_a_parameter_given_twice_is_refused(live):
    server = live()
    client_id, _ = server.add_client()
    r = server.browser().get(f"/oauth/authorize?client_id={client_id}&client_id={client_id}&redirect_uri={REDIRECT}")
    assert r.status_code == 400 and "location" not in r.headers


@pytest.fixture
def issued(live, mailsink):
    """A logged-in browser and a code just issued to a confidential client."""
    server = live()
    add_customer(server.app)
    client_id, secret = server.add_client()
    browser, rp = server.browser(), server.rp(client_id, secret)
    code_login(browser, mailsink)
    r, verifier, nonce = authorize(server, browser, rp)
    return server, rp, r.headers["location"], verifier, client_id, secret


def _token_post(server: Live, data: dict, auth=None, **kwargs):
    return httpx2.post(server.url("/oauth/token"), data=data, auth=auth, **kwargs)


def test_a_wrong_verifier_gets_nothing_and_uses_the_code_up(issued):
    server, rp, location, verifier, client_id, secret = issued
    code = query_of(location)["code"]
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "code_verifier": secrets.token_urlsafe(48)}
    r = _token_post(server, data, auth=(client_id, secret))
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant" and "access_token" not in r.json()
    r = _token_post(server, {**data, "code_verifier": verifier}, auth=(client_id, secret))
    assert r.json()["error"] == "invalid_grant"  # one try only


def test_a_replayed_code_revokes_what_it_issued(issued):
    server, rp, location, verifier, client_id, secret = issued
    token = exchange(server, rp, location, verifier)
    assert rp.get(server.url("/oauth/userinfo")).status_code == 200
    code = query_of(location)["code"]
    r = _token_post(server, {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                             "code_verifier": verifier}, auth=(client_id, secret))
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    r = httpx2.get(server.url("/oauth/userinfo"), headers={"Authorization": f"Bearer {token['access_token']}"})
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]
    kinds = [e.kind for e in server.ctx.db.run_sync(lambda d: list(d.execute(select(SecurityEvent))))]
    assert "oauth_code_replayed" in kinds


def test_an_expired_code_is_refused(issued, clock):
    server, rp, location, verifier, client_id, secret = issued
    clock.advance(61)
    r = _token_post(server, {"grant_type": "authorization_code", "code": query_of(location)["code"],
                             "redirect_uri": REDIRECT, "code_verifier": verifier}, auth=(client_id, secret))
    assert r.json()["error"] == "invalid_grant"


def test_another_clients_code_is_refused_and_left_for_its_owner(issued):
    server, rp, location, verifier, client_id, secret = issued
    other_id, other_secret = server.add_client()
    data = {"grant_type": "authorization_code", "code": query_of(location)["code"], "redirect_uri": REDIRECT,
            "code_verifier": verifier}
    r = _token_post(server, data, auth=(other_id, other_secret))
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert "access_token" in exchange(server, rp, location, verifier)


@pytest.mark.parametrize("how", ["wrong secret", "no secret", "unknown client", "bearer scheme"])
def test_client_authentication_failures_are_invalid_client(issued, how):
    server, rp, location, verifier, client_id, secret = issued
    data = {"grant_type": "authorization_code", "code": query_of(location)["code"], "redirect_uri": REDIRECT,
            "code_verifier": verifier}
    if how == "wrong secret":
        r = _token_post(server, data, auth=(client_id, secret + "x"))
    elif how == "no secret":
        r = _token_post(server, {**data, "client_id": client_id})
    elif how == "unknown client":
        r = _token_post(server, data, auth=("nobody", secret))
    else:
        r = _token_post(server, data, headers={"Authorization": f"Bearer {secret}"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    assert r.headers["cache-control"] == "no-store"
    assert "access_token" in exchange(server, rp, location, verifier)  # the code was not used up


def test_a_public_client_may_not_send_a_secret_and_needs_no_origin(live, mailsink):
    server = live()
    add_customer(server.app)
    client_id, secret = server.add_client(public=True)
    assert secret is None
    browser, rp = server.browser(), server.rp(client_id, None)
    code_login(browser, mailsink)
    r, verifier, nonce = authorize(server, browser, rp)
    data = {"grant_type": "authorization_code", "code": query_of(r.headers["location"])["code"],
            "redirect_uri": REDIRECT, "code_verifier": verifier, "client_id": client_id}
    refused = _token_post(server, {**data, "client_secret": "guess"})
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    ok = _token_post(server, data)  # httpx2.post sends no Origin: a server-to-server call
    assert ok.status_code == 200, ok.text
    assert id_claims(server, ok.json(), nonce, client_id)["aud"] == client_id


def test_the_token_endpoint_takes_forms_only_and_known_grant_types(issued):
    server, rp, location, verifier, client_id, secret = issued
    r = httpx2.post(server.url("/oauth/token"), json={"grant_type": "authorization_code"}, auth=(client_id, secret))
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = _token_post(server, {"grant_type": "password", "username": "x", "password": "y"}, auth=(client_id, secret))
    assert r.json()["error"] == "unsupported_grant_type"


def test_userinfo_refuses_forged_and_misused_tokens(issued):
    server, rp, location, verifier, client_id, secret = issued
    token = exchange(server, rp, location, verifier)
    head, body, sig = token["access_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    forged = base64.urlsafe_b64encode(json.dumps({**claims, "sub": "someone"}).encode()).rstrip(b"=").decode()
    none_alg = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "at+jwt"}).encode()).rstrip(b"=").decode()
    for bad in (f"{head}.{forged}.{sig}", f"{none_alg}.{body}.", token["id_token"], "garbage"):
        r = httpx2.get(server.url("/oauth/userinfo"), headers={"Authorization": f"Bearer {bad}"})
        assert r.status_code == 401, bad
    assert httpx2.get(server.url("/oauth/userinfo")).status_code == 401
    good = httpx2.get(server.url("/oauth/userinfo"), headers={"Authorization": f"Bearer {token['access_token']}"})
    assert good.status_code == 200


def test_an_access_token_expires(issued, clock):
    server, rp, location, verifier, client_id, secret = issued
    token = exchange(server, rp, location, verifier)
    clock.advance(301)
    r = httpx2.get(server.url("/oauth/userinfo"), headers={"Authorization": f"Bearer {token['access_token']}"})
    assert r.status_code == 401


def test_grants_are_kept_per_app_customer_and_session(issued):
    server, rp, location, verifier, client_id, secret = issued
    exchange(server, rp, location, verifier)
    grants = server.ctx.db.run_sync(lambda d: list(d.execute(select(OAuthGrant))))
    assert len(grants) == 1 and grants[0].client_id == client_id and grants[0].sid and grants[0].revoked_at is None


def test_one_key_in_use_per_algorithm_even_when_two_instances_start_at_once(app, clock):
    """Two instances making the first keys at once: the table takes one RS256 key in use, the
    second insert fails (KeyRing then reads the first's), so every instance signs with the same key."""
    from sqlalchemy.exc import IntegrityError
    from server import oidc_keys
    db, secret = app.state.ctx.db, app.state.ctx.settings.secret_key
    db.run_sync(oidc_keys.ensure, secret, clock())
    with pytest.raises(IntegrityError):
        db.run_sync(lambda d: store_oidc.add_signing_key(d, oidc_keys.new_key("RS256", secret, clock())))
    assert len(db.run_sync(store_oidc.signing_keys, retired_after=clock())) == 2
