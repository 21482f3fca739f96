"""The keys that sign ID tokens and access tokens (RS256, which OpenID Connect requires, and ES256).

Tobira makes them itself and keeps them in the database, so every instance signs with the same
keys and publishes the same JWKS. The private part is stored encrypted (Fernet) under a key
derived from TOBIRA_SECRET_KEY: a copy of the database alone signs nothing. `tobira keys rotate`
retires the keys in use and makes new ones; a retired key stays published until every token it
signed has expired (and every instance has seen the new ones). JOSE is joserfc's, never ours.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc import jwk
from sqlalchemy.exc import IntegrityError

from . import store_oidc
from .db import Database, Tx
from .rows import SigningKeyRow

ALGORITHMS = ("RS256", "ES256")  # the first is the default for ID tokens (OpenID Connect Core §15.1)
TOKEN_LIFE = timedelta(minutes=5)  # ID tokens and access tokens
CACHE_SECONDS = 30.0  # how long an instance signs with what it last read (see KeyRing)
# A retired key is still published for as long as a token it signed can be valid, counting the
# instances that signed with it until they read the new ones, and clocks a little apart.
PUBLISHED_AFTER_RETIREMENT = TOKEN_LIFE + timedelta(seconds=2 * CACHE_SECONDS) + timedelta(minutes=5)


def _fernet(secret_key: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                   info=b"tobira signing keys").derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def new_key(alg: str, secret_key: str, now: datetime) -> SigningKeyRow:
    """A fresh key pair for alg, its kid the JWK thumbprint (RFC 7638), its private part encrypted."""
    if alg == "RS256":
        key: jwk.Key = jwk.RSAKey.generate_key(2048, private=True, auto_kid=True)
    elif alg == "ES256":
        key = jwk.ECKey.generate_key("P-256", private=True, auto_kid=True)
    else:
        raise ValueError(f"no such signing algorithm: {alg}")
    public = {**key.as_dict(private=False), "alg": alg, "use": "sig"}
    private = _fernet(secret_key).encrypt(json.dumps(key.as_dict(private=True)).encode()).decode()
    return SigningKeyRow(kid=key.kid or "", alg=alg, public_jwk=json.dumps(public), private_jwk=private,
                         created_at=now, retired_at=None)


@dataclass(frozen=True)
class Keys:
    """What one read of the table gives: the keys to sign with (by algorithm) and the JWKS."""

    signing: dict[str, jwk.Key]
    jwks: dict[str, list[dict]]  # {"keys": [public JWK, ...]}: what /oauth/jwks shows
    public: jwk.KeySet  # the same, to check our own tokens with

    def signer(self, alg: str) -> jwk.Key:
        return self.signing[alg]


def load(rows: list[SigningKeyRow], secret_key: str) -> Keys:
    """rows: newest first (store_oidc.signing_keys). The newest key in use of each algorithm signs."""
    signing: dict[str, jwk.Key] = {}
    fernet = _fernet(secret_key)
    for row in rows:
        if row.retired_at is None and row.alg not in signing:
            private = json.loads(fernet.decrypt(row.private_jwk.encode()))
            signing[row.alg] = jwk.import_key(private, parameters={"kid": row.kid, "alg": row.alg, "use": "sig"})
    public = [json.loads(row.public_jwk) for row in rows]
    return Keys(signing, {"keys": public}, jwk.KeySet([jwk.import_key(key) for key in public]))


def ensure(db: Tx, secret_key: str, now: datetime) -> None:
    """Make a key for each algorithm that has none in use (the first start; of two instances
    starting at once, one makes them: the table allows one key in use per algorithm)."""
    rows = store_oidc.signing_keys(db, retired_after=now)
    have = {row.alg for row in rows if row.retired_at is None}
    for alg in ALGORITHMS:
        if alg not in have:
            store_oidc.add_signing_key(db, new_key(alg, secret_key, now))


def rotate(db: Tx, secret_key: str, now: datetime) -> list[str]:
    """Retire the keys in use and make new ones; the new kids."""
    store_oidc.retire_signing_keys(db, now)
    made = [new_key(alg, secret_key, now) for alg in ALGORITHMS]
    for row in made:
        store_oidc.add_signing_key(db, row)
    return [row.kid for row in made]


class KeyRing:
    """An instance's copy of the keys, read again every CACHE_SECONDS (another instance, or the
    CLI, may have made or rotated them). One read at a time; the others wait for it."""

    def __init__(self, database: Database, secret_key: str, clock) -> None:
        self._database, self._secret_key, self._clock = database, secret_key, clock
        self._keys: Keys | None = None
        self._read_at = 0.0
        self._lock = asyncio.Lock()

    async def current(self) -> Keys:
        if self._keys is not None and time.monotonic() - self._read_at < CACHE_SECONDS:
            return self._keys
        async with self._lock:
            if self._keys is None or time.monotonic() - self._read_at >= CACHE_SECONDS:
                try:
                    self._keys = await self._database.run(self._read)
                except IntegrityError:  # another instance made the first keys at this moment: read those
                    self._keys = await self._database.run(self._read)
                self._read_at = time.monotonic()
        return self._keys

    def _read(self, db: Tx) -> Keys:
        now = self._clock()
        rows = store_oidc.signing_keys(db, retired_after=now - PUBLISHED_AFTER_RETIREMENT)
        if not {row.alg for row in rows if row.retired_at is None} >= set(ALGORITHMS):
            ensure(db, self._secret_key, now)
            rows = store_oidc.signing_keys(db, retired_after=now - PUBLISHED_AFTER_RETIREMENT)
        return load(rows, self._secret_key)
