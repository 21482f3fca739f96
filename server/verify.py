"""The checks of one WebAuthn response, as pure functions: no database, no HTTP.

python-fido2's `Fido2Server` does type, origin (with our exact-match callback), challenge,
rpIdHash, UP, UV and the signature of a registration. What it leaves to the caller (security.md) is
here: sizes capped before any CBOR is decoded, strict base64, `id` == `rawId` == the attested ID,
`crossOrigin` / `topOrigin`, tokenBinding, BE/BS consistency, BE equal to the stored value at login,
the credential ID length, the algorithm among those offered, a COSE key with only its key type's
parameters, RSA keys of the usual exponent and sizes, `fmt: none` with a statement, and the sign
counter.

Two kinds of refusal: `Malformed` (cannot be parsed: 400 invalid_request) and `Rejected`
(parses, fails a check: passkey_rejected). Both carry a reason code for logs and events.

Login is the hot path, so it skips work that decides nothing. Measured in process with an ES256
soft key (`python -m bench.verify_micro`, speedups installed, best of 9 on a busy 2-core machine):
parse_authentication took ~60 µs and verify_authentication ~120 µs, of which the P-256 verify
itself is ~63 µs. The rest was fido2's dataclasses converting already-typed fields (~40 µs of the
parse), and at every login the stored COSE key decoded, re-encoded into an AttestedCredentialData,
decoded again, and the cryptography key rebuilt from its numbers (the point checked on the curve).
Now parse assembles the same objects directly, and verify keeps each stored key loaded (a bounded
cache keyed by its exact bytes) and runs authenticate_complete's guard clauses itself, in fido2's
order with fido2's messages: ~14 µs and ~68 µs (~88 µs when the key is not cached yet). A stored
key the fast path does not take (an algorithm or shape registration never stores) still goes
through Fido2Server. Tests compare both paths and both ways of building the objects.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import json
import re
import struct
from dataclasses import dataclass, fields
from typing import Any, Callable, Collection, Mapping, NamedTuple

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import constant_time, hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from fido2 import cbor, cose
from fido2.cose import CoseKey, UnsupportedKey
from fido2.server import Fido2Server
from fido2.utils import bytes2int, websafe_decode, websafe_encode
from fido2.webauthn import (Aaguid, AttestationObject, AttestedCredentialData, AuthenticationExtensionsClientOutputs,
                            AuthenticationResponse, AuthenticatorAssertionResponse, AuthenticatorAttestationResponse,
                            AuthenticatorData, CollectedClientData, PublicKeyCredentialRpEntity,
                            PublicKeyCredentialType, RegistrationResponse, UserVerificationRequirement)

# EdDSA, ES256, RS256 (Windows Hello keys are RSA), in the order we prefer them.
ALGORITHMS = (-8, -7, -257)
MAX_CREDENTIAL_ID = 1023  # WebAuthn §5.1: credential IDs longer than this are invalid
_KEY_TYPES = {-7: 2, -8: 1, -257: 3}  # kty of each: EC2, OKP (RFC 9053 §7.1, §7.2), RSA (RFC 8230 §4)

# The parameters a public key of each key type has, with their CBOR types (RFC 9052 §7.1; RFC 9053
# §7.1.1 EC2, §7.2 OKP; RFC 8230 §4 RSA). WebAuthn §6.5.1: the credential public key "MUST NOT
# contain any other OPTIONAL parameters", so kid (2), key_ops (4), Base IV (5) and private parts
# (d) are refused like any unknown label: no real authenticator sends them (tests/test_vectors.py),
# and whatever rides along in a stored key is something a later reader may trust.
_KEY_PARAMETERS = {
    2: {1: int, 3: int, -1: int, -2: bytes, -3: bytes},  # kty, alg, crv, x, y
    1: {1: int, 3: int, -1: int, -2: bytes},  # kty, alg, crv, x
    3: {1: int, 3: int, -1: bytes, -2: bytes},  # kty, alg, n, e
}

# RSA keys (security.md case 34): the exponent every authenticator uses and the usual moduli. The
# verifier pays for the exponent, not the signer: a 3072-bit key with a 3071-bit exponent cost ~60x
# a normal verify here (~6 ms), on the database thread, at every login an attacker cares to send.
RSA_EXPONENT = 65537
RSA_MODULUS_BITS = (2048, 3072, 4096)
# fido2's RSA key types: each verifies with key[-1] as n and key[-2] as e, whatever kty says.
_RSA_KEYS = (cose.RS256, cose.PS256, cose.RS1)

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

# authenticatorData flags (WebAuthn §6.1) as plain ints: IntFlag arithmetic costs a microsecond a test.
_UP, _UV, _BE, _BS, _AT, _ED = (int(f) for f in (AuthenticatorData.FLAG.UP, AuthenticatorData.FLAG.UV,
                                                 AuthenticatorData.FLAG.BE, AuthenticatorData.FLAG.BS,
                                                 AuthenticatorData.FLAG.AT, AuthenticatorData.FLAG.ED))


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
        return _collected_client_data(raw, parsed)
    except _DECODE_ERRORS:
        raise Malformed("clientDataJSON is not of the WebAuthn shape") from None


def _collected_client_data(raw: bytes, parsed: dict) -> CollectedClientData:
    """`CollectedClientData(raw)` without its second json.loads of the same text: these are the
    assignments of fido2 2.2's __init__, with the dict just parsed (tests compare the two)."""
    client_data = bytes.__new__(CollectedClientData, raw)
    object.__setattr__(client_data, "_data", parsed)
    object.__setattr__(client_data, "type", parsed["type"])
    object.__setattr__(client_data, "challenge", websafe_decode(parsed["challenge"]))
    object.__setattr__(client_data, "origin", parsed["origin"])
    object.__setattr__(client_data, "cross_origin", parsed.get("crossOrigin", False))
    return client_data


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
        response=AuthenticatorAttestationResponse(client_data=client_data, attestation_object=attestation_object),
        authenticator_attachment=None, client_extension_results={}, type="public-key")


def parse_authentication(data: Any) -> AuthenticationResponse:
    response = _response(data)
    raw_id = _credential_ids(data)
    client_data = _client_data(decode(response.get("clientDataJSON"), "clientDataJSON"))
    authenticator_data = _authenticator_data(decode(response.get("authenticatorData"), "authenticatorData"))
    signature = decode(response.get("signature"), "signature")
    if not signature:
        raise Malformed("signature is empty")
    handle = response.get("userHandle")
    user_handle = decode(handle, "userHandle") if handle not in (None, "") else None
    return _authentication_response(raw_id, client_data, authenticator_data, signature, user_handle)


def _authenticator_data(raw: bytes) -> AuthenticatorData:
    if len(raw) == 37 and not raw[32] & (_AT | _ED):
        # An assertion's usual authenticatorData: rpIdHash, flags, signCount and nothing else.
        # These are the assignments of fido2 2.2's __init__ for exactly this case (tests compare).
        authenticator_data = bytes.__new__(AuthenticatorData, raw)
        object.__setattr__(authenticator_data, "rp_id_hash", raw[:32])
        object.__setattr__(authenticator_data, "flags", raw[32])
        object.__setattr__(authenticator_data, "counter", int.from_bytes(raw[33:37], "big"))
        object.__setattr__(authenticator_data, "credential_data", None)
        object.__setattr__(authenticator_data, "extensions", None)
        return authenticator_data
    try:
        return AuthenticatorData(raw)
    except _DECODE_ERRORS:
        raise Malformed("authenticatorData is malformed (too short, or trailing bytes)") from None


# fido2's WebAuthn dataclasses convert every field in __post_init__ (type hints, typing unions, enum
# lookups): 40 of parse_authentication's 60 µs. Every value below already has its final type, so the
# conversion would change nothing; the objects are assembled with the fields __post_init__ would
# leave. If a fido2 release changes the fields, the layout check sends us back to the constructors.
_ASSERTION_FIELDS = ("client_data", "authenticator_data", "signature", "user_handle")
_RESPONSE_FIELDS = ("id", "raw_id", "response", "authenticator_attachment", "client_extension_results", "type")


@functools.cache
def _layout(cls: type) -> tuple[tuple[str, ...], dict]:
    """The field names in order, and the `_field_keys` map __post_init__ gives every instance."""
    found = fields(cls)
    return tuple(f.name for f in found), {cls._get_field_key(f): f for f in found}


def _assembled(cls: type, values: tuple) -> Any:
    names, keys = _layout(cls)
    obj = object.__new__(cls)
    for name, value in zip(names, values):
        object.__setattr__(obj, name, value)
    object.__setattr__(obj, "_field_keys", dict(keys))
    return obj


def _authentication_response(raw_id: bytes, client_data: CollectedClientData, authenticator_data: AuthenticatorData,
                             signature: bytes, user_handle: bytes | None) -> AuthenticationResponse:
    if _layout(AuthenticatorAssertionResponse)[0] != _ASSERTION_FIELDS or _layout(
            AuthenticationResponse)[0] != _RESPONSE_FIELDS:
        return AuthenticationResponse(
            raw_id=raw_id,
            response=AuthenticatorAssertionResponse(client_data=client_data, authenticator_data=authenticator_data,
                                                    signature=signature, user_handle=user_handle),
            authenticator_attachment=None, client_extension_results={}, type="public-key")
    assertion = _assembled(AuthenticatorAssertionResponse, (client_data, authenticator_data, signature, user_handle))
    return _assembled(AuthenticationResponse, (websafe_encode(raw_id), raw_id, assertion, None,
                                               AuthenticationExtensionsClientOutputs({}),
                                               PublicKeyCredentialType.PUBLIC_KEY))


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
    if flags & _BS and not flags & _BE:
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
    """Load the key as the signature check will: a point off the curve, the wrong curve, an RSA key
    outside RSA_EXPONENT / RSA_MODULUS_BITS, or a label its key type does not define (text labels
    included) are refused at registration, not discovered at the first login."""
    try:
        alg = key[3]
        kty = _KEY_TYPES.get(alg)
        if kty is None or key.get(1) != kty:
            raise ValueError("key type does not match the algorithm")
        parameters = _KEY_PARAMETERS[kty]
        for label, value in key.items():
            # type(), not isinstance: True is an int, and CBOR's true is not a COSE label or crv.
            if type(label) is not int or label not in parameters:
                raise ValueError(f"label {str(label)[:16]!r} is not a parameter of key type {kty}")
            if type(value) is not parameters[label]:
                raise ValueError(f"label {label} holds {type(value).__name__}, not {parameters[label].__name__}")
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
            refusal = _rsa_refusal(key)
            if refusal is not None:
                raise ValueError(refusal)
            rsa.RSAPublicNumbers(bytes2int(key[-2]), bytes2int(key[-1])).public_key()
    except (KeyError, TypeError, ValueError) as exc:
        raise Rejected("parse", f"malformed COSE key: {exc}") from None


def _rsa_refusal(key: Mapping) -> str | None:
    """Why an RSA key is not one Tobira verifies with, or None. Read with fido2's own bytes2int, so
    the numbers judged are the numbers its RSA key types would verify with."""
    try:
        modulus, exponent = bytes2int(key[-1]), bytes2int(key[-2])
    except (KeyError, TypeError, ValueError):
        return "RSA key without n and e as byte strings"
    if exponent != RSA_EXPONENT:
        return f"RSA exponent other than {RSA_EXPONENT}"
    if modulus.bit_length() not in RSA_MODULUS_BITS:
        return f"RSA modulus of {modulus.bit_length()} bits, not one of {RSA_MODULUS_BITS}"
    return None


def _stored_key_refusal(key: CoseKey) -> str | None:
    """Why a stored key that parses must still never reach the signature math, or None: a row stored
    before registration refused such keys (a huge RSA exponent is a CPU bomb at every login)."""
    return _rsa_refusal(key) if isinstance(key, _RSA_KEYS) else None


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
    """A stored key as a fresh CoseKey (verify_authentication uses its cached _stored_key)."""
    key = CoseKey.parse(cbor.decode(public_key))
    _check_stored_key(key, _stored_key_refusal(key), algorithms)
    return key


def _check_stored_key(key: CoseKey, refusal: str | None, algorithms: Collection[int]) -> None:
    if isinstance(key, UnsupportedKey) or key.get(3) not in algorithms:
        raise Rejected("alg_not_requested", f"stored key algorithm {key.get(3)} is not one Tobira accepts")
    if refusal is not None:
        raise Rejected("parse", f"stored key refused: {refusal}")


# --- the stored key, loaded once ------------------------------------------------------------------
#
# fido2's own path decodes the stored COSE key, encodes it again (AttestedCredentialData.create),
# decodes that, and rebuilds the cryptography key from its numbers at every verify (20-35 µs for
# P-256, where the point is checked to lie on the curve). A stored key never changes, so it is
# loaded once per byte string and kept, ready to verify. The cache is keyed by the exact bytes from
# the database (dict lookup: equal hash *and* equal bytes), so no other byte string can reach an
# entry; it holds public data only.

KEY_CACHE_SIZE = 4096  # measured ~2 KB an RSA-2048 entry, ~1.4 KB a P-256 one: 8 MB at most


class _StoredKey(NamedTuple):
    cose: CoseKey
    # verify(message, signature), raising as cryptography does; None: verify through fido2 itself.
    verify: Callable[[bytes, bytes], None] | None
    # Why the key must not be verified with at all (_stored_key_refusal), or None. Judged once, at
    # load, so a refused key costs a dict lookup per login and builds no cryptography key.
    refusal: str | None


_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_PKCS1V15 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()


def _load_stored_key(public_key: bytes) -> _StoredKey:
    key = CoseKey.parse(cbor.decode(public_key))  # raises, as load_public_key always has
    refusal = _stored_key_refusal(key)
    return _StoredKey(key, None if refusal else _ready_verify(key), refusal)


_cached_stored_key = functools.lru_cache(maxsize=KEY_CACHE_SIZE)(_load_stored_key)


def _stored_key(public_key: bytes) -> _StoredKey:
    # Exactly bytes: a bytes subclass could bring its own __eq__ and __hash__; a memoryview or
    # bytearray is not hashable (and decodes to bytearray values, which take fido2's path).
    if type(public_key) is bytes:
        return _cached_stored_key(public_key)
    return _load_stored_key(public_key)


def _ready_verify(key: CoseKey) -> Callable[[bytes, bytes], None] | None:
    """The cryptography key fido2's ES256/EdDSA/RS256.verify would build, built now, with the same
    calls. Anything else, or anything that fails to build, returns None: such a key is verified by
    fido2's own code at every login, so it fares there as it always did (registration refuses such
    keys: only test vectors, or rows stored before its checks, have them)."""
    # Integer labels with integer or byte-string values come back unchanged from the CBOR round trip
    # of AttestedCredentialData.create, so the key verified here is the key fido2 would verify.
    if not all(type(label) is int and type(value) in (int, bytes) for label, value in key.items()):
        return None
    kind = type(key)
    try:
        if kind is cose.ES256:
            if key[-1] != 1:
                return None
            ec_key = ec.EllipticCurvePublicNumbers(bytes2int(key[-2]), bytes2int(key[-3]),
                                                   ec.SECP256R1()).public_key()
            return lambda message, signature: ec_key.verify(signature, message, _ECDSA_SHA256)
        if kind is cose.EdDSA:
            if key[-1] != 6:
                return None
            ed_key = ed25519.Ed25519PublicKey.from_public_bytes(key[-2])
            return lambda message, signature: ed_key.verify(signature, message)
        if kind is cose.RS256:
            rsa_key = rsa.RSAPublicNumbers(bytes2int(key[-2]), bytes2int(key[-1])).public_key()
            return lambda message, signature: rsa_key.verify(signature, message, _PKCS1V15, _SHA256)
    except Exception:  # noqa: BLE001 - fido2's path will raise this again, in its place
        return None
    return None


@functools.lru_cache(maxsize=64)
def _rp_id_hash(rp_id: str) -> bytes:
    # PublicKeyCredentialRpEntity.id_hash, as Fido2Server compares it (`or b""` included).
    return hashlib.sha256(rp_id.encode("utf8")).digest() if rp_id else b""


def verify_authentication(*, response: AuthenticationResponse, expected_challenge: bytes,
                          expected_origins: Collection[str], rp_id: str, public_key: bytes, stored_sign_count: int,
                          stored_backup_eligible: bool, algorithms: Collection[int] = ALGORITHMS,
                          require_user_verification: bool = True) -> VerifiedAssertion:
    """WebAuthn §7.2 for one known credential: raises Rejected, or returns the new counter and flags."""
    key = _stored_key(public_key)
    _check_stored_key(key.cose, key.refusal, algorithms)
    check_credential_id(response.raw_id)
    _client_data_checks(response.response.client_data, expected_challenge)
    if key.verify is None:
        _fido2_assertion_checks(response, key.cose, expected_challenge, expected_origins, rp_id,
                                require_user_verification)
    else:
        _assertion_checks(response, key.verify, expected_origins, rp_id, require_user_verification)
    auth_data = response.response.authenticator_data
    _flag_checks(auth_data)
    # §7.2 (currentBe): BE is fixed when the credential is created (§6.1.3). An assertion saying
    # otherwise is not from the authenticator that registered it, or would let a device-bound
    # passkey pass as synced (or the reverse) for any policy that reads the flag. Checked after the
    # signature, so only signed flags are judged; anything but a bool stored (None) is refused.
    if bool(auth_data.flags & _BE) != stored_backup_eligible:
        raise Rejected("flags", f"backup eligibility {bool(auth_data.flags & _BE)} differs from the stored "
                                f"{bool(stored_backup_eligible)}")
    # §6.1.1: a counter that does not move forward, while either side uses counters, may mean a
    # cloned authenticator. Synced passkeys report 0 forever, and that is fine.
    if (auth_data.counter or stored_sign_count) and auth_data.counter <= stored_sign_count:
        raise Rejected("counter", f"sign count {auth_data.counter} is not above the stored {stored_sign_count}")
    return VerifiedAssertion(
        sign_count=auth_data.counter,
        backup_eligible=bool(auth_data.flags & _BE),
        backup_state=bool(auth_data.flags & _BS),
        user_handle=response.response.user_handle)


def _assertion_checks(response: AuthenticationResponse, verify: Callable[[bytes, bytes], None],
                      expected_origins: Collection[str], rp_id: str, require_user_verification: bool) -> None:
    """Fido2Server.authenticate_complete's guard clauses (fido2/server.py), in its order, with its
    messages: the same checks without the CBOR round trip of the key. The challenge, its third
    check, is _client_data_checks' (the same constant-time comparison, made before this)."""
    client_data = response.response.client_data
    auth_data = response.response.authenticator_data
    if client_data.type != "webauthn.get":
        raise Rejected("type", "Incorrect type in CollectedClientData.")
    if client_data.origin not in frozenset(expected_origins):  # exact match, as _server's verify_origin
        raise Rejected("origin", "Invalid origin in CollectedClientData.")
    if not constant_time.bytes_eq(_rp_id_hash(rp_id), auth_data.rp_id_hash):
        raise Rejected("rp_id", "Wrong RP ID hash in response.")
    if not auth_data.flags & _UP:
        raise Rejected("up", "User Present flag not set.")
    if require_user_verification and not auth_data.flags & _UV:
        raise Rejected("uv", "User verification required, but user verified flag not set.")
    # WebAuthn §7.2 step 20: the signature is over authenticatorData || SHA-256(clientDataJSON).
    try:
        verify(auth_data + hashlib.sha256(client_data).digest(), response.response.signature)
    except InvalidSignature:
        raise Rejected("signature", "Invalid signature.") from None
    except ValueError as exc:
        raise _fido2_reason(exc) from None
    except Exception as exc:  # as in _fido2_assertion_checks
        raise Rejected("signature", f"signature could not be verified ({type(exc).__name__})") from None


def _fido2_assertion_checks(response: AuthenticationResponse, key: CoseKey, expected_challenge: bytes,
                            expected_origins: Collection[str], rp_id: str, require_user_verification: bool) -> None:
    """The same checks by fido2 itself, for a stored key _ready_verify does not take."""
    credential = AttestedCredentialData.create(Aaguid.NONE, response.raw_id, key)
    try:
        _server(rp_id, frozenset(expected_origins)).authenticate_complete(
            _state(expected_challenge, require_user_verification), [credential], response)
    except ValueError as exc:
        raise _fido2_reason(exc) from None
    except Exception as exc:  # cryptography may raise on a malformed DER signature
        raise Rejected("signature", f"signature could not be verified ({type(exc).__name__})") from None
