"""The checks of one WebAuthn response, as pure functions: no database, no HTTP.

python-fido2's `Fido2Server` does type, origin (with our exact-match callback), challenge,
rpIdHash, UP, UV and the assertion signature. What it leaves to the caller (security.md) is here:
sizes capped before any CBOR is decoded, strict base64, `id` == `rawId` == the attested ID,
`crossOrigin` / `topOrigin`, tokenBinding, BE/BS consistency, the credential ID length, the
algorithm among those offered, `fmt: none` with a statement, and the sign counter.

Two kinds of refusal: `Malformed` (cannot be parsed: 400 invalid_request) and `Rejected`
(parses, fails a check: passkey_rejected). Both carry a reason code for logs and events.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
import struct
from dataclasses import dataclass
from typing import Any, Collection, Mapping

import cbor2
from cryptography.hazmat.primitives import constant_time
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from fido2 import cbor
from fido2.cose import CoseKey, UnsupportedKey
from fido2.server import Fido2Server
from fido2.utils import websafe_encode
from fido2.webauthn import (Aaguid, AttestationObject, AttestedCredentialData, AuthenticationResponse,
                            AuthenticatorAssertionResponse, AuthenticatorAttestationResponse, AuthenticatorData,
                            CollectedClientData, PublicKeyCredentialRpEntity, RegistrationResponse,
                            UserVerificationRequirement)

# EdDSA, ES256, RS256 (Windows Hello keys are RSA), in the order we prefer them.
ALGORITHMS = (-8, -7, -257)
MAX_CREDENTIAL_ID = 1023  # WebAuthn §5.1: credential IDs longer than this are invalid

# Caps in bytes, checked on the base64 text before anything is decoded: fido2's CBOR decoder is
# superlinear on hostile input. A real assertion is well under these.
CAPS = {
    # Coarse: an ID over 1023 bytes still parses, to be rejected by name (the contract's wire checks).
    "id": 2048,
    "clientDataJSON": 4096,
    "attestationObject": 16384,
    "authenticatorData": 1024,
    "signature": 8192,
    "userHandle": 64,
}


def _b64_length(size: int) -> int:
    return (size * 4 + 2) // 3


# The largest toJSON() a response within CAPS can be, with room to spare for the short fields and
# extension results. A bigger body cannot be a response we would accept, so web/api.py refuses it
# by its Content-Length before reading or parsing it: a flood of maximum-size junk costs little.
MAX_AUTHENTICATION_JSON = 2 * _b64_length(CAPS["id"]) + sum(
    _b64_length(CAPS[f]) for f in ("clientDataJSON", "authenticatorData", "signature", "userHandle")) + 8192
MAX_REGISTRATION_JSON = 2 * _b64_length(CAPS["id"]) + sum(
    _b64_length(CAPS[f]) for f in ("clientDataJSON", "attestationObject", "authenticatorData")) + 16384

KNOWN_FORMATS = {"none", "packed", "tpm", "android-key", "android-safetynet", "fido-u2f", "apple"}
TRANSPORTS = {"usb", "nfc", "ble", "smart-card", "hybrid", "internal"}

_B64 = re.compile(r"[A-Za-z0-9_+/-]*={0,2}")

# What fido2's decoders raise on bad input besides ValueError: struct.error from a cut-short
# CBOR head, MemoryError/OverflowError from absurd declared lengths.
_DECODE_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError, OverflowError,
                  MemoryError, struct.error)


class Malformed(ValueError):
    """The response cannot be parsed (shape, base64, CBOR, sizes)."""

    reason = "parse"


class Rejected(ValueError):
    """The response parses but fails a check; `reason` is one word (origin, challenge, uv, ...)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


# --- parsing ---------------------------------------------------------------------------------


def decode(value: Any, field: str) -> bytes:
    """base64url (the standard alphabet and padding are tolerated: real browsers sent both)."""
    if not isinstance(value, str):
        raise Malformed(f"{field} must be a base64url string")
    cap = CAPS[field]
    longest = (cap * 4 + 2) // 3  # unpadded base64 of exactly `cap` bytes
    if len(value) > longest + 2 or not _B64.fullmatch(value):
        raise Malformed(f"{field} is over {cap} bytes or not base64url")
    text = value.rstrip("=")
    if len(text) > longest:
        raise Malformed(f"{field} is over {cap} bytes")
    text = text.replace("-", "+").replace("_", "/")
    if len(text) % 4 == 1:
        raise Malformed(f"{field} has an impossible base64 length")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise Malformed(f"{field} is not base64url") from None


def _credential_ids(data: Mapping) -> tuple[str, bytes]:
    if data.get("type") != "public-key":
        raise Malformed("type must be public-key")
    raw_id = decode(data.get("rawId"), "id")
    id_ = data.get("id")
    if not raw_id or not isinstance(id_, str) or decode(id_, "id") != raw_id:
        raise Malformed("id must equal rawId")
    return websafe_encode(raw_id), raw_id


def _client_data(raw: bytes) -> CollectedClientData:
    try:
        parsed = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise Malformed("clientDataJSON is not UTF-8 JSON") from None
    # Types first: fido2 turns a number where the challenge belongs into bytes(number) - a
    # gigabyte for a 10-digit number.
    if not isinstance(parsed, dict) or not all(isinstance(parsed.get(k), str) for k in ("type", "challenge", "origin")):
        raise Malformed("clientDataJSON needs type, challenge and origin as strings")
    if len(parsed["challenge"]) > 1024:
        raise Malformed("clientDataJSON.challenge is far longer than any challenge we issue")
    try:
        return CollectedClientData(raw)
    except _DECODE_ERRORS:
        raise Malformed("clientDataJSON is not of the WebAuthn shape") from None


def _attestation_object(raw: bytes) -> AttestationObject:
    # cbor2 first, as a strict check of the structure: fido2's decoder silently shortens a byte
    # string that runs past the end, and would build bytes(number) from an integer authData.
    try:
        structure = cbor2.loads(raw)
    except (cbor2.CBORError, ValueError, RecursionError, MemoryError, OverflowError):
        raise Malformed("attestationObject is not valid CBOR") from None
    if not (isinstance(structure, dict) and isinstance(structure.get("fmt"), str)
            and isinstance(structure.get("attStmt"), dict) and isinstance(structure.get("authData"), bytes)):
        raise Malformed("attestationObject needs fmt (text), attStmt (map) and authData (bytes)")
    try:
        return AttestationObject(raw)
    except _DECODE_ERRORS:
        raise Malformed("attestationObject is not a valid attestation") from None


def _response(data: Mapping) -> Mapping:
    if not isinstance(data, Mapping) or not isinstance(data.get("response"), Mapping):
        raise Malformed("credential must be an object with a response object")
    return data["response"]


def transports_of(data: Mapping) -> list[str]:
    """The transports the browser reported, known values only (they are hints for later logins)."""
    found = _response(data).get("transports") or data.get("transports") or []
    if not isinstance(found, list):
        return []
    return sorted({t for t in found if isinstance(t, str) and t in TRANSPORTS})


def parse_registration(data: Any) -> RegistrationResponse:
    """RegistrationResponseJSON -> fido2's object, every field capped and checked for shape first."""
    response = _response(data)
    _, raw_id = _credential_ids(data)
    client_data = _client_data(decode(response.get("clientDataJSON"), "clientDataJSON"))
    attestation_object = _attestation_object(decode(response.get("attestationObject"), "attestationObject"))
    return RegistrationResponse(
        raw_id=raw_id,
        response=AuthenticatorAttestationResponse(client_data=client_data, attestation_object=attestation_object),
        authenticator_attachment=None, client_extension_results={}, type="public-key")


def parse_authentication(data: Any) -> AuthenticationResponse:
    response = _response(data)
    _, raw_id = _credential_ids(data)
    client_data = _client_data(decode(response.get("clientDataJSON"), "clientDataJSON"))
    try:
        authenticator_data = AuthenticatorData(decode(response.get("authenticatorData"), "authenticatorData"))
    except Malformed:
        raise
    except _DECODE_ERRORS:
        raise Malformed("authenticatorData is malformed (too short, or trailing bytes)") from None
    signature = decode(response.get("signature"), "signature")
    if not signature:
        raise Malformed("signature is empty")
    handle = response.get("userHandle")
    user_handle = decode(handle, "userHandle") if handle not in (None, "") else None
    return AuthenticationResponse(
        raw_id=raw_id,
        response=AuthenticatorAssertionResponse(client_data=client_data, authenticator_data=authenticator_data,
                                                signature=signature, user_handle=user_handle),
        authenticator_attachment=None, client_extension_results={}, type="public-key")


# --- checks ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _server(rp_id: str, origins: frozenset[str]) -> Fido2Server:
    # Exact origin match: fido2's default admits every subdomain of the RP ID.
    return Fido2Server(PublicKeyCredentialRpEntity(name=rp_id, id=rp_id), attestation="none",
                       verify_origin=origins.__contains__)


_FIDO2_REASONS = (("Incorrect type", "type"), ("Invalid origin", "origin"), ("Wrong challenge", "challenge"),
                  ("Wrong RP ID", "rp_id"), ("User Present", "up"), ("User verification", "uv"),
                  ("Invalid signature", "signature"), ("Unknown credential", "credential"))


def _fido2_reason(exc: ValueError) -> Rejected:
    text = str(exc)
    for needle, reason in _FIDO2_REASONS:
        if needle in text:
            return Rejected(reason, text)
    return Rejected("parse", text)


def _state(challenge: bytes, require_user_verification: bool) -> dict:
    uv = UserVerificationRequirement.REQUIRED if require_user_verification else UserVerificationRequirement.DISCOURAGED
    return {"challenge": websafe_encode(challenge), "user_verification": uv}


def _client_data_checks(client_data: CollectedClientData, expected_challenge: bytes) -> None:
    """What fido2 does not look at in clientDataJSON (WebAuthn §7.1 steps 5-9, §7.2 steps 9-13)."""
    if client_data.cross_origin:
        raise Rejected("origin", "crossOrigin is true: the ceremony ran in a cross-origin iframe")
    raw = client_data._data if hasattr(client_data, "_data") else {}
    if "topOrigin" in raw:
        raise Rejected("origin", "topOrigin present: the ceremony ran inside another site")
    binding = raw.get("tokenBinding")
    # Old Edge/Chrome sent a bare string here; only a TokenBinding object has a status to judge.
    if isinstance(binding, Mapping) and binding.get("status") not in ("present", "supported"):
        raise Rejected("token_binding", "tokenBinding.status is not present or supported")
    if binding is not None and not isinstance(binding, (Mapping, str)):
        raise Rejected("token_binding", "tokenBinding is neither an object nor a legacy string")
    if not isinstance(client_data.challenge, bytes) or not constant_time.bytes_eq(client_data.challenge,
                                                                                    expected_challenge):
        raise Rejected("challenge", "the challenge is not the one issued")


def _flag_checks(auth_data: AuthenticatorData) -> None:
    flags = auth_data.flags
    if flags & AuthenticatorData.FLAG.BS and not flags & AuthenticatorData.FLAG.BE:
        raise Rejected("flags", "backup state set on a credential that is not backup eligible")


@dataclass(frozen=True)
class NewCredential:
    """A passkey ready to be stored."""

    credential_id: bytes
    public_key: bytes  # COSE_Key, CBOR
    algorithm: int
    sign_count: int
    aaguid: str  # lower-case with dashes; all zeros when attestation was stripped
    backup_eligible: bool
    backup_state: bool
    user_verified: bool


def verify_registration(*, response: RegistrationResponse, expected_challenge: bytes,
                        expected_origins: Collection[str], rp_id: str, algorithms: Collection[int] = ALGORITHMS,
                        require_user_verification: bool = True) -> NewCredential:
    """WebAuthn §7.1 with attestation "none": raises Rejected, or returns what to store."""
    client_data = response.response.client_data
    attestation = response.response.attestation_object
    _client_data_checks(client_data, expected_challenge)
    try:
        auth_data = _server(rp_id, frozenset(expected_origins)).register_complete(
            _state(expected_challenge, require_user_verification), response)
    except ValueError as exc:
        raise _fido2_reason(exc) from None
    except AssertionError:
        raise Rejected("parse", "attested credential data missing (AT flag)") from None
    _flag_checks(auth_data)
    if attestation.fmt not in KNOWN_FORMATS:
        raise Rejected("attestation", f"unknown attestation format {attestation.fmt[:32]!r}")
    if attestation.fmt == "none" and attestation.att_stmt:
        raise Rejected("attestation", "fmt none with a non-empty attestation statement")
    credential = auth_data.credential_data
    if credential is None or not auth_data.flags & AuthenticatorData.FLAG.AT:
        raise Rejected("parse", "attested credential data missing (AT flag)")
    if len(credential.credential_id) > MAX_CREDENTIAL_ID:
        raise Rejected("parse", "credential ID over 1023 bytes")
    if not constant_time.bytes_eq(credential.credential_id, response.raw_id):
        raise Rejected("credential_id", "rawId is not the attested credential ID")
    key = credential.public_key
    algorithm = key.get(3)
    if isinstance(key, UnsupportedKey) or algorithm not in algorithms:
        raise Rejected("alg_not_requested", f"credential algorithm {algorithm} was not offered")
    _check_key(key)
    return NewCredential(
        credential_id=credential.credential_id, public_key=cbor.encode(dict(key)), algorithm=algorithm,
        sign_count=auth_data.counter, aaguid=str(credential.aaguid),
        backup_eligible=bool(auth_data.flags & AuthenticatorData.FLAG.BE),
        backup_state=bool(auth_data.flags & AuthenticatorData.FLAG.BS),
        user_verified=bool(auth_data.flags & AuthenticatorData.FLAG.UV))


def _check_key(key: CoseKey) -> None:
    """Load the key as the signature check will: a point off the curve, the wrong curve, a short RSA
    modulus or text labels are refused at registration, not discovered at the first login."""
    try:
        alg = key[3]
        if key.get(1) != {-7: 2, -8: 1, -257: 3}.get(alg):  # kty: EC2, OKP, RSA (RFC 9053)
            raise ValueError("key type does not match the algorithm")
        if alg == -7:
            if key[-1] != 1 or len(key[-2]) != 32 or len(key[-3]) != 32:
                raise ValueError("ES256 needs P-256 coordinates of 32 bytes")
            ec.EllipticCurvePublicNumbers(int.from_bytes(key[-2], "big"), int.from_bytes(key[-3], "big"),
                                          ec.SECP256R1()).public_key()
        elif alg == -8:
            if key[-1] != 6:
                raise ValueError("EdDSA needs Ed25519")
            ed25519.Ed25519PublicKey.from_public_bytes(key[-2])
        elif alg == -257:
            modulus = int.from_bytes(key[-1], "big")
            if modulus.bit_length() < 2048:
                raise ValueError("RSA modulus under 2048 bits")
            rsa.RSAPublicNumbers(int.from_bytes(key[-2], "big"), modulus).public_key()
    except (KeyError, TypeError, ValueError) as exc:
        raise Rejected("parse", f"malformed COSE key: {exc}") from None


@dataclass(frozen=True)
class VerifiedAssertion:
    sign_count: int
    backup_eligible: bool
    backup_state: bool
    user_handle: bytes | None


def check_credential_id(raw_id: bytes) -> None:
    if len(raw_id) > MAX_CREDENTIAL_ID:
        raise Rejected("credential_id", "credential ID over 1023 bytes")


def load_public_key(public_key: bytes, algorithms: Collection[int] = ALGORITHMS) -> CoseKey:
    key = CoseKey.parse(cbor.decode(public_key))
    if isinstance(key, UnsupportedKey) or key.get(3) not in algorithms:
        raise Rejected("alg_not_requested", f"stored key algorithm {key.get(3)} is not one Tobira accepts")
    return key


def verify_authentication(*, response: AuthenticationResponse, expected_challenge: bytes,
                          expected_origins: Collection[str], rp_id: str, public_key: bytes, stored_sign_count: int,
                          algorithms: Collection[int] = ALGORITHMS,
                          require_user_verification: bool = True) -> VerifiedAssertion:
    """WebAuthn §7.2 for one known credential: raises Rejected, or returns the new counter and flags."""
    key = load_public_key(public_key, algorithms)
    check_credential_id(response.raw_id)
    _client_data_checks(response.response.client_data, expected_challenge)
    credential = AttestedCredentialData.create(Aaguid.NONE, response.raw_id, key)
    try:
        _server(rp_id, frozenset(expected_origins)).authenticate_complete(
            _state(expected_challenge, require_user_verification), [credential], response)
    except ValueError as exc:
        raise _fido2_reason(exc) from None
    except Exception as exc:  # cryptography may raise on a malformed DER signature
        raise Rejected("signature", f"signature could not be verified ({type(exc).__name__})") from None
    auth_data = response.response.authenticator_data
    _flag_checks(auth_data)
    # §6.1.1: a counter that does not move forward, while either side uses counters, may mean a
    # cloned authenticator. Synced passkeys report 0 forever, and that is fine.
    if (auth_data.counter or stored_sign_count) and auth_data.counter <= stored_sign_count:
        raise Rejected("counter", f"sign count {auth_data.counter} is not above the stored {stored_sign_count}")
    return VerifiedAssertion(
        sign_count=auth_data.counter,
        backup_eligible=bool(auth_data.flags & AuthenticatorData.FLAG.BE),
        backup_state=bool(auth_data.flags & AuthenticatorData.FLAG.BS),
        user_handle=response.response.user_handle)
