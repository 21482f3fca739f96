"""Helpers for the OpenID Connect tests: a live Tobira in a thread, the customer's browser, and an
app's side made with Authlib's OAuth2Client (PKCE S256, client authentication, the token request)."""

from __future__ import annotations

import secrets
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpx2
import uvicorn
from authlib.integrations.httpx_client import OAuth2Client
from joserfc import jwk, jwt
from joserfc.jwt import JWTClaimsRegistry

from server import oidc_clients
from softkey import b64url_decode
from conftest import PASSWORD

REDIRECT = "https://stock.example.com/callback"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Live:
    """A Tobira app served by uvicorn in a thread, at http://localhost:<port> (its only origin)."""

    def __init__(self, make_app, **overrides) -> None:
        self.port = _free_port()
        self.origin = f"http://localhost:{self.port}"
        self.app = make_app(origins=(self.origin,), **overrides)
        self.ctx = self.app.state.ctx
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the live server did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def browser(self) -> httpx2.Client:
        return httpx2.Client(base_url=self.origin, headers={"Origin": self.origin}, follow_redirects=False)

    def add_client(self, *, public=False, redirect=REDIRECT, **kwargs) -> tuple[str, str | None]:
        return self.ctx.db.run_sync(oidc_clients.add, name="Stock site", redirect_uris=[redirect], public=public,
                                    now=self.ctx.clock(), **kwargs)

    def rp(self, client_id: str, secret: str | None, scope="openid profile email tobira") -> OAuth2Client:
        return OAuth2Client(client_id, secret, scope=scope, redirect_uri=REDIRECT, code_challenge_method="S256",
                            token_endpoint_auth_method="none" if secret is None else "client_secret_basic")

    def url(self, path: str) -> str:
        return self.origin + path


def code_login(browser, mailsink, code="TARO1234", email="taro@example.com"):
    r = browser.post("/api/login/password", json={"customer_code": code, "password": PASSWORD})
    assert r.status_code == 200, r.text
    r = browser.post("/api/login/code", json={"code": mailsink.last_code(email)})
    assert r.status_code == 200, r.text


def add_passkey(browser, key):
    opts = browser.post("/api/passkeys/register/options", json={}).json()["publicKey"]
    credential = key.create(b64url_decode(opts["challenge"]), user_handle=b64url_decode(opts["user"]["id"]))
    assert browser.post("/api/passkeys/register/verify", json={"credential": credential}).status_code == 201


def passkey_login(browser, key):
    opts = browser.post("/api/login/passkey/options", json={}).json()["publicKey"]
    r = browser.post("/api/login/passkey/verify", json=key.get(b64url_decode(opts["challenge"])))
    assert r.status_code == 200, r.text
    return r


def authorize(live: Live, browser, rp: OAuth2Client, **extra):
    """The authorization request as the app would make it; (Tobira's answer, the PKCE verifier, nonce)."""
    verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
    url, _state = rp.create_authorization_url(live.url("/oauth/authorize"), code_verifier=verifier, nonce=nonce,
                                              **extra)
    return browser.get(url), verifier, nonce


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def exchange(live: Live, rp: OAuth2Client, location: str, verifier: str) -> dict:
    assert location.startswith(REDIRECT), location
    return rp.fetch_token(live.url("/oauth/token"), authorization_response=location, code_verifier=verifier)


def id_claims(live: Live, token: dict, nonce: str, client_id: str) -> dict:
    """What a relying party checks (OpenID Connect Core §3.1.3.7), against the published keys."""
    keys = jwk.KeySet.import_key_set(httpx2.get(live.url("/oauth/jwks")).json())
    decoded = jwt.decode(token["id_token"], keys, algorithms=["RS256"])
    JWTClaimsRegistry(now=int(live.ctx.clock().timestamp()), iss={"essential": True, "value": live.origin},
                      aud={"essential": True, "value": client_id}, nonce={"essential": True, "value": nonce},
                      exp={"essential": True}, sub={"essential": True}).validate(decoded.claims)
    return decoded.claims


class Receiver:
    """An app's back-channel logout endpoint: keeps every logout token posted to it."""

    def __init__(self, status: int = 200) -> None:
        self.tokens: list[str] = []
        self.status = status
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                receiver.tokens.append(parse_qs(body)["logout_token"][0])
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}/backchannel"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, count: int, timeout: float = 15) -> list[str]:
        deadline = time.monotonic() + timeout
        while len(self.tokens) < count:
            assert time.monotonic() < deadline, f"{len(self.tokens)} logout tokens, not {count}"
            time.sleep(0.05)
        return self.tokens

    def close(self) -> None:
        self.server.shutdown()
