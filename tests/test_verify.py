"""server/verify.py against a software passkey (tests/softkey.py): no HTTP, no database.

One negative test per check of security.md's Registration (1-7) and Authentication (10-13) lists
that verify.py owns; items about sessions, ceremonies and the database (2's "from another session",
7's uniqueness, 8, 9, 14) belong to the API tests. Each case names the exception type and the
reason code: `Malformed` (cannot be parsed, API 400 invalid_request, reason "parse") or
`Rejected(reason)` (parses, fails a check, API passkey_rejected).

There is one verification path (fido2's public API plus Tobira's own checks); the refusal tables
run against it, and "the fido2 Tobira relies on" fails loudly when a fido2 upgrade changes what it
uses.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import random
import re
import tracemalloc
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from fido2 import cbor
from server import keys, verify
from server.verify import Malformed, Rejected
from softkey import AT, BE, BS, DROP, ED, EDDSA, ES256, RS256, UP, UV, SoftKey, b64url, b64url_decode

ORIGIN = "http://localhost:8000"
RP_ID = "localhost"
CHALLENGE = hashlib.sha256(b"the challenge Tobira issued").digest()
OTHER_CHALLENGE = hashlib.sha256(b"a challenge of another ceremony").digest()
HANDLE = bytes(range(32))
OK = ("ok", None)
MALFORMED = ("Malformed", "parse")
MEGABYTE = "A" * (1 << 20)


def rejected(reason: str) -> tuple[str, str]:
    return ("Rejected", reason)


_PRIVATE: dict[int, object] = {}


def make_key(alg: int = ES256, **kw) -> SoftKey:
    """A fresh SoftKey (own counter and credential ID) on a per-algorithm cached private key."""
    if alg not in _PRIVATE:
        _PRIVATE[alg] = SoftKey._generate(alg)
    return SoftKey(alg, private_key=_PRIVATE[alg], **kw)


def register(data, *, challenge=CHALLENGE, origins=(ORIGIN,), rp_id=RP_ID, algorithms=verify.ALGORITHMS,
             uv=True, conditional=False) -> verify.NewCredential:
    response = verify.parse_registration(data)
    return verify.verify_registration(response=response, expected_challenge=challenge,
                                      expected_origins=list(origins), rp_id=rp_id, algorithms=algorithms,
                                      require_user_verification=uv, conditional=conditional)


def authenticate(data, public_key: bytes, *, stored=0, be=None, challenge=CHALLENGE, origins=(ORIGIN,),
                 rp_id=RP_ID, algorithms=verify.ALGORITHMS, uv=True,
                 uv_initialized=True) -> verify.VerifiedAssertion:
    """be: the stored backup eligibility; None stores what the assertion says (the tests of that
    check, case 35, pass it explicitly)."""
    response = verify.parse_authentication(data)
    return verify.verify_authentication(response=response, expected_challenge=challenge,
                                        expected_origins=list(origins), rp_id=rp_id, public_key=public_key,
                                        stored_sign_count=stored, stored_backup_eligible=_stored_be(response, be),
                                        algorithms=algorithms, require_user_verification=uv,
                                        uv_initialized=uv_initialized)


def _stored_be(response, be: bool | None) -> bool:
    return bool(response.response.authenticator_data.flags & BE) if be is None else be


def outcome(run) -> tuple[str, str | None]:
    """("ok", None), ("Malformed", "parse") or ("Rejected", reason); anything else propagates."""
    try:
        run()
    except Malformed as exc:
        return ("Malformed", exc.reason)
    except Rejected as exc:
        return ("Rejected", exc.reason)
    return OK


def registered(key: SoftKey) -> verify.NewCredential:
    return register(key.create(CHALLENGE, user_handle=HANDLE))


def set_member(field: str, value):
    """A `tamper` hook replacing one raw response field (after signing)."""
    def tamper(parts):
        parts[field] = value(parts[field]) if callable(value) else value
    return tamper


def nested(depth: int, opener: bytes = b"\x81", leaf: bytes = b"\x00") -> bytes:
    """CBOR: `depth` arrays (or maps with opener b"\\xa1\\x00") around a leaf."""
    return opener * depth + leaf


# --- the soft key itself ---------------------------------------------------------------------


def test_softkey_speaks_the_toJSON_shape():
    key = make_key(EDDSA, synced=False)
    reg = key.create(CHALLENGE, user_handle=HANDLE)
    assert set(reg) == {"id", "rawId", "type", "response", "clientExtensionResults", "authenticatorAttachment"}
    assert reg["type"] == "public-key" and reg["id"] == reg["rawId"]
    assert reg["authenticatorAttachment"] == "cross-platform" and reg["response"]["transports"] == ["usb"]
    assert {"clientDataJSON", "attestationObject", "transports"} <= set(reg["response"])
    client_data = json.loads(b64url_decode(reg["response"]["clientDataJSON"]))
    assert client_data == {"type": "webauthn.create", "challenge": b64url(CHALLENGE), "origin": ORIGIN,
                           "crossOrigin": False}
    attestation = cbor.decode(b64url_decode(reg["response"]["attestationObject"]))
    assert attestation["fmt"] == "none" and attestation["attStmt"] == {}
    auth_data = attestation["authData"]
    assert auth_data[:32] == hashlib.sha256(RP_ID.encode()).digest()
    assert auth_data[32] == UP | UV | AT and auth_data[33:37] == bytes(4)
    assert cbor.decode(key.cose_public_key) == {1: 1, 3: -8, -1: 6, -2: key.cose_key()[-2]}

    auth = key.get(CHALLENGE)
    assert set(auth["response"]) == {"clientDataJSON", "authenticatorData", "signature", "userHandle"}
    assert b64url_decode(auth["response"]["userHandle"]) == HANDLE
    assert b64url_decode(auth["response"]["authenticatorData"])[33:37] == (1).to_bytes(4, "big")
    for value in [reg["id"], *reg["response"].values(), *auth["response"].values()]:
        assert not isinstance(value, str) or "=" not in value


# --- happy paths -----------------------------------------------------------------------------


@pytest.mark.parametrize("alg", [ES256, EDDSA, RS256], ids=["ES256", "EdDSA", "RS256"])
def test_device_bound_key_registers_and_counts_up(alg):
    aaguid = bytes.fromhex("ee882879721c491397753dfcce97072a")
    key = make_key(alg, synced=False, aaguid=aaguid)
    new = registered(key)
    assert new.credential_id == key.credential_id
    assert new.public_key == key.cose_public_key
    assert new.algorithm == alg
    assert new.sign_count == 0
    assert new.aaguid == "ee882879-721c-4913-9775-3dfcce97072a"
    assert (new.backup_eligible, new.backup_state, new.user_verified) == (False, False, True)

    stored = new.sign_count
    for expected in (1, 2, 3):
        result = authenticate(key.get(CHALLENGE), new.public_key, stored=stored)
        assert result.sign_count == expected
        assert (result.backup_eligible, result.backup_state) == (False, False)
        assert result.user_handle == HANDLE
        stored = result.sign_count


@pytest.mark.parametrize("alg", [ES256, EDDSA, RS256], ids=["ES256", "EdDSA", "RS256"])
def test_synced_key_stays_at_zero_and_is_accepted_again(alg):
    key = make_key(alg)
    new = registered(key)
    assert (new.algorithm, new.sign_count, new.backup_eligible, new.backup_state) == (alg, 0, True, True)
    assert new.aaguid == "00000000-0000-0000-0000-000000000000"
    for _ in range(3):
        result = authenticate(key.get(CHALLENGE), new.public_key, stored=0)
        assert (result.sign_count, result.backup_eligible, result.backup_state) == (0, True, True)


def test_the_transports_reported_are_kept():
    key = make_key(transports=["internal", "hybrid", "carrier-pigeon", "internal"])
    assert verify.transports_of(key.create(CHALLENGE, user_handle=HANDLE)) == ["hybrid", "internal"]


# --- registration: what is accepted despite looking odd --------------------------------------


@pytest.mark.parametrize("make, verify_kw", [
    pytest.param(lambda k: k.create(CHALLENGE, cross_origin=None), {}, id="crossOrigin-absent"),
    pytest.param(lambda k: k.create(CHALLENGE, client_data={
        "other_keys_can_be_added_here": "do not compare clientDataJSON against a template"}), {},
        id="chrome-extra-member"),
    pytest.param(lambda k: k.create(CHALLENGE, token_binding={"status": "supported"}), {}, id="tokenBinding-supported"),
    pytest.param(lambda k: k.create(CHALLENGE, token_binding="not-supported"), {}, id="tokenBinding-legacy-string"),
    pytest.param(lambda k: k.create(CHALLENGE, origin="https://tobira.example"),
                 {"origins": (ORIGIN, "https://tobira.example")}, id="second-configured-origin"),
    pytest.param(lambda k: k.create(CHALLENGE, flags=UP | AT | BE | BS), {"uv": False}, id="uv0-not-required"),
    pytest.param(lambda k: k.create(CHALLENGE, flags=UP | UV | AT | BE), {}, id="be1-bs0"),
    pytest.param(lambda k: k.create(CHALLENGE, extensions={"credProtect": 2}), {}, id="extensions"),
    pytest.param(lambda k: k.create(CHALLENGE, credential_id=bytes(1023)), {}, id="credential-id-1023"),
    pytest.param(lambda k: k.create(CHALLENGE, fmt="packed", att_stmt={"alg": -7, "sig": b"\x30"}), {},
                 id="known-fmt-statement-ignored"),
])
def test_registration_accepts(make, verify_kw):
    key = make_key()
    data = make(key)
    new = register(data, **verify_kw)
    assert new.credential_id == b64url_decode(data["rawId"])
    assert new.public_key == key.cose_public_key


def test_a_1023_byte_credential_id_also_logs_in():
    key = make_key(credential_id=bytes(range(256)) * 3 + bytes(255))
    new = registered(key)
    assert len(new.credential_id) == 1023
    assert authenticate(key.get(CHALLENGE), new.public_key).user_handle == HANDLE


# --- registration: refusals (security.md 1-7) ------------------------------------------------

ORIGIN_VARIANTS = [
    "https://localhost:8000",          # https instead of http
    "http://localhost",                # port missing
    "http://localhost:8001",           # other port
    "http://localhost:8000:8000",      # extra port
    "http://sub.localhost:8000",       # sub-domain
    "http://localhost:8000.evil.com",  # look-alike suffix
    "http://evillocalhost:8000",       # look-alike prefix
    "http://evil.com",
    "",
    "null",
    "http://localhost:8000/",
    "HTTP://LOCALHOST:8000",
    "http://localhost:8000 ",
]


def _ec_key(curve) -> dict:
    numbers = ec.generate_private_key(curve).public_key().public_numbers()
    size = (curve.key_size + 7) // 8
    return {1: 2, 3: -7, -1: 2, -2: numbers.x.to_bytes(size, "big"), -3: numbers.y.to_bytes(size, "big")}


def _off_curve(k: SoftKey) -> dict:
    key = k.cose_key()
    key[-3] = ((int.from_bytes(key[-3], "big") + 1) % 2**256).to_bytes(32, "big")
    return key


def _with(k: SoftKey, changes: dict) -> dict:
    """The soft key's COSE key with labels changed (value DROP removes the label)."""
    key = k.cose_key()
    for label, value in changes.items():
        if value is DROP:
            key.pop(label)
        else:
            key[label] = value
    return key


def _text_labels(k: SoftKey) -> dict:
    names = {1: "kty", 3: "alg", -1: "crv", -2: "x", -3: "y"}
    return {names[label]: value for label, value in k.cose_key().items()}


def _rsa_key(bits: int, e: int = 65537) -> dict:
    n = rsa.generate_private_key(public_exponent=65537, key_size=bits).public_key().public_numbers().n
    return {1: 3, 3: -257, -1: n.to_bytes((bits + 7) // 8, "big"), -2: e.to_bytes((e.bit_length() + 7) // 8, "big")}


def _attestation_with_nested_statement(k: SoftKey) -> bytes:
    auth_data = k.authenticator_data(flags=k.default_flags(attested=True), counter=0,
                                     attested_data=k.attested_credential_data())
    return (b"\xa3" + cbor.encode("fmt") + cbor.encode("none") + cbor.encode("attStmt") + nested(3000)
            + cbor.encode("authData") + cbor.encode(auth_data))


def _auth_data_nested_in_key(k: SoftKey) -> bytes:
    attested = k.aaguid + len(k.credential_id).to_bytes(2, "big") + k.credential_id + nested(3000, b"\xa1\x00")
    auth_data = k.authenticator_data(flags=k.default_flags(attested=True), counter=0, attested_data=attested)
    return cbor.encode({"fmt": "none", "attStmt": {}, "authData": auth_data})


def _reg_json(edit):
    def make(k: SoftKey) -> dict:
        data = k.create(CHALLENGE, user_handle=HANDLE)
        edit(data)
        return data
    return make


REGISTRATION_REFUSALS = [
    # 1. clientDataJSON
    ("cdj-not-utf8", lambda k: k.create(CHALLENGE, client_data_json=(
        b'{"type":"webauthn.create","challenge":"' + b64url(CHALLENGE).encode()
        + b'","origin":"http://localhost:8000","x":"\xff\xfe"}')), {}, MALFORMED),
    ("cdj-not-json", lambda k: k.create(CHALLENGE, client_data_json=b"type=webauthn.create"), {}, MALFORMED),
    ("cdj-json-array", lambda k: k.create(CHALLENGE, client_data_json=b'["webauthn.create"]'), {}, MALFORMED),
    ("cdj-json-string", lambda k: k.create(CHALLENGE, client_data_json=b'"webauthn.create"'), {}, MALFORMED),
    ("cdj-empty", lambda k: k.create(CHALLENGE, client_data_json=b""), {}, MALFORMED),
    ("cdj-deeply-nested", lambda k: k.create(CHALLENGE, client_data_json=(
        b'{"type":"webauthn.create","x":' + b"[" * 1500 + b"]" * 1500 + b"}")), {}, MALFORMED),
    ("type-webauthn.get", lambda k: k.create(CHALLENGE, type="webauthn.get"), {}, rejected("type")),
    ("type-empty", lambda k: k.create(CHALLENGE, type=""), {}, rejected("type")),
    ("type-padded", lambda k: k.create(CHALLENGE, type="webauthn.create "), {}, rejected("type")),
    ("type-missing", lambda k: k.create(CHALLENGE, client_data={"type": DROP}), {}, MALFORMED),
    ("type-number", lambda k: k.create(CHALLENGE, client_data={"type": 1}), {}, MALFORMED),
    ("origin-missing", lambda k: k.create(CHALLENGE, client_data={"origin": DROP}), {}, MALFORMED),
    ("origin-null", lambda k: k.create(CHALLENGE, client_data={"origin": None}), {}, MALFORMED),
    # 2. challenge
    ("challenge-wrong", lambda k: k.create(OTHER_CHALLENGE), {}, rejected("challenge")),
    ("challenge-truncated", lambda k: k.create(CHALLENGE[:16]), {}, rejected("challenge")),
    ("challenge-empty", lambda k: k.create(b""), {}, rejected("challenge")),
    ("challenge-missing", lambda k: k.create(CHALLENGE, client_data={"challenge": DROP}), {}, MALFORMED),
    ("challenge-null", lambda k: k.create(CHALLENGE, client_data={"challenge": None}), {}, MALFORMED),
    ("challenge-object", lambda k: k.create(CHALLENGE, client_data={"challenge": {"a": 1}}), {}, MALFORMED),
    # 3. origin, crossOrigin, topOrigin, tokenBinding
    *[(f"origin={o!r}", lambda k, o=o: k.create(CHALLENGE, origin=o), {}, rejected("origin"))
      for o in ORIGIN_VARIANTS],
    ("crossOrigin-true", lambda k: k.create(CHALLENGE, cross_origin=True), {}, rejected("origin")),
    ("crossOrigin-truthy-string", lambda k: k.create(CHALLENGE, cross_origin="false"), {}, rejected("origin")),
    ("topOrigin-same", lambda k: k.create(CHALLENGE, top_origin=ORIGIN), {}, rejected("origin")),
    ("topOrigin-other", lambda k: k.create(CHALLENGE, cross_origin=True, top_origin="https://evil.com"), {},
     rejected("origin")),
    ("topOrigin-null", lambda k: k.create(CHALLENGE, client_data={"topOrigin": None}), {}, rejected("origin")),
    ("tokenBinding-bad-status", lambda k: k.create(CHALLENGE, token_binding={"status": "not-supported"}), {},
     rejected("token_binding")),
    ("tokenBinding-number", lambda k: k.create(CHALLENGE, token_binding=5), {}, rejected("token_binding")),
    # 4. attestationObject
    ("attobj-empty", lambda k: k.create(CHALLENGE, tamper=set_member("attestationObject", b"")), {}, MALFORMED),
    ("attobj-array", lambda k: k.create(CHALLENGE, tamper=set_member("attestationObject", cbor.encode(["none", {}]))),
     {}, MALFORMED),
    ("attobj-text", lambda k: k.create(CHALLENGE, tamper=set_member("attestationObject", cbor.encode("none"))), {},
     MALFORMED),
    ("attobj-json", lambda k: k.create(CHALLENGE, tamper=set_member("attestationObject", b'{"fmt":"none"}')), {},
     MALFORMED),
    ("attobj-trailing-byte", lambda k: k.create(CHALLENGE, tamper=set_member("attestationObject",
                                                                                lambda b: b + b"\x00")), {},
     MALFORMED),
    ("attobj-cbor-tag", lambda k: k.create(CHALLENGE, tamper=set_member("attestationObject",
                                                                           lambda b: b"\xd8\x18" + b)), {}, MALFORMED),
    ("attobj-nested-top", lambda k: k.create(CHALLENGE, tamper=set_member("attestationObject", nested(5000))), {},
     MALFORMED),
    ("attobj-nested-attStmt", lambda k: k.create(CHALLENGE, tamper=set_member(
        "attestationObject", _attestation_with_nested_statement(k))), {}, MALFORMED),
    ("attobj-nested-cose-key", lambda k: k.create(CHALLENGE, tamper=set_member(
        "attestationObject", _auth_data_nested_in_key(k))), {}, MALFORMED),
    ("fmt-missing", lambda k: k.create(CHALLENGE, attestation_fields={"fmt": DROP}), {}, MALFORMED),
    ("authData-missing", lambda k: k.create(CHALLENGE, attestation_fields={"authData": DROP}), {}, MALFORMED),
    ("attStmt-missing", lambda k: k.create(CHALLENGE, attestation_fields={"attStmt": DROP}), {}, MALFORMED),
    ("fmt-number", lambda k: k.create(CHALLENGE, attestation_fields={"fmt": 0}), {}, MALFORMED),
    ("attStmt-array", lambda k: k.create(CHALLENGE, att_stmt=[]), {}, MALFORMED),
    ("authData-text", lambda k: k.create(CHALLENGE, attestation_fields={"authData": "x" * 200}), {}, MALFORMED),
    ("authData-too-short", lambda k: k.create(CHALLENGE, attestation_fields={"authData": bytes(36)}), {}, MALFORMED),
    ("authData-trailing-byte", lambda k: k.create(CHALLENGE, auth_data_trailing=b"\x00"), {}, MALFORMED),
    ("AT-without-attested-data", lambda k: k.create(CHALLENGE, attested=False), {}, MALFORMED),
    ("no-AT-no-attested-data", lambda k: k.create(CHALLENGE, attested=False, flags=UP | UV | BE | BS), {},
     rejected("parse")),
    ("attested-data-without-AT", lambda k: k.create(CHALLENGE, flags=UP | UV | BE | BS), {}, MALFORMED),
    ("ED-without-extensions", lambda k: k.create(CHALLENGE, flags=UP | UV | BE | BS | AT | ED), {}, MALFORMED),
    ("fmt-unknown", lambda k: k.create(CHALLENGE, fmt="made-up"), {}, rejected("attestation")),
    ("fmt-empty", lambda k: k.create(CHALLENGE, fmt=""), {}, rejected("attestation")),
    ("fmt-none-with-statement", lambda k: k.create(CHALLENGE, att_stmt={"alg": -7, "sig": b"\x30\x00"}), {},
     rejected("attestation")),
    # 5. rpIdHash and flags
    ("rpIdHash-other-site", lambda k: k.create(CHALLENGE, rp_id="evil.com"), {}, rejected("rp_id")),
    ("rpIdHash-with-port", lambda k: k.create(CHALLENGE, rp_id="localhost:8000"), {}, rejected("rp_id")),
    ("rpIdHash-trailing-dot", lambda k: k.create(CHALLENGE, rp_id="localhost."), {}, rejected("rp_id")),
    ("UP=0", lambda k: k.create(CHALLENGE, flags=UV | AT | BE | BS), {}, rejected("up")),
    ("UV=0", lambda k: k.create(CHALLENGE, flags=UP | AT | BE | BS), {}, rejected("uv")),
    ("BE=0-BS=1", lambda k: k.create(CHALLENGE, flags=UP | UV | AT | BS), {}, rejected("flags")),
    # 6. algorithm and COSE key
    ("ES256-not-offered", lambda k: k.create(CHALLENGE), {"algorithms": (EDDSA,)}, rejected("alg_not_requested")),
    ("ES384-key", lambda k: k.create(CHALLENGE, cose_key={**_ec_key(ec.SECP384R1()), 3: -35}), {},
     rejected("alg_not_requested")),
    ("alg-unknown", lambda k: k.create(CHALLENGE, cose_key=_with(k, {3: -65000})), {}, rejected("alg_not_requested")),
    ("alg-missing", lambda k: k.create(CHALLENGE, cose_key=_with(k, {3: DROP})), {}, MALFORMED),
    ("point-off-curve", lambda k: k.create(CHALLENGE, cose_key=_off_curve(k)), {}, rejected("parse")),
    ("point-zero", lambda k: k.create(CHALLENGE, cose_key=_with(k, {-2: bytes(32), -3: bytes(32)})), {},
     rejected("parse")),
    ("curve-P384-label", lambda k: k.create(CHALLENGE, cose_key=_with(k, {-1: 2})), {}, rejected("parse")),
    ("curve-P384-key-as-ES256", lambda k: k.create(CHALLENGE, cose_key=_ec_key(ec.SECP384R1())), {},
     rejected("parse")),
    ("x-31-bytes", lambda k: k.create(CHALLENGE, cose_key=_with(k, {-2: k.cose_key()[-2][1:]})), {}, rejected("parse")),
    ("x-33-bytes-same-point", lambda k: k.create(CHALLENGE, cose_key=_with(k, {-2: b"\0" + k.cose_key()[-2]})), {},
     rejected("parse")),
    ("y-missing", lambda k: k.create(CHALLENGE, cose_key=_with(k, {-3: DROP})), {}, rejected("parse")),
    ("x-text", lambda k: k.create(CHALLENGE, cose_key=_with(k, {-2: "x" * 32})), {}, rejected("parse")),
    ("text-labels", lambda k: k.create(CHALLENGE, cose_key=_text_labels(k)), {}, MALFORMED),
    ("text-labels-but-alg", lambda k: k.create(CHALLENGE, cose_key={**_text_labels(k), 3: -7}), {},
     rejected("parse")),
    ("ES256-labelled-EdDSA", lambda k: k.create(CHALLENGE, cose_key=_with(k, {3: -8})), {}, rejected("parse")),
    ("cose-key-not-a-map", lambda k: k.create(CHALLENGE, cose_key=cbor.encode(-7)), {}, MALFORMED),
    # 7. credential ID, id, rawId, type
    ("credential-id-1024", lambda k: k.create(CHALLENGE, credential_id=bytes(1024)), {}, rejected("parse")),
    ("credential-id-65535", lambda k: k.create(CHALLENGE, credential_id=bytes(65535)), {}, MALFORMED),
    ("credential-id-empty", lambda k: k.create(CHALLENGE, credential_id=b""), {}, MALFORMED),
    ("rawId-not-attested-id", lambda k: k.create(CHALLENGE, raw_id=bytes(16)), {}, rejected("credential_id")),
    ("id-not-rawId", lambda k: k.create(CHALLENGE, id=b64url(bytes(16))), {}, MALFORMED),
    ("id-missing", _reg_json(lambda d: d.pop("id")), {}, MALFORMED),
    ("rawId-missing", _reg_json(lambda d: d.pop("rawId")), {}, MALFORMED),
    ("type-not-public-key", lambda k: k.create(CHALLENGE, credential_type="password"), {}, MALFORMED),
    ("type-missing-json", _reg_json(lambda d: d.pop("type")), {}, MALFORMED),
    ("response-missing", _reg_json(lambda d: d.pop("response")), {}, MALFORMED),
    ("response-not-object", _reg_json(lambda d: d.update(response=[d["response"]])), {}, MALFORMED),
    ("attestationObject-missing", _reg_json(lambda d: d["response"].pop("attestationObject")), {}, MALFORMED),
    ("clientDataJSON-missing", _reg_json(lambda d: d["response"].pop("clientDataJSON")), {}, MALFORMED),
]


@pytest.mark.parametrize("make, verify_kw, expected", [pytest.param(*case[1:], id=case[0])
                                                        for case in REGISTRATION_REFUSALS])
def test_registration_refuses(make, verify_kw, expected):
    key = make_key()
    assert outcome(lambda: register(make(key), **verify_kw)) == expected


@pytest.mark.parametrize("alg, offered", [(ES256, (EDDSA,)), (EDDSA, (ES256, RS256)), (RS256, (EDDSA, ES256))],
                         ids=["ES256", "EdDSA", "RS256"])
def test_registration_refuses_an_algorithm_not_offered(alg, offered):
    key = make_key(alg)
    assert outcome(lambda: register(key.create(CHALLENGE), algorithms=offered)) == rejected("alg_not_requested")
    assert outcome(lambda: register(key.create(CHALLENGE), algorithms=offered + (alg,))) == OK


@pytest.mark.parametrize("make", [
    pytest.param(lambda k: {**k.cose_key(), -1: 1}, id="wrong-curve"),
    pytest.param(lambda k: {**k.cose_key(), -2: k.cose_key()[-2][:31]}, id="short-x"),
    pytest.param(lambda k: {**k.cose_key(), -2: "x" * 32}, id="x-text"),
])
def test_registration_refuses_a_malformed_eddsa_key(make):
    key = make_key(EDDSA)
    assert outcome(lambda: register(key.create(CHALLENGE, cose_key=make(key)))) == rejected("parse")


@pytest.mark.parametrize("make", [
    pytest.param(lambda k: _rsa_key(1024), id="modulus-1024"),
    pytest.param(lambda k: {**k.cose_key(), -2: (1).to_bytes(1, "big")}, id="e=1"),
    pytest.param(lambda k: {**k.cose_key(), -2: (65536).to_bytes(3, "big")}, id="e-even"),
    pytest.param(lambda k: {**k.cose_key(), -1: "n"}, id="n-text"),
    pytest.param(lambda k: {1: 3, 3: -257, -1: k.cose_key()[-1]}, id="e-missing"),
])
def test_registration_refuses_a_malformed_rsa_key(make):
    key = make_key(RS256)
    assert outcome(lambda: register(key.create(CHALLENGE, cose_key=make(key)))) == rejected("parse")


@pytest.mark.parametrize("kty", [DROP, 3, 1], ids=["kty-missing", "kty-RSA", "kty-OKP"])
def test_registration_refuses_a_cose_key_with_a_wrong_kty(kty):
    key = make_key(ES256)
    assert outcome(lambda: register(key.create(CHALLENGE, cose_key=_with(key, {1: kty})))) == rejected("parse")


# Truncated CBOR heads: fido2's decoder reads the argument with struct.unpack_from, whose
# struct.error is not a ValueError and escapes parse_registration / parse_authentication.
TRUNCATED_CBOR = [b"\x19\x01", b"\x1a\x00\x00", b"\xa1\x19", b"\x5a\x00\x01", b"\xa3\x63fmt\x19\x00"]


@pytest.mark.parametrize("att", TRUNCATED_CBOR, ids=lambda b: b.hex())
def test_registration_truncated_cbor_head_is_malformed(att):
    key = make_key()
    assert outcome(lambda: register(key.create(CHALLENGE, tamper=set_member("attestationObject", att)))) == MALFORMED


def test_registration_truncated_cose_key_head_is_malformed():
    key = make_key()
    cut = b"\xa5\x01\x02\x03\x26\x20\x01\x21\x59\x00"  # {1: 2, 3: -7, -1: 1, -2: bstr, 2-byte length cut}
    assert outcome(lambda: register(key.create(CHALLENGE, cose_key=cut))) == MALFORMED


@pytest.mark.parametrize("auth_data", [37, [0] * 37], ids=["int", "array-of-ints"])
def test_registration_authdata_of_the_wrong_type_is_malformed(auth_data):
    key = make_key()
    att = cbor.encode({"fmt": "none", "attStmt": {}, "authData": auth_data})
    assert outcome(lambda: verify.parse_registration(
        key.create(CHALLENGE, tamper=set_member("attestationObject", att)))) == MALFORMED


def _peak_allocation(run) -> tuple[tuple[str, str | None], int]:
    """The outcome of run() and the largest amount of memory it held at once, in bytes."""
    tracemalloc.start()
    try:
        result = outcome(run)
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_registration_integer_authdata_allocates_nothing():
    key = make_key()
    att = cbor.encode({"fmt": "none", "attStmt": {}, "authData": 1 << 24})
    data = key.create(CHALLENGE, tamper=set_member("attestationObject", att))
    result, peak = _peak_allocation(lambda: verify.parse_registration(data))
    assert (result, peak < 1 << 20) == (MALFORMED, True)


@pytest.mark.parametrize("ceremony", ["create", "get"])
@pytest.mark.parametrize("challenge", [12345, 1 << 64, [1, 2, 3], True, 1 << 24],
                         ids=["small-int", "2**64", "array", "true", "2**24"])
def test_a_non_string_challenge_is_malformed_without_allocating(ceremony, challenge):
    key = make_key()
    data = getattr(key, ceremony)(CHALLENGE, client_data={"challenge": challenge})
    parse = verify.parse_registration if ceremony == "create" else verify.parse_authentication
    result, peak = _peak_allocation(lambda: parse(data))
    assert (result, peak < 1 << 20) == (MALFORMED, True)


# --- authentication: refusals (security.md 10, 11, 13) ---------------------------------------


def _flip(offset: int, mask: int):
    """tamper: xor one byte of authenticatorData after signing."""
    def tamper(parts):
        data = bytearray(parts["authenticatorData"])
        data[offset] ^= mask
        parts["authenticatorData"] = bytes(data)
    return tamper


def _resign_client_data(**changes):
    """tamper: re-serialise clientDataJSON with changes, keeping the old signature."""
    def tamper(parts):
        data = json.loads(parts["clientDataJSON"])
        data.update(changes)
        parts["clientDataJSON"] = json.dumps(data, separators=(",", ":")).encode()
    return tamper


def _raw_signature(k: SoftKey):
    """tamper: the ECDSA signature as IEEE P1363 r||s instead of DER."""
    def tamper(parts):
        r, s = decode_dss_signature(parts["signature"])
        parts["signature"] = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return tamper


def _auth_json(edit):
    def make(k: SoftKey) -> dict:
        data = k.get(CHALLENGE)
        edit(data)
        return data
    return make


AUTHENTICATION_REFUSALS = [
    # 10. clientDataJSON and flags, as at registration
    ("type-webauthn.create", lambda k: k.get(CHALLENGE, type="webauthn.create"), {}, rejected("type")),
    ("type-missing", lambda k: k.get(CHALLENGE, client_data={"type": DROP}), {}, MALFORMED),
    ("cdj-not-json", lambda k: k.get(CHALLENGE, client_data_json=b"\x00\x01"), {}, MALFORMED),
    ("cdj-not-utf8", lambda k: k.get(CHALLENGE, client_data_json=b'{"type":"webauthn.get\xc3"}'), {}, MALFORMED),
    ("challenge-wrong", lambda k: k.get(OTHER_CHALLENGE), {}, rejected("challenge")),
    ("challenge-missing", lambda k: k.get(CHALLENGE, client_data={"challenge": DROP}), {}, MALFORMED),
    ("challenge-null", lambda k: k.get(CHALLENGE, client_data={"challenge": None}), {}, MALFORMED),
    *[(f"origin={o!r}", lambda k, o=o: k.get(CHALLENGE, origin=o), {}, rejected("origin")) for o in ORIGIN_VARIANTS],
    ("crossOrigin-true", lambda k: k.get(CHALLENGE, cross_origin=True), {}, rejected("origin")),
    ("topOrigin", lambda k: k.get(CHALLENGE, cross_origin=True, top_origin="https://evil.com"), {},
     rejected("origin")),
    ("tokenBinding-bad-status", lambda k: k.get(CHALLENGE, token_binding={"status": "nope"}), {},
     rejected("token_binding")),
    ("rpIdHash-other-site", lambda k: k.get(CHALLENGE, rp_id="evil.com"), {}, rejected("rp_id")),
    ("UP=0", lambda k: k.get(CHALLENGE, flags=UV | BE | BS), {}, rejected("up")),
    ("UV=0", lambda k: k.get(CHALLENGE, flags=UP | BE | BS), {}, rejected("uv")),
    ("BE=0-BS=1", lambda k: k.get(CHALLENGE, flags=UP | UV | BS), {}, rejected("flags")),
    ("stored-key-alg-not-offered", lambda k: k.get(CHALLENGE), {"algorithms": (EDDSA, RS256)},
     rejected("alg_not_requested")),
    # 11. the signature covers everything
    ("mutated-cdj-extra-member", lambda k: k.get(CHALLENGE, tamper=_resign_client_data(extra="x")), {},
     rejected("signature")),
    ("mutated-cdj-crossOrigin-dropped", lambda k: k.get(CHALLENGE, tamper=set_member(
        "clientDataJSON", lambda b: b.replace(b',"crossOrigin":false', b""))), {}, rejected("signature")),
    ("mutated-flags-rfu-bit", lambda k: k.get(CHALLENGE, tamper=_flip(32, 0x02)), {}, rejected("signature")),
    ("mutated-flags-backup", lambda k: k.get(CHALLENGE, tamper=_flip(32, BE | BS)), {}, rejected("signature")),
    ("mutated-flags-uv-added", lambda k: k.get(CHALLENGE, flags=UP | BE | BS, tamper=_flip(32, UV)), {},
     rejected("signature")),
    ("mutated-counter", lambda k: k.get(CHALLENGE, tamper=_flip(36, 0x40)), {}, rejected("signature")),
    ("mutated-rpIdHash", lambda k: k.get(CHALLENGE, tamper=_flip(0, 0x01)), {}, rejected("rp_id")),
    ("signature-empty", lambda k: k.get(CHALLENGE, signature=b""), {}, MALFORMED),
    ("signature-not-DER", lambda k: k.get(CHALLENGE, tamper=_raw_signature(k)), {}, rejected("signature")),
    ("signature-DER-trailing-byte", lambda k: k.get(CHALLENGE, tamper=set_member("signature", lambda s: s + b"\0")),
     {}, rejected("signature")),
    ("signature-garbage", lambda k: k.get(CHALLENGE, signature=b"\x30" + bytes(70)), {}, rejected("signature")),
    ("signature-bit-flipped", lambda k: k.get(CHALLENGE, tamper=set_member(
        "signature", lambda s: s[:-1] + bytes([s[-1] ^ 1]))), {}, rejected("signature")),
    ("signature-over-sha256-missing", lambda k: k.get(CHALLENGE, signature=k.sign(b"unrelated")), {},
     rejected("signature")),
    # 13. authenticatorData, id, type
    ("authData-empty", lambda k: k.get(CHALLENGE, tamper=set_member("authenticatorData", b"")), {}, MALFORMED),
    ("authData-36-bytes", lambda k: k.get(CHALLENGE, tamper=set_member("authenticatorData", lambda b: b[:36])), {},
     MALFORMED),
    ("authData-trailing-byte", lambda k: k.get(CHALLENGE, auth_data_trailing=b"\x00"), {}, MALFORMED),
    ("authData-ED-without-extensions", lambda k: k.get(CHALLENGE, flags=UP | UV | BE | BS | ED), {}, MALFORMED),
    ("authData-AT-without-data", lambda k: k.get(CHALLENGE, flags=UP | UV | BE | BS | AT), {}, MALFORMED),
    ("authData-extension-nested", lambda k: k.get(CHALLENGE, extensions=nested(700)), {}, MALFORMED),
    ("id-not-rawId", lambda k: k.get(CHALLENGE, id=b64url(bytes(16))), {}, MALFORMED),
    ("id-missing", _auth_json(lambda d: d.pop("id")), {}, MALFORMED),
    ("rawId-empty", lambda k: k.get(CHALLENGE, raw_id=b""), {}, MALFORMED),
    ("type-not-public-key", lambda k: k.get(CHALLENGE, credential_type="public-key "), {}, MALFORMED),
    ("type-null", lambda k: k.get(CHALLENGE, credential_type=None), {}, MALFORMED),
    ("userHandle-100-bytes", lambda k: k.get(CHALLENGE, user_handle=bytes(100)), {}, MALFORMED),
    ("userHandle-number", _auth_json(lambda d: d["response"].update(userHandle=7)), {}, MALFORMED),
    ("signature-missing", _auth_json(lambda d: d["response"].pop("signature")), {}, MALFORMED),
    ("authenticatorData-missing", _auth_json(lambda d: d["response"].pop("authenticatorData")), {}, MALFORMED),
    ("credential-not-object", lambda k: [k.get(CHALLENGE)], {}, MALFORMED),
]


@pytest.mark.parametrize("make, verify_kw, expected", [pytest.param(*case[1:], id=case[0])
                                                        for case in AUTHENTICATION_REFUSALS])
def test_authentication_refuses(make, verify_kw, expected):
    key = make_key(synced=False)
    new = registered(key)
    assert outcome(lambda: authenticate(make(key), new.public_key, stored=new.sign_count, **verify_kw)) == expected


@pytest.mark.parametrize("alg", [ES256, EDDSA, RS256], ids=["ES256", "EdDSA", "RS256"])
def test_authentication_refuses_another_key(alg):
    key = make_key(alg)
    impostor = SoftKey(alg, credential_id=key.credential_id)  # same ID, its own private key
    impostor.create(CHALLENGE, user_handle=HANDLE)
    new = registered(key)
    assert outcome(lambda: authenticate(impostor.get(CHALLENGE), new.public_key)) == rejected("signature")
    assert outcome(lambda: authenticate(key.get(CHALLENGE), new.public_key)) == OK


@pytest.mark.parametrize("alg", [ES256, EDDSA, RS256], ids=["ES256", "EdDSA", "RS256"])
@pytest.mark.parametrize("signature", [
    pytest.param(lambda s: s[:-1], id="truncated"),
    pytest.param(lambda s: s + s, id="doubled"),
    pytest.param(lambda s: bytes(len(s)), id="zeros"),
    pytest.param(lambda s: b"\x01", id="one-byte"),
])
def test_authentication_refuses_a_broken_signature(alg, signature):
    key = make_key(alg)
    new = registered(key)
    broken = key.get(CHALLENGE, tamper=set_member("signature", signature))
    assert outcome(lambda: authenticate(broken, new.public_key)) == rejected("signature")


def test_authentication_uv_may_be_absent_when_not_required():
    key = make_key()
    new = registered(key)
    assert outcome(lambda: authenticate(key.get(CHALLENGE, flags=UP | BE | BS), new.public_key, uv=False)) == OK
    assert outcome(lambda: authenticate(key.get(CHALLENGE, flags=UP | BE | BS), new.public_key)) == rejected("uv")


# --- the automatic upgrade: a conditional create (WebAuthn L3 §7.1 step 14) -----------------------

SILENT = AT | BE | BS  # a password manager's conditional create: no UP, and UV only if it did one


def test_a_conditional_registration_needs_neither_up_nor_uv():
    key = make_key()
    new = register(key.create(CHALLENGE, user_handle=HANDLE, flags=SILENT), conditional=True)
    assert new.user_verified is False and new.backup_eligible
    with_uv = register(make_key().create(CHALLENGE, user_handle=HANDLE, flags=SILENT | UV), conditional=True)
    assert with_uv.user_verified is True


def test_an_ordinary_registration_without_up_is_refused_whatever_uv_says():
    for flags in (SILENT, SILENT | UV):
        data = make_key().create(CHALLENGE, user_handle=HANDLE, flags=flags)
        assert outcome(lambda: register(data)) == rejected("up")
        assert outcome(lambda: register(data, uv=False)) == rejected("up")


@pytest.mark.parametrize("override, reason", [
    ({"type": "webauthn.get"}, "type"),
    ({"origin": "https://evil.example"}, "origin"),
    ({"rp_id": "evil.example"}, "rp_id"),
    ({"client_data": {"challenge": b64url(b"\x01" * 32)}}, "challenge"),
    ({"cross_origin": True}, "origin"),
    ({"top_origin": "https://evil.example"}, "origin"),
    ({"flags": AT | BS}, "flags"),
    ({"attested": False, "flags": BE | BS}, "parse"),
    ({"fmt": "none", "att_stmt": {"x5c": []}}, "attestation"),
], ids=["type", "origin", "rp_id", "challenge", "cross_origin", "top_origin", "bs_without_be", "no_at",
        "none_with_statement"])
def test_a_conditional_registration_without_up_still_fails_every_other_check(override, reason):
    """The UP leniency is taken only when fido2 refused for UP alone: what it checks before UP
    (type, origin, challenge, RP ID) and what Tobira checks around it still refuse."""
    data = make_key().create(CHALLENGE, user_handle=HANDLE, **{"flags": SILENT, **override})
    assert outcome(lambda: register(data, conditional=True)) == rejected(reason)


def test_fido2_checks_up_after_type_origin_challenge_and_rp_id():
    """verify.verify_registration reads fido2's "User Present" refusal as "everything before it
    passed" (fido2 has no way to skip UP). A response failing both UP and one of those must be
    refused for the other one, or the conditional path would let it through."""
    for override, reason in [({"type": "webauthn.get"}, "type"), ({"origin": "https://evil.example"}, "origin"),
                             ({"client_data": {"challenge": b64url(b"\x01" * 32)}}, "challenge"),
                             ({"rp_id": "evil.example"}, "rp_id")]:
        response = verify.parse_registration(make_key().create(CHALLENGE, user_handle=HANDLE, flags=SILENT,
                                                               **override))
        with pytest.raises(ValueError) as refused:
            verify._server(RP_ID, frozenset({ORIGIN})).register_complete(verify._state(CHALLENGE, False), response)
        assert verify._fido2_reason(refused.value).reason == reason, (
            f"fido2 now checks UP before {reason}: server/verify.py's conditional path must check {reason} itself")


def test_a_passkey_without_uv_initialized_is_refused_until_an_assertion_with_uv():
    key = make_key()
    new = register(key.create(CHALLENGE, user_handle=HANDLE, flags=SILENT), conditional=True)
    without_uv = key.get(CHALLENGE, flags=UP | BE | BS)
    # Even where a login would not ask for UV, a passkey never verified must verify first.
    assert outcome(lambda: authenticate(without_uv, new.public_key, uv=False, uv_initialized=False)) == rejected("uv")
    assert outcome(lambda: authenticate(without_uv, new.public_key, uv=False)) == OK
    with_uv = authenticate(key.get(CHALLENGE), new.public_key, uv_initialized=False)
    assert with_uv.user_verified is True


@pytest.mark.parametrize("ext", TRUNCATED_CBOR, ids=lambda b: b.hex())
def test_authentication_truncated_extension_cbor_is_malformed(ext):
    key = make_key()
    new = registered(key)
    assert outcome(lambda: authenticate(key.get(CHALLENGE, extensions=ext), new.public_key)) == MALFORMED


# --- the sign counter (security.md 12) -------------------------------------------------------


@pytest.mark.parametrize("stored, reported, expected", [
    (0, 0, OK),                       # synced passkeys: both zero, forever
    (0, 1, OK),
    (0, 7, OK),
    (5, 6, OK),
    (5, 1000, OK),
    (2**32 - 2, 2**32 - 1, OK),
    (5, 5, rejected("counter")),     # did not move: a clone may have signed
    (5, 4, rejected("counter")),
    (5, 0, rejected("counter")),     # a counting key that suddenly reports 0
    (2**32 - 1, 0, rejected("counter")),
])
def test_sign_counter(stored, reported, expected):
    key = make_key(synced=False)
    new = registered(key)
    result = {}
    assert outcome(lambda: result.update(r=authenticate(key.get(CHALLENGE, counter=reported), new.public_key,
                                                        stored=stored))) == expected
    if expected == OK:
        assert result["r"].sign_count == reported


def test_a_replayed_assertion_of_a_counting_key_is_refused():
    key = make_key(synced=False)
    new = registered(key)
    first = key.get(CHALLENGE)
    stored = authenticate(first, new.public_key, stored=new.sign_count).sign_count
    assert outcome(lambda: authenticate(first, new.public_key, stored=stored)) == rejected("counter")
    assert outcome(lambda: authenticate(key.get(CHALLENGE), new.public_key, stored=stored)) == OK


# --- size caps, garbage, nesting (security.md 26 at the verify layer) ------------------------


def _set_field(path: tuple[str, ...], value):
    def edit(data):
        target = data
        for name in path[:-1]:
            target = target[name]
        target[path[-1]] = value
    return edit


@pytest.mark.parametrize("path", [("id",), ("rawId",), ("response", "clientDataJSON"),
                                  ("response", "attestationObject")], ids="/".join)
@pytest.mark.parametrize("value", [MEGABYTE, "A" * 30000, "!!!!", "A", "AAAAA", "AA=A", "AAAA===", "AA AA", "",
                                   None, 12345, ["AAAA"], {"a": "b"}],
                         ids=["1MB", "30KB", "bang", "len1", "len5", "pad-inside", "pad3", "space", "empty",
                              "null", "number", "list", "object"])
def test_registration_unparseable_field_is_malformed(path, value):
    key = make_key()
    data = key.create(CHALLENGE, user_handle=HANDLE)
    _set_field(path, value)(data)
    assert outcome(lambda: verify.parse_registration(data)) == MALFORMED


@pytest.mark.parametrize("path", [("id",), ("rawId",), ("response", "clientDataJSON"),
                                  ("response", "authenticatorData"), ("response", "signature"),
                                  ("response", "userHandle")], ids="/".join)
@pytest.mark.parametrize("value", [MEGABYTE, "A" * 12000, "!!!!", "A", "AA=A", 12345, ["AAAA"]],
                         ids=["1MB", "12KB", "bang", "len1", "pad-inside", "number", "list"])
def test_authentication_unparseable_field_is_malformed(path, value):
    key = make_key()
    key.create(CHALLENGE, user_handle=HANDLE)
    data = key.get(CHALLENGE)
    _set_field(path, value)(data)
    assert outcome(lambda: verify.parse_authentication(data)) == MALFORMED


def test_a_real_response_is_well_under_the_caps():
    key = make_key(RS256, credential_id=bytes(1023))
    reg = key.create(CHALLENGE, user_handle=HANDLE)
    assert verify.parse_registration(reg).raw_id == bytes(1023)
    assert verify.parse_authentication(key.get(CHALLENGE)).raw_id == bytes(1023)


@pytest.mark.parametrize("path", [("id",), ("rawId",), ("response", "clientDataJSON"),
                                  ("response", "authenticatorData"), ("response", "signature")], ids="/".join)
def test_authentication_required_field_null_is_malformed(path):
    key = make_key()
    data = key.get(CHALLENGE)
    _set_field(path, None)(data)
    assert outcome(lambda: verify.parse_authentication(data)) == MALFORMED


def test_a_null_user_handle_is_no_user_handle():
    key = make_key()
    new = registered(key)
    data = key.get(CHALLENGE)
    data["response"]["userHandle"] = None
    assert authenticate(data, new.public_key).user_handle is None


@pytest.mark.parametrize("field, size", [("clientDataJSON", 4096), ("authenticatorData", 1024), ("signature", 8192),
                                         ("userHandle", 64), ("attestationObject", 16384),
                                         # IDs decode up to 2048 bytes, so one of 1024+ bytes is refused by name
                                         # (Rejected "credential_id", the contract's wire check), not as garbage.
                                         ("id", 2048)])
def test_a_field_at_its_cap_decodes(field, size):
    assert verify.decode(b64url(bytes(size)), field) == bytes(size)
    assert outcome(lambda: verify.decode(b64url(bytes(size + 3)), field)) == MALFORMED


@pytest.mark.parametrize("field, size", [("userHandle", 65), ("userHandle", 66), ("authenticatorData", 1025),
                                         ("authenticatorData", 1026), ("clientDataJSON", 4097), ("signature", 8193),
                                         ("attestationObject", 16385)])
def test_a_field_one_or_two_bytes_over_its_cap_is_malformed(field, size):
    assert outcome(lambda: verify.decode(b64url(bytes(size)), field)) == MALFORMED


@pytest.mark.parametrize("seed", range(6))
def test_registration_random_garbage_is_malformed(seed):
    rng = random.Random(seed)
    key = make_key()
    client_data = rng.randbytes(rng.randrange(1, 400))
    data = key.create(CHALLENGE, user_handle=HANDLE, tamper=set_member("clientDataJSON", client_data))
    assert outcome(lambda: verify.parse_registration(data)) == MALFORMED
    # a map head promising more pairs than follow, then random bytes
    attestation = b"\xa5" + cbor.encode("fmt") + rng.randbytes(rng.randrange(1, 400))
    data = key.create(CHALLENGE, user_handle=HANDLE, tamper=set_member("attestationObject", attestation))
    assert outcome(lambda: verify.parse_registration(data)) == MALFORMED


@pytest.mark.parametrize("seed", range(6))
def test_authentication_random_garbage_is_malformed(seed):
    rng = random.Random(seed)
    key = make_key()
    key.create(CHALLENGE, user_handle=HANDLE)
    for field in ("clientDataJSON", "authenticatorData"):
        length = rng.choice([rng.randrange(0, 37), rng.randrange(38, 700)])
        garbage = rng.randbytes(length)
        if field == "authenticatorData" and length > 32:  # no AT/ED: the length alone must fail it
            garbage = garbage[:32] + bytes([garbage[32] & ~(AT | ED) & 0xFF]) + garbage[33:]
        data = key.get(CHALLENGE, tamper=set_member(field, garbage))
        assert outcome(lambda: verify.parse_authentication(data)) == MALFORMED, field


def test_random_cbor_never_escapes_as_another_exception():
    """Any short byte string as attestationObject ends in Malformed or Rejected, nothing else."""
    key = make_key()
    rng = random.Random(2024)
    escaped = set()
    for _ in range(2000):
        garbage = rng.randbytes(rng.randrange(1, 80))
        data = key.create(CHALLENGE, user_handle=HANDLE, tamper=set_member("attestationObject", garbage))
        try:
            outcome(lambda: register(data))
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            escaped.add(type(exc).__name__)
    assert escaped == set()


def test_registration_byte_string_longer_than_the_data_is_malformed():
    key = make_key()
    auth_data = key.authenticator_data(flags=key.default_flags(attested=True), counter=0,
                                       attested_data=key.attested_credential_data())
    attestation = (b"\xa3" + cbor.encode("fmt") + cbor.encode("none") + cbor.encode("attStmt") + b"\xa0"
                   + cbor.encode("authData") + b"\x59" + (len(auth_data) + 1).to_bytes(2, "big") + auth_data)
    data = key.create(CHALLENGE, user_handle=HANDLE, tamper=set_member("attestationObject", attestation))
    assert outcome(lambda: register(data)) == MALFORMED


def test_the_fido2_type_hint_cache_changes_nothing():
    """server/speedups.py caches fido2's get_type_hints; parsing must give the same objects."""
    import typing

    import fido2.utils

    from server import speedups

    key = make_key()
    registration, assertion = key.create(CHALLENGE, user_handle=HANDLE), key.get(CHALLENGE)
    original = fido2.utils.get_type_hints
    try:
        fido2.utils.get_type_hints = typing.get_type_hints
        plain = verify.parse_registration(registration), verify.parse_authentication(assertion)
        speedups.install()
        speedups.install()  # idempotent
        assert fido2.utils.get_type_hints is speedups.cached_type_hints
        assert speedups.cached_type_hints.__wrapped__ is typing.get_type_hints
        cached = verify.parse_registration(registration), verify.parse_authentication(assertion)
    finally:
        fido2.utils.get_type_hints = original
    for a, b in zip(cached, plain):
        assert dict(a) == dict(b) and a.raw_id == b.raw_id
        assert bytes(a.response.client_data) == bytes(b.response.client_data)


# --- the fido2 Tobira relies on ----------------------------------------------------------------
#
# pyproject.toml admits only the fido2 versions these tests ran against. If an upgrade changes what
# verify.py relies on (the version, Fido2Server's signatures, the state it keeps, the messages mapped
# to reasons, the name speedups.py patches), one of these fails and says what to look at.

FIDO2_TESTED = ">=2.2.1,<2.3"


def test_fido2_is_a_version_tobira_was_tested_with():
    import importlib.metadata
    import tomllib

    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    pins = [Requirement(r) for r in pyproject["project"]["dependencies"] if Requirement(r).name == "fido2"]
    assert [p.specifier for p in pins] == [SpecifierSet(FIDO2_TESTED)], (
        f"pyproject.toml pins fido2 {[str(p.specifier) for p in pins]}, these tests were run against "
        f"fido2{FIDO2_TESTED}: run tests/test_verify.py and tests/test_vectors.py on the new version, then "
        f"change FIDO2_TESTED with the pin")
    installed = Version(importlib.metadata.version("fido2"))
    assert pins[0].specifier.contains(installed), (
        f"fido2 {installed} is installed, outside the tested fido2{FIDO2_TESTED} (pyproject.toml): "
        f"server/verify.py may rely on what it changed; install a tested version")


def _parameters(function) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_fido2_server_takes_what_verify_passes():
    from fido2.server import Fido2Server

    found = {"Fido2Server": _parameters(Fido2Server)[:3], "register_complete": _parameters(
        Fido2Server.register_complete), "authenticate_complete": _parameters(Fido2Server.authenticate_complete)}
    assert found == {"Fido2Server": ["rp", "attestation", "verify_origin"],
                     "register_complete": ["self", "state", "response"],
                     "authenticate_complete": ["self", "state", "credentials", "response"]}, (
        f"fido2's Fido2Server changed its signatures to {found}: server/verify.py calls them by position")


@pytest.mark.parametrize("uv", [True, False], ids=["uv-required", "uv-discouraged"])
@pytest.mark.parametrize("begin", ["register_begin", "authenticate_begin"])
def test_the_state_verify_passes_is_the_state_fido2_returns(begin, uv):
    """Tobira stores only the challenge (a Ceremony row) and rebuilds fido2's ceremony state from it."""
    from fido2.webauthn import PublicKeyCredentialUserEntity, UserVerificationRequirement

    server = verify._server(RP_ID, frozenset({ORIGIN}))
    requirement = UserVerificationRequirement.REQUIRED if uv else UserVerificationRequirement.DISCOURAGED
    user = (PublicKeyCredentialUserEntity(name="u", id=HANDLE),) if begin == "register_begin" else ()
    _, state = getattr(server, begin)(*user, user_verification=requirement, challenge=CHALLENGE)
    assert state == verify._state(CHALLENGE, uv), (
        f"fido2's {begin} now keeps the state {state!r}: server/verify.py's _state must build the same")


def test_fido2_still_raises_each_message_verify_maps_to_a_reason():
    """The refusal tables above prove each mapping end to end; this says which message went."""
    import fido2.server

    source = inspect.getsource(fido2.server)
    gone = [needle for needle, _ in verify.FIDO2_REASONS
            if not re.search(r'raise ValueError\(\s*"' + re.escape(needle), source)]
    assert not gone, (f"fido2.server no longer raises ValueError({gone!r}...): verify.FIDO2_REASONS maps "
                      f"its messages to Tobira's reasons, update it")


def test_fido2_utils_still_looks_up_get_type_hints():
    """server/speedups.py replaces that module-level name: a fido2 that stops using it needs no patch."""
    import fido2.utils

    assert hasattr(fido2.utils, "get_type_hints") and "get_type_hints(" in inspect.getsource(fido2.utils), (
        "fido2.utils no longer calls get_type_hints: remove server/speedups.py and measure again")


# --- the login path and its key cache (server/keys.py) -----------------------------------------
#
# verify_authentication hands Fido2Server.authenticate_complete a credential loaded once per exact
# (credential ID, stored key) bytes. Each check is proven to refuse with a cached key, for every
# algorithm, and the cache is proven never to let one key's assertion pass for another's.

ALGS = pytest.mark.parametrize("alg", [ES256, EDDSA, RS256], ids=["ES256", "EdDSA", "RS256"])


def detailed(run) -> tuple:
    """Like outcome(), with the detail."""
    try:
        run()
    except Malformed as exc:
        return ("Malformed", exc.reason, str(exc))
    except Rejected as exc:
        return ("Rejected", exc.reason, exc.detail)
    return ("ok", None, None)


def verify_parsed(response, public_key: bytes, *, stored=0, be=None, challenge=CHALLENGE, origins=(ORIGIN,),
                  rp_id=RP_ID, algorithms=verify.ALGORITHMS, uv=True) -> verify.VerifiedAssertion:
    return verify.verify_authentication(response=response, expected_challenge=challenge,
                                        expected_origins=list(origins), rp_id=rp_id, public_key=public_key,
                                        stored_sign_count=stored, stored_backup_eligible=_stored_be(response, be),
                                        algorithms=algorithms, require_user_verification=uv)


LOGIN_REFUSALS = [
    ("type-webauthn.create", lambda k: k.get(CHALLENGE, type="webauthn.create"), {}, rejected("type")),
    ("type-empty", lambda k: k.get(CHALLENGE, type=""), {}, rejected("type")),
    ("origin-sub-domain", lambda k: k.get(CHALLENGE, origin="http://sub.localhost:8000"), {}, rejected("origin")),
    ("origin-https", lambda k: k.get(CHALLENGE, origin="https://localhost:8000"), {}, rejected("origin")),
    ("origin-of-another-configuration", lambda k: k.get(CHALLENGE), {"origins": ("https://tobira.example",)},
     rejected("origin")),
    ("challenge-wrong", lambda k: k.get(OTHER_CHALLENGE), {}, rejected("challenge")),
    ("rpIdHash-other-site", lambda k: k.get(CHALLENGE, rp_id="evil.com"), {}, rejected("rp_id")),
    ("rpIdHash-expected-other-rp", lambda k: k.get(CHALLENGE), {"rp_id": "example.com"}, rejected("rp_id")),
    ("rpIdHash-expected-empty", lambda k: k.get(CHALLENGE), {"rp_id": ""}, rejected("rp_id")),
    ("rpIdHash-one-bit", lambda k: k.get(CHALLENGE, tamper=_flip(31, 0x80)), {}, rejected("rp_id")),
    ("UP=0", lambda k: k.get(CHALLENGE, flags=UV), {}, rejected("up")),
    ("UP=0-UV-not-required", lambda k: k.get(CHALLENGE, flags=0), {"uv": False}, rejected("up")),
    ("UV=0", lambda k: k.get(CHALLENGE, flags=UP), {}, rejected("uv")),
    ("signature-bit-flipped", lambda k: k.get(CHALLENGE, tamper=set_member(
        "signature", lambda s: s[:-1] + bytes([s[-1] ^ 1]))), {}, rejected("signature")),
    ("signature-truncated", lambda k: k.get(CHALLENGE, tamper=set_member("signature", lambda s: s[:-1])), {},
     rejected("signature")),
    ("signature-over-raw-clientDataJSON", lambda k: k.get(CHALLENGE, signature=k.sign(
        k.authenticator_data(flags=k.default_flags(), counter=k.sign_count + 1)
        + k.client_data("webauthn.get", CHALLENGE))), {}, rejected("signature")),
    ("signature-of-another-challenge", lambda k: k.get(CHALLENGE, tamper=_resign_client_data(
        challenge=b64url(CHALLENGE)[:-1] + "A")), {}, rejected("challenge")),
    ("mutated-counter", lambda k: k.get(CHALLENGE, tamper=_flip(36, 0x01)), {}, rejected("signature")),
    ("mutated-flags-uv-added", lambda k: k.get(CHALLENGE, flags=UP, tamper=_flip(32, UV)), {},
     rejected("signature")),
    ("mutated-clientDataJSON", lambda k: k.get(CHALLENGE, tamper=_resign_client_data(extra="x")), {},
     rejected("signature")),
    ("BE=0-BS=1", lambda k: k.get(CHALLENGE, flags=UP | UV | BS), {}, rejected("flags")),
    ("counter-not-above-stored", lambda k: k.get(CHALLENGE, counter=3), {"stored": 3}, rejected("counter")),
    ("alg-not-offered", lambda k: k.get(CHALLENGE), {"algorithms": ()}, rejected("alg_not_requested")),
]


@ALGS
@pytest.mark.parametrize("make, verify_kw, expected", [pytest.param(*case[1:], id=case[0])
                                                        for case in LOGIN_REFUSALS])
def test_the_login_path_refuses_each_check_with_a_cached_key(alg, make, verify_kw, expected):
    key = make_key(alg, synced=False)
    new = registered(key)
    assert outcome(lambda: authenticate(key.get(CHALLENGE), new.public_key)) == OK  # the key is now cached
    hits = keys.cache_info().hits
    assert outcome(lambda: authenticate(make(key), new.public_key, **verify_kw)) == expected
    assert keys.cache_info().hits > hits, "the refusal came from the cached key"
    assert outcome(lambda: authenticate(key.get(CHALLENGE), new.public_key, stored=key.sign_count - 1)) == OK


@ALGS
def test_a_signature_by_another_key_is_refused_though_both_keys_are_cached(alg):
    mine, other = make_key(alg), SoftKey(alg)
    mine_stored, other_stored = registered(mine).public_key, registered(other).public_key
    assert mine_stored != other_stored
    for key, stored in ((mine, mine_stored), (other, other_stored)):
        assert outcome(lambda: authenticate(key.get(CHALLENGE), stored)) == OK
    # Same credential ID, other private key: only the stored bytes decide which key verifies.
    impostor = SoftKey(alg, credential_id=mine.credential_id, private_key=other.private_key)
    impostor.create(CHALLENGE, user_handle=HANDLE)
    assert outcome(lambda: authenticate(impostor.get(CHALLENGE), mine_stored)) == rejected("signature")
    assert outcome(lambda: authenticate(mine.get(CHALLENGE), other_stored)) == rejected("signature")
    assert outcome(lambda: authenticate(other.get(CHALLENGE), mine_stored)) == rejected("signature")
    assert outcome(lambda: authenticate(mine.get(CHALLENGE), mine_stored)) == OK


def test_many_cached_keys_each_verify_only_their_own_assertion():
    keys_ = [SoftKey(ES256) for _ in range(6)]
    stored = [registered(k).public_key for k in keys_]
    assertions = [k.get(CHALLENGE) for k in keys_]
    for i, data in enumerate(assertions):
        for j, public_key in enumerate(stored):
            assert outcome(lambda: authenticate(data, public_key)) == (OK if i == j else rejected("signature"))


def test_a_stored_key_one_bit_off_is_its_own_entry_and_refused_cleanly():
    """Every one-bit neighbour of a cached key's bytes is loaded on its own and ends in Rejected or
    ok, nothing else (bytes that are no COSE key included). The few that still verify are the same
    key to fido2 (a flipped kty label or value, or a byte-string length fido2's decoder shortens,
    leave the same algorithm, curve and point); registration's checks keep such bytes out of the
    table."""
    key = make_key()
    stored = registered(key).public_key
    response = verify.parse_authentication(key.get(CHALLENGE))
    assert outcome(lambda: verify_parsed(response, stored)) == OK
    cached = keys.stored_key(response.raw_id, stored)
    material = {label: key.cose_key()[label] for label in (3, -1, -2, -3)}
    results = set()
    for i in range(len(stored)):
        neighbour = stored[:i] + bytes([stored[i] ^ 1]) + stored[i + 1:]
        result = outcome(lambda: verify_parsed(response, neighbour))  # any other exception fails the test
        results.add(result[0])
        if result == OK:
            assert keys.stored_key(response.raw_id, neighbour) is not cached
            assert {label: cbor.decode(neighbour).get(label) for label in material} == material
    assert "Rejected" in results


def test_equal_bytes_share_the_entry_other_buffers_are_loaded_each_time():
    key = make_key()
    stored = registered(key).public_key
    raw_id = key.credential_id
    assert outcome(lambda: authenticate(key.get(CHALLENGE), stored)) == OK
    assert keys.stored_key(raw_id, bytes(bytearray(stored))) is keys.stored_key(raw_id, stored)  # from the database
    size = keys.cache_info().currsize
    for buffer in (bytearray(stored), memoryview(stored)):
        assert outcome(lambda: authenticate(key.get(CHALLENGE), buffer)) == OK
        assert outcome(lambda: authenticate(key.get(OTHER_CHALLENGE), buffer)) == rejected("challenge")
        assert outcome(lambda: authenticate(key.get(CHALLENGE, flags=UP), buffer)) == rejected("uv")
    assert keys.cache_info().currsize == size, "only exact bytes are cached"


def test_the_key_cache_is_bounded_and_an_evicted_key_still_verifies():
    key = make_key()
    stored = registered(key).public_key
    assert outcome(lambda: authenticate(key.get(CHALLENGE), stored)) == OK
    for i in range(keys.KEY_CACHE_SIZE + 10):
        keys.stored_key(b"other credential %d" % i, stored)
    assert keys.cache_info().currsize == keys.KEY_CACHE_SIZE
    misses = keys.cache_info().misses
    assert outcome(lambda: authenticate(key.get(CHALLENGE), stored)) == OK
    assert outcome(lambda: authenticate(key.get(CHALLENGE, flags=UP), stored)) == rejected("uv")
    assert keys.cache_info().misses == misses + 1


@pytest.mark.parametrize("make, expected", [
    # fido2's ES256 looks at crv, x and y only: extra labels in a stored key never mattered at login
    pytest.param(lambda k: {**k.cose_key(), -4: True}, ("ok", None, None), id="bool-value"),
    pytest.param(lambda k: {**k.cose_key(), -4: [1]}, ("ok", None, None), id="array-value"),
    pytest.param(lambda k: {**k.cose_key(), "x": b"1"}, ("ok", None, None), id="text-label"),
    pytest.param(lambda k: {**k.cose_key(), -1: 2}, ("Rejected", "parse", "Unsupported elliptic curve"),
                 id="wrong-curve"),
    pytest.param(_off_curve, ("Rejected", "parse", "Invalid EC key. Point is not on the curve specified."),
                 id="point-off-curve"),
    pytest.param(lambda k: {**k.cose_key(), -3: "y" * 32},
                 ("Rejected", "signature", "signature could not be verified (TypeError)"), id="y-text"),
    pytest.param(lambda k: _with(k, {-3: DROP}),
                 ("Rejected", "signature", "signature could not be verified (KeyError)"), id="y-missing"),
    pytest.param(lambda k: {**k.cose_key(), 3: -35}, ("Rejected", "parse", "Unsupported elliptic curve"), id="ES384"),
    pytest.param(lambda k: -7, ("Rejected", "parse", "the stored key is not a COSE key"), id="not-a-map"),
    pytest.param(lambda k: {1: 2, -1: 1}, ("Rejected", "parse", "the stored key is not a COSE key"), id="alg-missing"),
])
def test_an_odd_stored_key_is_judged_by_fido2(make, expected):
    """Stored keys registration would refuse (only test vectors or rows from before its checks can
    have them) fare as fido2 judges them, cached or not, and never raise anything but Rejected."""
    key = make_key()
    stored = cbor.encode(make(key))
    data = key.get(CHALLENGE)
    keys.cache_clear()
    for _ in range(2):
        assert detailed(lambda: authenticate(data, stored, algorithms=(ES256, -35))) == expected


@ALGS
def test_randomly_mutated_assertions_are_refused(alg):
    rng = random.Random(alg)
    key = make_key(alg)
    stored = registered(key).public_key
    responses = []
    for _ in range(150):
        field = rng.choice(["clientDataJSON", "authenticatorData", "signature"])

        def mutate(parts, field=field):
            raw = bytearray(parts[field])
            raw[rng.randrange(len(raw))] ^= rng.randrange(1, 256)
            parts[field] = bytes(raw)
        try:
            responses.append(verify.parse_authentication(key.get(CHALLENGE, tamper=mutate)))
        except Malformed:
            pass
    assert len(responses) > 50
    assert {detailed(lambda: verify_parsed(r, stored))[0] for r in responses} == {"Rejected"}


# --- key policy and backup eligibility (security.md cases 6, 34, 35) --------------------------


def _odd(bits: int) -> int:
    """An odd number of exactly `bits` bits: a modulus as an attacker may send one (cryptography
    builds a public key from it, since e < n and both are odd)."""
    return random.Random(bits).getrandbits(bits) | 1 << (bits - 1) | 1


def _rsa_numbers(n: int, e: int = 65537) -> dict:
    return {1: 3, 3: RS256, -1: n.to_bytes((n.bit_length() + 7) // 8, "big"),
            -2: e.to_bytes((e.bit_length() + 7) // 8, "big")}


# The CPU bomb of case 34: an honest 3072-bit modulus with a 3071-bit exponent (~60x a normal verify).
RSA_HUGE_EXPONENT = _odd(3071)

RSA_OUT_OF_POLICY = [
    pytest.param(lambda: _rsa_key(3072, e=RSA_HUGE_EXPONENT), id="n-3072-e-3071-bits"),
    pytest.param(lambda: _rsa_key(2048, e=3), id="e=3"),
    pytest.param(lambda: _rsa_key(2048, e=65539), id="e=65539"),
    pytest.param(lambda: _rsa_key(2048, e=2**255 + 1), id="e-256-bits"),
    *[pytest.param(lambda bits=bits: _rsa_numbers(_odd(bits)), id=f"n-{bits}-bits")
      for bits in (2047, 2049, 2560, 3071, 3073, 4095, 4097, 8192)],
]


@pytest.mark.parametrize("make", RSA_OUT_OF_POLICY)
def test_case34_registration_refuses_an_rsa_key_outside_e65537_and_2048_3072_4096_bits(make):
    key = make_key(RS256)
    assert outcome(lambda: register(key.create(CHALLENGE, cose_key=make()))) == rejected("parse")


_RSA_PRIVATE: dict[int, rsa.RSAPrivateKey] = {}


@pytest.mark.parametrize("bits", [2048, 3072, 4096])
def test_case34_rsa_keys_of_2048_3072_and_4096_bits_register_and_log_in(bits):
    if bits not in _RSA_PRIVATE:
        _RSA_PRIVATE[bits] = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    key = SoftKey(RS256, private_key=_RSA_PRIVATE[bits])
    new = registered(key)
    assert keys.stored_key(new.credential_id, new.public_key).refusal is None
    assert outcome(lambda: authenticate(key.get(CHALLENGE), new.public_key)) == OK


@pytest.mark.parametrize("make", RSA_OUT_OF_POLICY[:4] + [RSA_OUT_OF_POLICY[5], RSA_OUT_OF_POLICY[-1]])
def test_case34_a_stored_rsa_key_outside_the_policy_is_refused_before_any_signature_math(make, monkeypatch):
    """A row stored before registration checked RSA keys: refused at every login without building
    an RSA key (so without verifying anything), loaded or from the cache."""
    key = make_key(RS256)
    stored = cbor.encode(make())
    built = []
    real = rsa.RSAPublicNumbers  # the class verify.py and fido2's cose.py both build RSA keys with
    monkeypatch.setattr(rsa, "RSAPublicNumbers", lambda e, n: built.append(e) or real(e, n))
    keys.cache_clear()
    for _ in range(2):  # loaded, then from the cache
        assert outcome(lambda: authenticate(key.get(CHALLENGE), stored)) == rejected("parse")
    assert built == [], "an RSA key was built for a stored key outside the policy"
    # The spy sees the math when there is some: the soft key's own (2048-bit, e=65537) key verifies.
    assert outcome(lambda: authenticate(key.get(CHALLENGE), key.cose_public_key)) == OK
    assert built == [65537]


def test_case34_the_bomb_is_what_the_policy_refuses():
    """The huge exponent is a valid public key to cryptography: only the policy stops it."""
    numbers = _rsa_key(3072, e=RSA_HUGE_EXPONENT)
    rsa.RSAPublicNumbers(int.from_bytes(numbers[-2], "big"), int.from_bytes(numbers[-1], "big")).public_key()
    assert keys.rsa_refusal(numbers) == "RSA exponent other than 65537"


@pytest.mark.parametrize("alg, changes", [
    # RFC 9052 §7.1's optional common parameters: WebAuthn §6.5.1 forbids them in a credential key
    pytest.param(ES256, {2: b"kid"}, id="ES256-kid"),
    pytest.param(ES256, {4: [2]}, id="ES256-key_ops"),
    pytest.param(ES256, {5: bytes(16)}, id="ES256-base-iv"),
    # private or undefined parameters
    pytest.param(ES256, {-4: bytes(32)}, id="ES256-d"),
    pytest.param(ES256, {-4: True}, id="ES256-minus4-true"),
    pytest.param(ES256, {99: 1}, id="ES256-label-99"),
    pytest.param(ES256, {-99: b"x"}, id="ES256-label-minus99"),
    pytest.param(ES256, {"x": b"1"}, id="ES256-extra-text-label"),
    pytest.param(EDDSA, {-3: bytes(32)}, id="EdDSA-y"),
    pytest.param(EDDSA, {-4: bytes(32)}, id="EdDSA-d"),
    pytest.param(EDDSA, {2: b"kid"}, id="EdDSA-kid"),
    pytest.param(EDDSA, {"crv": 6}, id="EdDSA-extra-text-label"),
    pytest.param(RS256, {-3: b"\x01" * 256}, id="RSA-d"),
    pytest.param(RS256, {-4: b"\x01" * 128}, id="RSA-p"),
    pytest.param(RS256, {2: b"kid"}, id="RSA-kid"),
    pytest.param(RS256, {-5: b"\x01"}, id="RSA-q"),
])
def test_case6_registration_refuses_a_label_its_key_type_does_not_define(alg, changes):
    key = make_key(alg)
    assert outcome(lambda: register(key.create(CHALLENGE, cose_key=_with(key, changes)))) == rejected("parse")
    assert outcome(lambda: register(key.create(CHALLENGE))) == OK


@pytest.mark.parametrize("alg, changes", [
    pytest.param(ES256, lambda k: {-2: list(k[-2])}, id="ES256-x-array-of-ints"),
    pytest.param(ES256, lambda k: {-1: True}, id="ES256-crv-true"),
    pytest.param(EDDSA, lambda k: {-2: list(k[-2])}, id="EdDSA-x-array-of-ints"),
    pytest.param(RS256, lambda k: {-2: [1, 0, 1]}, id="RSA-e-array-of-ints"),
    pytest.param(RS256, lambda k: {-1: list(k[-1])}, id="RSA-n-array-of-ints"),
])
def test_case6_registration_refuses_a_parameter_of_the_wrong_cbor_type(alg, changes):
    """Values Python compares equal (True == 1) or reads as bytes (a list of ints) are not the COSE
    types: such a key would be stored as sent."""
    key = make_key(alg)
    cose_key = key.cose_key()
    assert outcome(lambda: register(key.create(CHALLENGE, cose_key=_with(key, changes(cose_key))))) == rejected("parse")


@pytest.mark.parametrize("synced, flags", [
    pytest.param(False, UP | UV | BE, id="device-bound-now-BE"),
    pytest.param(False, UP | UV | BE | BS, id="device-bound-now-BE-BS"),
    pytest.param(True, UP | UV, id="synced-now-not-BE"),
])
@ALGS
def test_case35_an_assertion_whose_backup_eligibility_differs_from_the_stored_one_is_refused(alg, synced, flags):
    key = make_key(alg, synced=synced)
    new = registered(key)
    assert new.backup_eligible is synced
    # Validly signed: only the stored value can tell that BE changed.
    assert outcome(lambda: authenticate(key.get(CHALLENGE, flags=flags), new.public_key,
                                        be=new.backup_eligible)) == rejected("flags")
    assert outcome(lambda: authenticate(key.get(CHALLENGE), new.public_key, be=new.backup_eligible)) == OK
    # The stored value decides, whichever way the assertion goes.
    assert outcome(lambda: authenticate(key.get(CHALLENGE), new.public_key, be=not synced)) == rejected("flags")
    assert outcome(lambda: authenticate(key.get(CHALLENGE, flags=flags), new.public_key, be=not synced)) == OK


def test_case35_the_stored_backup_eligibility_is_a_required_keyword():
    parameter = inspect.signature(verify.verify_authentication).parameters["stored_backup_eligible"]
    assert parameter.kind is inspect.Parameter.KEYWORD_ONLY and parameter.default is inspect.Parameter.empty
    key = make_key()
    new = registered(key)
    response = verify.parse_authentication(key.get(CHALLENGE))
    with pytest.raises(TypeError):
        verify.verify_authentication(response=response, expected_challenge=CHALLENGE, expected_origins=[ORIGIN],
                                     rp_id=RP_ID, public_key=new.public_key, stored_sign_count=0)
