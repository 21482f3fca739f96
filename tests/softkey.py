"""A software passkey for tests: it answers like a browser's `PublicKeyCredential.toJSON()`.

    key = SoftKey(alg=-7)                                   # ES256, synced, UV, rp "localhost"
    reg = key.create(challenge, user_handle=handle)         # RegistrationResponseJSON (a dict)
    ...store key.credential_id and key.cose_public_key...
    auth = key.get(challenge)                               # AuthenticationResponseJSON (a dict)

Written from the WebAuthn Level 3 wire format with `cryptography` (and fido2's CBOR encoder), not
with fido2's own client or authenticator, so the server's parsing is checked against an
independent encoder.

Algorithms: -7 ES256 (P-256, DER signature), -8 EdDSA (Ed25519, raw 64-byte signature),
-257 RS256 (RSA 2048, PKCS#1 v1.5 with SHA-256).

A *synced* key (the default) sets BE=1 and BS=1 and always reports sign count 0, like iCloud
Keychain or Google Password Manager. A *device-bound* key (`synced=False`) sets BE=0, BS=0 and
counts: `get()` increments `sign_count` by one before each assertion.

Broken responses for negative tests come from keyword overrides of `create()` and `get()`; they
change only what they name and everything else stays valid (the signature is computed over the
overridden data, unless the `tamper` hook changes bytes after signing). Every response field is
base64url without padding, as browsers send it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from typing import Any, Callable, Mapping, MutableMapping

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from fido2 import cbor

ES256, EDDSA, RS256 = -7, -8, -257

# authenticatorData flag bits (WebAuthn §6.1)
UP, UV, BE, BS, AT, ED = 0x01, 0x04, 0x08, 0x10, 0x40, 0x80

DROP = object()
"""As a value in `client_data=` or `attestation_fields=`: remove that member."""

_REMEMBERED = object()  # get()'s default user handle: the one given to create()

Tamper = Callable[[MutableMapping[str, bytes]], None]


def b64url(data: bytes) -> str:
    """base64url without padding (what browsers put in toJSON())."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def rp_id_hash(rp_id: str) -> bytes:
    return hashlib.sha256(rp_id.encode("utf-8")).digest()


def _merge(base: dict, changes: Mapping | None) -> dict:
    for name, value in (changes or {}).items():
        if value is DROP:
            base.pop(name, None)
        else:
            base[name] = value
    return base


class SoftKey:
    """One credential on a software authenticator.

    alg: -7, -8 or -257. synced: BE=BS=1 and sign count always 0; else BE=BS=0 and a counter.
    aaguid: 16 bytes or a UUID (default all zeros, as with attestation "none").
    rp_id / origin: what a browser on the relying party's page would use.
    user_verified: whether the UV flag is set (default True).
    credential_id: default 16 random bytes. private_key: reuse a key (RSA generation is slow).
    attachment / transports: the toJSON() hints; defaults follow `synced`.
    """

    def __init__(self, alg: int = ES256, *, synced: bool = True, aaguid: bytes | uuid.UUID | None = None,
                 rp_id: str = "localhost", origin: str = "http://localhost:8000", user_verified: bool = True,
                 credential_id: bytes | None = None, private_key: Any = None, attachment: str | None = None,
                 transports: list[str] | None = None) -> None:
        if alg not in (ES256, EDDSA, RS256):
            raise ValueError(f"unsupported algorithm {alg}")
        self.alg = alg
        self.synced = synced
        if isinstance(aaguid, uuid.UUID):
            aaguid = aaguid.bytes
        self.aaguid: bytes = aaguid if aaguid is not None else bytes(16)
        if len(self.aaguid) != 16:
            raise ValueError("an AAGUID is 16 bytes")
        self.rp_id = rp_id
        self.origin = origin
        self.user_verified = user_verified
        self.credential_id: bytes = credential_id if credential_id is not None else os.urandom(16)
        self.private_key = private_key if private_key is not None else self._generate(alg)
        self.attachment = attachment or ("platform" if synced else "cross-platform")
        self.transports = transports if transports is not None else (["hybrid", "internal"] if synced else ["usb"])
        self.sign_count = 0
        self.user_handle: bytes | None = None

    # --- keys ----------------------------------------------------------------------------------

    @staticmethod
    def _generate(alg: int):
        if alg == ES256:
            return ec.generate_private_key(ec.SECP256R1())
        if alg == EDDSA:
            return ed25519.Ed25519PrivateKey.generate()
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def cose_key(self) -> dict[int, Any]:
        """The credential public key as a COSE_Key map with integer labels (a fresh dict: mutate
        it freely and pass it back as `create(cose_key=...)`)."""
        public = self.private_key.public_key()
        if self.alg == ES256:
            numbers = public.public_numbers()
            return {1: 2, 3: ES256, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")}
        if self.alg == EDDSA:
            raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            return {1: 1, 3: EDDSA, -1: 6, -2: raw}
        numbers = public.public_numbers()
        return {1: 3, 3: RS256, -1: numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big"),
                -2: numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")}

    @property
    def cose_public_key(self) -> bytes:
        """The CBOR COSE_Key bytes a relying party stores for this credential."""
        return cbor.encode(self.cose_key())

    @property
    def spki(self) -> bytes:
        """SubjectPublicKeyInfo DER (toJSON()'s `response.publicKey`)."""
        return self.private_key.public_key().public_bytes(serialization.Encoding.DER,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo)

    def sign(self, data: bytes) -> bytes:
        """A WebAuthn signature over `data` in this algorithm's wire encoding."""
        if self.alg == ES256:
            return self.private_key.sign(data, ec.ECDSA(hashes.SHA256()))  # ASN.1 DER
        if self.alg == EDDSA:
            return self.private_key.sign(data)
        return self.private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())

    # --- pieces --------------------------------------------------------------------------------

    @property
    def backup_flags(self) -> int:
        return BE | BS if self.synced else 0

    def default_flags(self, *, attested: bool = False) -> int:
        """UP, UV (if user_verified), BE/BS (if synced), AT (if attested)."""
        return UP | (UV if self.user_verified else 0) | self.backup_flags | (AT if attested else 0)

    def client_data(self, type_: str, challenge: bytes | str, *, origin: str | None = None,
                    cross_origin: bool | None = False, top_origin: str | None = None, token_binding: Any = None,
                    extra: Mapping[str, Any] | None = None) -> bytes:
        """clientDataJSON as Chrome serialises it (compact, members in spec order).

        challenge: bytes (base64url-encoded here) or a str used verbatim. cross_origin=None omits
        the member. extra: members to add or replace, DROP to remove (e.g. {"type": DROP})."""
        data: dict[str, Any] = {
            "type": type_,
            "challenge": b64url(challenge) if isinstance(challenge, bytes) else challenge,
            "origin": self.origin if origin is None else origin,
        }
        if cross_origin is not None:
            data["crossOrigin"] = cross_origin
        if top_origin is not None:
            data["topOrigin"] = top_origin
        if token_binding is not None:
            data["tokenBinding"] = token_binding
        _merge(data, extra)
        return json.dumps(data, separators=(",", ":")).encode("utf-8")

    def authenticator_data(self, *, rp_id: str | None = None, flags: int, counter: int,
                           attested_data: bytes = b"", extensions: Mapping | bytes | None = None,
                           trailing: bytes = b"") -> bytes:
        """rpIdHash || flags || signCount || attestedCredentialData || extensions || trailing."""
        ext = b""
        if extensions is not None:
            ext = extensions if isinstance(extensions, bytes) else cbor.encode(extensions)
        return (rp_id_hash(self.rp_id if rp_id is None else rp_id) + bytes([flags])
                + counter.to_bytes(4, "big") + attested_data + ext + trailing)

    def attested_credential_data(self, *, credential_id: bytes | None = None,
                                 cose_key: Mapping | bytes | None = None) -> bytes:
        """aaguid || credentialIdLength (2 bytes) || credentialId || credentialPublicKey."""
        cred_id = self.credential_id if credential_id is None else credential_id
        if cose_key is None:
            key_bytes = self.cose_public_key
        else:
            key_bytes = cose_key if isinstance(cose_key, bytes) else cbor.encode(dict(cose_key))
        return self.aaguid + len(cred_id).to_bytes(2, "big") + cred_id + key_bytes

    # --- ceremonies ----------------------------------------------------------------------------

    def create(self, challenge: bytes, *, user_handle: bytes = b"", type: str = "webauthn.create",
               origin: str | None = None, rp_id: str | None = None, cross_origin: bool | None = False,
               top_origin: str | None = None, token_binding: Any = None,
               client_data: Mapping[str, Any] | None = None, client_data_json: bytes | None = None,
               flags: int | None = None, counter: int | None = None, attested: bool = True,
               credential_id: bytes | None = None, cose_key: Mapping | bytes | None = None,
               extensions: Mapping | bytes | None = None, auth_data_trailing: bytes = b"",
               fmt: str = "none", att_stmt: Any = None, attestation_fields: Mapping[str, Any] | None = None,
               raw_id: bytes | None = None, id: str | None = None, credential_type: str = "public-key",
               tamper: Tamper | None = None) -> dict[str, Any]:
        """navigator.credentials.create() -> RegistrationResponseJSON, attestation "none".

        Overrides (each changes only what it names):
          type / origin / cross_origin / top_origin / token_binding / client_data (extra members,
            DROP removes) / client_data_json (the raw bytes, replaces all of those)
          rp_id (for the rpIdHash only) / flags (the whole byte) / counter / attested=False (no
            attested credential data, AT flag still as `flags` says) / credential_id (the attested
            one, also used for id and rawId) / cose_key (a map or raw CBOR bytes) / extensions (sets
            ED unless flags is given) / auth_data_trailing (bytes after authenticatorData)
          fmt / att_stmt / attestation_fields (members of the attestation object; DROP removes)
          raw_id / id (the JSON's, base64url of credential_id by default) / credential_type
          tamper(parts): called with {"clientDataJSON", "attestationObject"} bytes, mutate in place
        Remembers user_handle for later get() calls (a discoverable credential).
        """
        self.user_handle = user_handle
        cred_id = self.credential_id if credential_id is None else credential_id
        if client_data_json is None:
            client_data_json = self.client_data(type, challenge, origin=origin, cross_origin=cross_origin,
                                                top_origin=top_origin, token_binding=token_binding,
                                                extra=client_data)
        if flags is None:
            flags = self.default_flags(attested=True) | (ED if extensions is not None else 0)
        attested_data = self.attested_credential_data(credential_id=cred_id, cose_key=cose_key) if attested else b""
        auth_data = self.authenticator_data(rp_id=rp_id, flags=flags,
                                            counter=self.sign_count if counter is None else counter,
                                            attested_data=attested_data, extensions=extensions,
                                            trailing=auth_data_trailing)
        attestation = _merge({"fmt": fmt, "attStmt": {} if att_stmt is None else att_stmt, "authData": auth_data},
                             attestation_fields)
        parts = {"clientDataJSON": client_data_json, "attestationObject": cbor.encode(attestation)}
        if tamper:
            tamper(parts)
        raw = cred_id if raw_id is None else raw_id
        return {
            "id": b64url(raw) if id is None else id,
            "rawId": b64url(raw),
            "type": credential_type,
            "response": {
                "clientDataJSON": b64url(parts["clientDataJSON"]),
                "attestationObject": b64url(parts["attestationObject"]),
                "authenticatorData": b64url(auth_data),
                "transports": list(self.transports),
                "publicKey": b64url(self.spki),
                "publicKeyAlgorithm": self.alg,
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": self.attachment,
        }

    def get(self, challenge: bytes, *, type: str = "webauthn.get", origin: str | None = None,
            rp_id: str | None = None, cross_origin: bool | None = False, top_origin: str | None = None,
            token_binding: Any = None, client_data: Mapping[str, Any] | None = None,
            client_data_json: bytes | None = None, flags: int | None = None, counter: int | None = None,
            extensions: Mapping | bytes | None = None, auth_data_trailing: bytes = b"",
            user_handle: bytes | None | object = _REMEMBERED, signature: bytes | None = None,
            raw_id: bytes | None = None, id: str | None = None, credential_type: str = "public-key",
            tamper: Tamper | None = None) -> dict[str, Any]:
        """navigator.credentials.get() -> AuthenticationResponseJSON.

        A device-bound key increments `sign_count` first (so the first assertion says 1); `counter`
        overrides the number reported without touching `sign_count`. The signature is over
        authenticatorData || SHA-256(clientDataJSON) as built from the overrides; `signature`
        replaces it. user_handle: default the one given to create() (omitted if none), None omits it.
        tamper(parts): called after signing with {"clientDataJSON", "authenticatorData",
        "signature", "userHandle"} bytes (userHandle b"" = omitted), mutate in place.
        Other overrides as in create().
        """
        if not self.synced:
            self.sign_count += 1
        if client_data_json is None:
            client_data_json = self.client_data(type, challenge, origin=origin, cross_origin=cross_origin,
                                                top_origin=top_origin, token_binding=token_binding,
                                                extra=client_data)
        if flags is None:
            flags = self.default_flags() | (ED if extensions is not None else 0)
        auth_data = self.authenticator_data(rp_id=rp_id, flags=flags,
                                            counter=self.sign_count if counter is None else counter,
                                            extensions=extensions, trailing=auth_data_trailing)
        if signature is None:
            signature = self.sign(auth_data + hashlib.sha256(client_data_json).digest())
        handle = self.user_handle if user_handle is _REMEMBERED else user_handle
        parts = {"clientDataJSON": client_data_json, "authenticatorData": auth_data, "signature": signature,
                 "userHandle": handle or b""}
        if tamper:
            tamper(parts)
        raw = self.credential_id if raw_id is None else raw_id
        response = {
            "clientDataJSON": b64url(parts["clientDataJSON"]),
            "authenticatorData": b64url(parts["authenticatorData"]),
            "signature": b64url(parts["signature"]),
        }
        if parts["userHandle"]:
            response["userHandle"] = b64url(parts["userHandle"])
        return {
            "id": b64url(raw) if id is None else id,
            "rawId": b64url(raw),
            "type": credential_type,
            "response": response,
            "clientExtensionResults": {},
            "authenticatorAttachment": self.attachment,
        }
