"""The checks of one WebAuthn response, as pure functions: no database, no HTTP.

One path, through python-fido2's public API: its constructors parse (`CollectedClientData`,
`AuthenticatorData`, `AttestationObject`, the response classes), and `Fido2Server`'s
register_complete / authenticate_complete, with our exact-match `verify_origin`, check type,
origin, challenge, rpIdHash, UP, UV and the assertion's signature. What fido2 leaves to the caller
(security.md) is here: sizes capped before any CBOR is decoded, strict base64, `id` == `rawId` ==
the attested ID, `crossOrigin` / `topOrigin`, tokenBinding, BE/BS consistency, BE equal to the
stored value at login, the credential ID length, the algorithm among those offered, `fmt: none`
with a statement, the sign counter; the key checks are in keys.py.

Two kinds of refusal: `Malformed` (cannot be parsed: 400 invalid_request) and `Rejected`
(parses, fails a check: passkey_rejected). Both carry a reason code for logs and events.

What fido2 we rely on (its version, signatures, messages, the state it keeps) is pinned by
tests/test_verify.py ("the fido2 Tobira relies on"); pyproject.toml admits only the versions tested.

Cost (`python -m bench.verify_micro`, ES256, best of 7 on a busy 2-core machine): parse ~45 µs,
verify ~102 µs of which the P-256 signature itself is ~63 µs. That is ~65 µs a login more than the
earlier second engine, which built fido2's objects past their constructors and kept cryptography
keys of its own: fido2's dataclasses convert every field (~25 µs) and its CoseKey rebuilds the key,
checking the point, at every verify (~11 µs). Without server/speedups.py parse is ~215 µs.
"""

from __future__ import annotations

import binascii
import functools
import json
import re
import struct
from dataclasses import dataclass
from typing import Any, Collection, Mapping

import cbor2
from cryptography.hazmat.primitives import constant_time
from fido2 import cbor
from fido2.cose import UnsupportedKey
from fido2.server import Fido2Server
from fido2.utils import websafe_encode
from fido2.webauthn import (AttestationConveyancePreference, AttestationObject, AuthenticationResponse, AuthenticatorAssertionResponse,
                            AuthenticatorAttestationResponse, AuthenticatorData, CollectedClientData,
                            PublicKeyCredentialRpEntity, RegistrationResponse, UserVerificationRequirement)

from . import keys
from .keys import ALGORITHMS

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


def b64_length(size: int) -> int:
    """How long `size` bytes are in unpadded base64 (also each field's maxLength in /openapi.json)."""
    return (size * 4 + 2) // 3


# The largest toJSON() a response within CAPS can be, with room to spare for the short fields and
# extension results. A bigger body cannot be a response we would accept, so web/api.py refuses it
# by its Content-Length before reading or parsing it: a flood of maximum-size junk costs little.
MAX_AUTHENTICATION_JSON = 2 * b64_length(CAPS["id"]) + sum(
    b64_length(CAPS[f]) for f in ("clientDataJSON", "authenticatorData", "signature", "userHandle")) + 8192
MAX_REGISTRATION_JSON = 2 * b64_length(CAPS["id"]) + sum(
    b64_length(CAPS[f]) for f in ("clientDataJSON", "attestationObject", "authenticatorData")) + 16384

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
    longest = b64_length(cap)  # unpadded base64 of exactly `cap` bytes
    if len(value) > longest + 2 or not _B64.fullmatch(value):
        raise Malformed(f"{field} is over {cap} bytes or not base64url")
    text = value.rstrip("=")
    if len(text) > longest:
        raise Malformed(f"{field} is over {cap} bytes")
    text = text.replace("-", "+").replace("_", "/")
    if len(text) % 4 == 1:
        raise Malformed(f"{field} has an impossible base64 length")
    try:
        # What base64.b64decode(..., validate=True) calls, without its wrapper (a third of the time).
        return binascii.a2b_base64(text + "=" * (-len(text) % 4), strict_mode=True)
    except (binascii.Error, ValueError):
        raise Malformed(f"{field} is not base64url") from None


def _credential_ids(data: Mapping) -> bytes:
    """rawId, decoded; `id` must decode to the same bytes."""
    if data.get("type") != "public-key":
        raise Malformed("type must be public-key")
    raw_text = data.get("rawId")
    raw_id = decode(raw_text, "id")
    id_ = data.get("id")
    # Browsers send the same text twice: decoding it again could only give the same bytes.
    if not raw_id or not isinstance(id_, str) or (id_ != raw_text and decode(id_, "id") != raw_id):
        raise Malformed("id must equal rawId")
    return raw_id


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


def _authenticator_data(raw: bytes) -> AuthenticatorData:
    try:
        return AuthenticatorData(raw)
    except _DECODE_ERRORS:
        raise Malformed("authenticatorData is malformed (too short, or trailing bytes)") from None


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
    raw_id = _credential_ids(data)
    client_data = _client_data(decode(response.get("clientDataJSON"), "clientDataJSON"))
    attestation_object = _attestation_object(decode(response.get("attestationObject"), "attestationObject"))
    return RegistrationResponse(
        raw_id=raw_id,
        response=AuthenticatorAttestationResponse(client_data=client_data, attestation_object=attestation_object))


def parse_authentication(data: Any) -> AuthenticationResponse:
    """AuthenticationResponseJSON -> fido2's object, every field capped and checked for shape first."""
    response = _response(data)
    raw_id = _credential_ids(data)
    client_data = _client_data(decode(response.get("clientDataJSON"), "clientDataJSON"))
    authenticator_data = _authenticator_data(decode(response.get("authenticatorData"), "authenticatorData"))
    signature = decode(response.get("signature"), "signature")
    if not signature:
        raise Malformed("signature is empty")
    handle = response.get("userHandle")
    user_handle = decode(handle, "userHandle") if handle not in (None, "") else None
    return AuthenticationResponse(
        raw_id=raw_id,
        response=AuthenticatorAssertionResponse(client_data=client_data, authenticator_data=authenticator_data,
                                                signature=signature, user_handle=user_handle))


# --- checks ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _server(rp_id: str, origins: frozenset[str]) -> Fido2Server:
    # Exact origin match: fido2's default admits every subdomain of the RP ID.
    return Fido2Server(PublicKeyCredentialRpEntity(name=rp_id, id=rp_id), attestation=AttestationConveyancePreference.NONE,
                       verify_origin=origins.__contains__)


def _state(challenge: bytes, require_user_verification: bool) -> dict:
    """The state register_begin / authenticate_begin return for this challenge (a test compares):
    Tobira keeps only the challenge, in its Ceremony row."""
    uv = UserVerificationRequirement.REQUIRED if require_user_verification else UserVerificationRequirement.DISCOURAGED
    return {"challenge": websafe_encode(challenge), "user_verification": uv}


# The ValueError messages of Fido2Server's guard clauses, mapped to our reasons (a test checks that
# fido2 still says each of them). A message not listed is a key fido2 could not use: "parse".
FIDO2_REASONS = (("Incorrect type", "type"), ("Invalid origin", "origin"), ("Wrong challenge", "challenge"),
                 ("Wrong RP ID", "rp_id"), ("User Present", "up"), ("User verification", "uv"),
                 ("Invalid signature", "signature"), ("Unknown credential", "credential"))


def _fido2_reason(exc: ValueError) -> Rejected:
    text = str(exc)
    for needle, reason in FIDO2_REASONS:
        if needle in text:
            return Rejected(reason, text)
    return Rejected("parse", text)


def _client_data_checks(client_data: CollectedClientData, expected_challenge: bytes) -> None:
    """What fido2 does not look at in clientDataJSON (WebAuthn §7.1 steps 5-9, §7.2 steps 9-13).
    fido2 keeps only type, challenge, origin and crossOrigin as attributes: the rest is read here
    from the JSON itself (parse_* has already parsed it once, so this cannot fail on a response
    they made)."""
    if client_data.cross_origin:
        raise Rejected("origin", "crossOrigin is true: the ceremony ran in a cross-origin iframe")
    try:
        members = json.loads(client_data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise Rejected("parse", "clientDataJSON is not UTF-8 JSON") from None
    if not isinstance(members, dict):
        raise Rejected("parse", "clientDataJSON is not a JSON object")
    if "topOrigin" in members:
        raise Rejected("origin", "topOrigin present: the ceremony ran inside another site")
    binding = members.get("tokenBinding")
    # Old Edge/Chrome sent a bare string here; only a TokenBinding object has a status to judge.
    if isinstance(binding, Mapping) and binding.get("status") not in ("present", "supported"):
        raise Rejected("token_binding", "tokenBinding.status is not present or supported")
    if binding is not None and not isinstance(binding, (Mapping, str)):
        raise Rejected("token_binding", "tokenBinding is neither an object nor a legacy string")
    # fido2 compares the challenge too, after type and origin. First here: an answer to a challenge
    # Tobira did not issue is refused as that, whatever else it gets wrong (swa-auth-wrong-challenge).
    if not constant_time.bytes_eq(client_data.challenge, expected_challenge):
        raise Rejected("challenge", "the challenge is not the one issued")


def _flag_checks(auth_data: AuthenticatorData) -> None:
    if auth_data.is_backed_up() and not auth_data.is_backup_eligible():
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
                        require_user_verification: bool = True, conditional: bool = False) -> NewCredential:
    """WebAuthn §7.1 with attestation "none": raises Rejected, or returns what to store.

    conditional: the ceremony was issued as a conditional create (the automatic upgrade). The
    browser's password manager makes such a passkey without a gesture, so §7.1 step 14 (L3) skips
    the user-presence check for it, and only for it; every other check stays."""
    attestation = response.response.attestation_object
    _client_data_checks(response.response.client_data, expected_challenge)
    try:
        auth_data = _server(rp_id, frozenset(expected_origins)).register_complete(
            _state(expected_challenge, require_user_verification and not conditional), response)
    except ValueError as exc:
        rejected = _fido2_reason(exc)
        if not (conditional and rejected.reason == "up"):
            raise rejected from None
        # fido2 has no switch for this. Its register_complete checks UP after type, origin,
        # challenge and the RP ID hash (all passed, then) and before UV (not asked for here) and
        # attestation (ignored: "none"), and returns the attestation's own authenticator data,
        # which is what is taken here. tests/test_verify.py pins that order for the fido2 admitted.
        auth_data = attestation.auth_data
    except AssertionError:  # register_complete asserts the attested credential data is there
        raise Rejected("parse", "attested credential data missing (AT flag)") from None
    _flag_checks(auth_data)
    if attestation.fmt not in KNOWN_FORMATS:
        raise Rejected("attestation", f"unknown attestation format {attestation.fmt[:32]!r}")
    if attestation.fmt == "none" and attestation.att_stmt:
        raise Rejected("attestation", "fmt none with a non-empty attestation statement")
    credential = auth_data.credential_data
    if credential is None or not auth_data.is_attested():
        raise Rejected("parse", "attested credential data missing (AT flag)")
    if len(credential.credential_id) > MAX_CREDENTIAL_ID:
        raise Rejected("parse", "credential ID over 1023 bytes")
    if not constant_time.bytes_eq(credential.credential_id, response.raw_id):
        raise Rejected("credential_id", "rawId is not the attested credential ID")
    key = credential.public_key
    algorithm = key[3]  # CoseKey.parse refused a key without one
    if isinstance(key, UnsupportedKey) or algorithm not in algorithms:
        raise Rejected("alg_not_requested", f"credential algorithm {algorithm} was not offered")
    refusal = keys.new_key_refusal(key)
    if refusal is not None:
        raise Rejected("parse", f"malformed COSE key: {refusal}")
    return NewCredential(
        credential_id=credential.credential_id, public_key=cbor.encode(dict(key)), algorithm=algorithm,
        sign_count=auth_data.counter, aaguid=str(credential.aaguid), backup_eligible=auth_data.is_backup_eligible(),
        backup_state=auth_data.is_backed_up(), user_verified=auth_data.is_user_verified())


@dataclass(frozen=True)
class VerifiedAssertion:
    sign_count: int
    backup_eligible: bool
    backup_state: bool
    user_handle: bytes | None
    user_verified: bool


def check_credential_id(raw_id: bytes) -> None:
    if len(raw_id) > MAX_CREDENTIAL_ID:
        raise Rejected("credential_id", "credential ID over 1023 bytes")


def verify_authentication(*, response: AuthenticationResponse, expected_challenge: bytes,
                          expected_origins: Collection[str], rp_id: str, public_key: bytes, stored_sign_count: int,
                          stored_backup_eligible: bool, algorithms: Collection[int] = ALGORITHMS,
                          require_user_verification: bool = True, uv_initialized: bool = True) -> VerifiedAssertion:
    """WebAuthn §7.2 for one known credential: raises Rejected, or returns the new counter and flags.

    uv_initialized: false for a passkey an automatic upgrade made without user verification; it is
    refused until an assertion with UV=1 (whatever require_user_verification says)."""
    check_credential_id(response.raw_id)
    try:
        stored = keys.stored_key(response.raw_id, public_key)
    except _DECODE_ERRORS:
        raise Rejected("parse", "the stored key is not a COSE key") from None
    key = stored.credential.public_key
    if isinstance(key, UnsupportedKey) or key.get(3) not in algorithms:
        raise Rejected("alg_not_requested", f"stored key algorithm {key.get(3)} is not one Tobira accepts")
    if stored.refusal is not None:
        raise Rejected("parse", f"stored key refused: {stored.refusal}")
    _client_data_checks(response.response.client_data, expected_challenge)
    try:
        _server(rp_id, frozenset(expected_origins)).authenticate_complete(
            _state(expected_challenge, require_user_verification), [stored.credential], response)
    except ValueError as exc:
        raise _fido2_reason(exc) from None
    except Exception as exc:  # noqa: BLE001 - cryptography may raise on a key or DER signature it cannot use
        raise Rejected("signature", f"signature could not be verified ({type(exc).__name__})") from None
    auth_data = response.response.authenticator_data
    _flag_checks(auth_data)
    if not uv_initialized and not auth_data.is_user_verified():
        raise Rejected("uv", "this passkey was made without user verification; its first use must verify the user")
    # §7.2 (currentBe): BE is fixed when the credential is created (§6.1.3). An assertion saying
    # otherwise is not from the authenticator that registered it, or would let a device-bound
    # passkey pass as synced (or the reverse) for any policy that reads the flag. Checked after the
    # signature, so only signed flags are judged; anything but a bool stored (None) is refused.
    if auth_data.is_backup_eligible() != stored_backup_eligible:
        raise Rejected("flags", f"backup eligibility {auth_data.is_backup_eligible()} differs from the stored "
                                f"{bool(stored_backup_eligible)}")
    # §6.1.1: a counter that does not move forward, while either side uses counters, may mean a
    # cloned authenticator. Synced passkeys report 0 forever, and that is fine.
    if (auth_data.counter or stored_sign_count) and auth_data.counter <= stored_sign_count:
        raise Rejected("counter", f"sign count {auth_data.counter} is not above the stored {stored_sign_count}")
    return VerifiedAssertion(sign_count=auth_data.counter, backup_eligible=auth_data.is_backup_eligible(),
                             backup_state=auth_data.is_backed_up(), user_handle=response.response.user_handle,
                             user_verified=auth_data.is_user_verified())
