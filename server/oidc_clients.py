"""The broker's apps that sign customers in through Tobira (OpenID Connect clients).

They are the broker's own, registered by an operator (`tobira client add`): no consent screen,
no dynamic registration. A confidential client (a web app's server) holds a secret, shown once and
stored as its SHA-256 (256 random bits need no password hashing); a public client (a smartphone
app, RFC 8252) holds none and proves itself with PKCE alone, like every client.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from . import store_oidc
from .db import Tx
from .rows import ClientRow

SCOPES = ("openid", "profile", "email", "tobira", "offline_access")
NAME_MAX = 100
URI_MAX = 500
# RFC 8252 §7.1: a private-use scheme is a reverse domain name the app's owner controls.
_PRIVATE_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*\.[a-z0-9+.-]+")


class ClientError(ValueError):
    """A client registration the operator must correct (the CLI prints it and exits non-zero)."""


@dataclass(frozen=True)
class App:
    """A registered client, as the protocol code reads it."""

    client_id: str
    name: str
    secret_hash: str | None
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...]
    backchannel_logout_uri: str | None
    require_passkey: bool
    scopes: frozenset[str]

    @property
    def public(self) -> bool:
        return self.secret_hash is None

    @classmethod
    def of(cls, row: ClientRow) -> App:
        return cls(row.client_id, row.name, row.secret_hash, tuple(json.loads(row.redirect_uris)),
                   tuple(json.loads(row.post_logout_redirect_uris)), row.backchannel_logout_uri,
                   row.require_passkey, frozenset(row.scopes.split()))

    def secret_matches(self, secret: str) -> bool:
        return self.secret_hash is not None and secrets.compare_digest(hash_secret(secret), self.secret_hash)


def hash_secret(secret: str) -> str:
    """How a client secret, an authorization code or a refresh token is kept: its SHA-256 (256
    random bits need no slow hash)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def check_redirect_uri(uri: str, *, public: bool) -> str:
    """An exact URI an authorization may be sent back to: https; http only to the loopback (a
    developer's machine, or a native app's loopback redirect, RFC 8252 §7.3); a public client may
    also use a private-use scheme (RFC 8252 §7.1). Never a fragment (RFC 6749 §3.1.2)."""
    parts = urlsplit(uri)
    if len(uri) > URI_MAX or not parts.scheme or parts.fragment or "#" in uri:
        raise ClientError(f"redirect URI {uri!r}: an absolute URI without a fragment, up to {URI_MAX} characters")
    if parts.scheme == "https" and parts.hostname:
        return uri
    if parts.scheme == "http" and parts.hostname in ("localhost", "127.0.0.1", "::1"):
        return uri
    if public and _PRIVATE_SCHEME.fullmatch(parts.scheme):
        return uri
    raise ClientError(f"redirect URI {uri!r}: https, http to localhost, or (a public client) a private-use "
                      "scheme such as com.example.app:/callback")


def _check_https(uri: str, what: str) -> str:
    parts = urlsplit(uri)
    local = parts.scheme == "http" and parts.hostname in ("localhost", "127.0.0.1", "::1")
    if len(uri) > URI_MAX or parts.fragment or not parts.hostname or not (parts.scheme == "https" or local):
        raise ClientError(f"{what} {uri!r}: an https URL (http only to localhost) without a fragment")
    return uri


def add(db: Tx, *, name: str, redirect_uris: list[str], public: bool, now: datetime,
        post_logout_redirect_uris: tuple[str, ...] | list[str] = (), backchannel_logout_uri: str | None = None,
        require_passkey: bool = False, scopes: str | None = None) -> tuple[str, str | None]:
    """Register an app; (client_id, client_secret or None). The secret is not kept: show it once."""
    name = name.strip()
    if not name or len(name) > NAME_MAX:
        raise ClientError(f"a name of 1 to {NAME_MAX} characters")
    if not redirect_uris:
        raise ClientError("at least one --redirect-uri")
    redirects = [check_redirect_uri(uri, public=public) for uri in redirect_uris]
    logouts = [check_redirect_uri(uri, public=public) for uri in post_logout_redirect_uris]
    backchannel = _check_https(backchannel_logout_uri, "back-channel logout URI") if backchannel_logout_uri else None
    allowed = (scopes or " ".join(SCOPES)).split()
    unknown = sorted(set(allowed) - set(SCOPES))
    if unknown or "openid" not in allowed:
        raise ClientError(f"scopes: openid and any of {' '.join(SCOPES[1:])} (not {' '.join(unknown) or 'without openid'})")
    client_id = secrets.token_hex(16)  # never starting with '-': the CLI takes it as an argument
    secret = None if public else secrets.token_urlsafe(32)
    store_oidc.add_client(db, ClientRow(
        client_id=client_id, name=name, secret_hash=hash_secret(secret) if secret else None,
        redirect_uris=json.dumps(list(dict.fromkeys(redirects))),
        post_logout_redirect_uris=json.dumps(list(dict.fromkeys(logouts))),
        backchannel_logout_uri=backchannel, require_passkey=require_passkey,
        scopes=" ".join(s for s in SCOPES if s in allowed), created_at=now))
    return client_id, secret


def find(db: Tx, client_id: str) -> App | None:
    row = store_oidc.client_by_id(db, client_id) if 0 < len(client_id) <= 43 else None
    return App.of(row) if row else None


def listing(db: Tx) -> list[dict]:
    """What `tobira client list` prints, one object per app (never a secret or its hash)."""
    return [{"client_id": a.client_id, "name": a.name, "public": a.public, "redirect_uris": list(a.redirect_uris),
             "post_logout_redirect_uris": list(a.post_logout_redirect_uris),
             "backchannel_logout_uri": a.backchannel_logout_uri, "require_passkey": a.require_passkey,
             "scopes": " ".join(s for s in SCOPES if s in a.scopes)}
            for a in map(App.of, store_oidc.all_clients(db))]


def remove(db: Tx, client_id: str) -> None:
    if not store_oidc.remove_client(db, client_id):
        raise ClientError(f"no client {client_id!r}")


def rotate_secret(db: Tx, client_id: str) -> str:
    """A new secret for a confidential client; the old one stops working at once."""
    secret = secrets.token_urlsafe(32)
    if not store_oidc.set_client_secret(db, client_id, hash_secret(secret)):
        app = find(db, client_id)
        raise ClientError(f"no client {client_id!r}" if app is None else f"{client_id!r} is a public client: no secret")
    return secret
