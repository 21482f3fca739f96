"""A credential's public key: what registration accepts, and the stored keys loaded for login.

Everything here reads fido2's public API only (`CoseKey.parse`, its key classes, `bytes2int`,
`AttestedCredentialData.create`); the refusals are strings that server/verify.py turns into
`Rejected` (reason "parse" or "alg_not_requested").
"""

from __future__ import annotations

import functools
from typing import Mapping, NamedTuple

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from fido2 import cbor, cose
from fido2.cose import CoseKey
from fido2.utils import bytes2int
from fido2.webauthn import Aaguid, AttestedCredentialData

# EdDSA, ES256, RS256 (Windows Hello keys are RSA), in the order we prefer them.
ALGORITHMS = (-8, -7, -257)
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


def new_key_refusal(key: CoseKey) -> str | None:
    """Why a key offered at registration is not stored, or None. Loaded as the signature check
    will load it: a point off the curve, the wrong curve, an RSA key outside RSA_EXPONENT /
    RSA_MODULUS_BITS, or a label its key type does not define (text labels included) are refused
    now, not discovered at the first login."""
    try:
        alg = key[3]
        kty = _KEY_TYPES.get(alg)
        if kty is None or key.get(1) != kty:
            return "key type does not match the algorithm"
        parameters = _KEY_PARAMETERS[kty]
        for label, value in key.items():
            # type(), not isinstance: True is an int, and CBOR's true is not a COSE label or crv.
            if type(label) is not int or label not in parameters:
                return f"label {str(label)[:16]!r} is not a parameter of key type {kty}"
            if type(value) is not parameters[label]:
                return f"label {label} holds {type(value).__name__}, not {parameters[label].__name__}"
        if alg == -7:
            if key[-1] != 1 or len(key[-2]) != 32 or len(key[-3]) != 32:
                return "ES256 needs P-256 coordinates of 32 bytes"
            ec.EllipticCurvePublicNumbers(bytes2int(key[-2]), bytes2int(key[-3]), ec.SECP256R1()).public_key()
        elif alg == -8:
            if key[-1] != 6:
                return "EdDSA needs Ed25519"
            ed25519.Ed25519PublicKey.from_public_bytes(key[-2])
        elif alg == -257:
            refusal = rsa_refusal(key)
            if refusal is not None:
                return refusal
            rsa.RSAPublicNumbers(bytes2int(key[-2]), bytes2int(key[-1])).public_key()
    except (KeyError, TypeError, ValueError) as exc:
        return str(exc)
    return None


def rsa_refusal(key: Mapping) -> str | None:
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


# --- stored keys, loaded once -------------------------------------------------------------------
#
# Fido2Server.authenticate_complete takes the credential as fido2's AttestedCredentialData. Making
# one from a stored row decodes the COSE key, encodes it again with the credential ID and decodes
# that: done once per (credential ID, stored key) and kept. The cache is keyed by the exact bytes
# from the database (equal hash *and* equal bytes), so no other credential or key can reach an
# entry; it holds public data only, and the signature is still checked by fido2 at every login.

KEY_CACHE_SIZE = 4096  # ~1-2 KB an entry (an RSA-2048 key with a long credential ID): 8 MB at most


class StoredKey(NamedTuple):
    credential: AttestedCredentialData  # what authenticate_complete verifies with
    # Why the key must never reach the signature math, or None: a row stored before registration
    # refused such keys (a huge RSA exponent is a CPU bomb at every login). Judged once, at load.
    refusal: str | None


def _load(credential_id: bytes, public_key: bytes) -> StoredKey:
    """Raises what fido2's decoders raise on bytes that are no COSE key."""
    decoded = cbor.decode(public_key)
    if not isinstance(decoded, Mapping):
        raise ValueError("a COSE key is a CBOR map")
    key = CoseKey.parse(decoded)
    refusal = rsa_refusal(key) if isinstance(key, _RSA_KEYS) else None
    return StoredKey(AttestedCredentialData.create(Aaguid.NONE, credential_id, key), refusal)


_cached = functools.lru_cache(maxsize=KEY_CACHE_SIZE)(_load)


def stored_key(credential_id: bytes, public_key: bytes) -> StoredKey:
    # Exactly bytes: a bytes subclass could bring its own __eq__ and __hash__; a memoryview or
    # bytearray is not hashable. Those are loaded every time.
    if type(credential_id) is bytes and type(public_key) is bytes:
        return _cached(credential_id, public_key)
    return _load(credential_id, public_key)


# For the tests and bench/verify_micro.py ("cold": a credential's first login after a restart).
cache_info = _cached.cache_info
cache_clear = _cached.cache_clear
