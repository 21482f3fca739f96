"""OpenID Connect tokens after the code: refresh tokens rotated with reuse detection, introspection
(RFC 7662) and revocation (RFC 7009), with Authlib's client as the app."""

from __future__ import annotations

import httpx2
import pytest
from sqlalchemy import select

from server.models import SecurityEvent
from conftest import add_customer
from oidckit import REDIRECT, authorize, code_login, exchange, id_claims


@pytest.fixture
def offline(live, mailsink):
    """A confidential app that asked for offline_access, its tokens, and a second app."""
    server = live()
    add_customer(server.app)
    client_id, secret = server.add_client()
    rp = server.rp(client_id, secret, scope="openid profile offline_access")
    browser = server.browser()
    code_login(browser, mailsink)
    r, verifier, nonce = authorize(server, browser, rp)
    token = exchange(server, rp, r.headers["location"], verifier)
    other_id, other_secret = server.add_client()
    return server, rp, token, nonce, (client_id, secret), (other_id, other_secret)


def _post(server, path, data, auth):
    return httpx2.post(server.url(path), data=data, auth=auth)


def _events(server) -> list[str]:
    return [e.kind for e in server.ctx.db.run_sync(lambda d: list(d.execute(select(SecurityEvent))))]


def test_offline_access_gives_a_refresh_token_that_is_rotated(offline):
    server, rp, token, nonce, (client_id, secret), _ = offline
    assert token["refresh_token"]
    first_claims = id_claims(server, token, nonce, client_id)
    renewed = rp.refresh_token(server.url("/oauth/token"), refresh_token=token["refresh_token"])
    assert renewed["refresh_token"] != token["refresh_token"] and renewed["access_token"] != token["access_token"]
    # The ID token of a refresh tells of the same login (Core §12.2): same sub, auth_time, amr.
    from joserfc import jwk, jwt
    keys = jwk.KeySet.import_key_set(httpx2.get(server.url("/oauth/jwks")).json())
    claims = jwt.decode(renewed["id_token"], keys).claims
    assert (claims["sub"], claims["auth_time"], claims["amr"]) == \
        (first_claims["sub"], first_claims["auth_time"], first_claims["amr"])
    assert "nonce" not in claims
    r = httpx2.get(server.url("/oauth/userinfo"), headers={"Authorization": f"Bearer {renewed['access_token']}"})
    assert r.status_code == 200


def test_a_reused_refresh_token_revokes_the_whole_family(offline):
    server, rp, token, nonce, (client_id, secret), _ = offline
    renewed = rp.refresh_token(server.url("/oauth/token"), refresh_token=token["refresh_token"])
    r = _post(server, "/oauth/token", {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
              (client_id, secret))
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    # The thief's copy and the rightful holder's newer token are both dead now, and the access token.
    r = _post(server, "/oauth/token", {"grant_type": "refresh_token", "refresh_token": renewed["refresh_token"]},
              (client_id, secret))
    assert r.json()["error"] == "invalid_grant"
    r = httpx2.get(server.url("/oauth/userinfo"), headers={"Authorization": f"Bearer {renewed['access_token']}"})
    assert r.status_code == 401
    assert "oauth_refresh_reused" in _events(server)


def test_another_clients_refresh_token_is_refused_and_left_alone(offline):
    server, rp, token, nonce, mine, (other_id, other_secret) = offline
    r = _post(server, "/oauth/token", {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
              (other_id, other_secret))
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert "refresh_token" in rp.refresh_token(server.url("/oauth/token"), refresh_token=token["refresh_token"])


def test_a_refresh_cannot_widen_the_scope(offline):
    server, rp, token, nonce, (client_id, secret), _ = offline
    r = _post(server, "/oauth/token", {"grant_type": "refresh_token", "refresh_token": token["refresh_token"],
                                       "scope": "openid email"}, (client_id, secret))
    assert r.json()["error"] == "invalid_scope"


def test_without_offline_access_there_is_no_refresh_token(live, mailsink):
    server = live()
    add_customer(server.app)
    client_id, secret = server.add_client()
    rp = server.rp(client_id, secret, scope="openid")
    browser = server.browser()
    code_login(browser, mailsink)
    r, verifier, _ = authorize(server, browser, rp)
    assert "refresh_token" not in exchange(server, rp, r.headers["location"], verifier)


def test_refresh_tokens_expire_with_their_family(offline, clock):
    server, rp, token, nonce, (client_id, secret), _ = offline
    clock.advance(29 * 86400)
    renewed = rp.refresh_token(server.url("/oauth/token"), refresh_token=token["refresh_token"])
    clock.advance(2 * 86400)  # 31 days after the login: using it kept nothing alive
    r = _post(server, "/oauth/token", {"grant_type": "refresh_token", "refresh_token": renewed["refresh_token"]},
              (client_id, secret))
    assert r.json()["error"] == "invalid_grant"


def test_introspection_tells_active_tokens_from_the_rest(offline, clock):
    server, rp, token, nonce, (client_id, secret), (other_id, other_secret) = offline
    r = _post(server, "/oauth/introspect", {"token": token["access_token"]}, (other_id, other_secret))
    body = r.json()
    assert r.status_code == 200 and body["active"] is True and body["client_id"] == client_id
    assert body["amr"] == ["pwd", "otp", "mfa"] and body["token_type"] == "Bearer"
    refresh = _post(server, "/oauth/introspect", {"token": token["refresh_token"]}, (client_id, secret)).json()
    assert refresh["active"] is True and refresh["token_type"] == "refresh_token"
    for junk in ("nothing", token["id_token"], token["access_token"][:-4] + "AAAA"):
        assert _post(server, "/oauth/introspect", {"token": junk}, (client_id, secret)).json() == {"active": False}
    clock.advance(301)
    assert _post(server, "/oauth/introspect", {"token": token["access_token"]}, (client_id, secret)).json() == \
        {"active": False}


def test_introspection_and_revocation_are_for_confidential_clients_only(offline, live):
    server, rp, token, nonce, (client_id, secret), _ = offline
    public_id, _ = server.add_client(public=True)
    for path in ("/oauth/introspect", "/oauth/revoke"):
        r = httpx2.post(server.url(path), data={"token": token["access_token"], "client_id": public_id})
        assert r.status_code == 401 and r.json()["error"] == "invalid_client"
        r = _post(server, path, {"token": token["access_token"]}, (client_id, "wrong"))
        assert r.status_code == 401


def test_revoking_a_refresh_token_ends_the_grant(offline):
    server, rp, token, nonce, (client_id, secret), _ = offline
    r = _post(server, "/oauth/revoke", {"token": token["refresh_token"], "token_type_hint": "refresh_token"},
              (client_id, secret))
    assert r.status_code == 200
    assert _post(server, "/oauth/introspect", {"token": token["access_token"]}, (client_id, secret)).json() == \
        {"active": False}
    r = _post(server, "/oauth/token", {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
              (client_id, secret))
    assert r.json()["error"] == "invalid_grant"
    assert "oauth_token_revoked" in _events(server)


def test_another_app_cannot_revoke_a_token_and_is_not_told(offline):
    server, rp, token, nonce, mine, (other_id, other_secret) = offline
    r = _post(server, "/oauth/revoke", {"token": token["access_token"]}, (other_id, other_secret))
    assert r.status_code == 200  # RFC 7009 §2.2: the same answer as for a token it may revoke
    assert _post(server, "/oauth/introspect", {"token": token["access_token"]}, mine).json()["active"] is True
    assert _post(server, "/oauth/revoke", {"token": "never-issued"}, mine).status_code == 200


def test_redirect_uri_in_the_token_request_must_match(offline, live, mailsink):
    server, rp, token, nonce, (client_id, secret), _ = offline
    browser = server.browser()
    code_login(browser, mailsink)
    r, verifier, _ = authorize(server, browser, rp)
    code = dict(p.split("=", 1) for p in r.headers["location"].split("?", 1)[1].split("&"))["code"]
    r = _post(server, "/oauth/token", {"grant_type": "authorization_code", "code": code,
                                       "redirect_uri": REDIRECT + "/other", "code_verifier": verifier},
              (client_id, secret))
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
