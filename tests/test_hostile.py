"""Hostile input, by property: random and mutated JSON, base64url, CBOR, clientDataJSON and
authenticator data, at the ceremony code and at every JSON endpoint. Always a refusal of the
expected kind (Malformed/Rejected; a 4xx with the contract's body), never a crash, nothing stored.

A refusal is demanded of what is really hostile. Where an input can still be legitimate, that is
decided by what it is, not let through wholesale: a mutation that changed nothing any check reads
(_may_be_accepted), a body that is a well-formed request of its endpoint (_legitimate)."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from fido2 import cbor
from fido2.utils import websafe_decode
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import func, select
from starlette.testclient import TestClient

from server import verify
from server.models import Credential, Session
from server.policy import IMPORTANT_OPERATIONS
from softkey import AT, BE, BS, ED, EDDSA, RS256, UP, UV, SoftKey, b64url
from conftest import ORIGIN, login

VECTORS = Path(__file__).resolve().parents[2] / "shared" / "vectors"
CHALLENGE = b"\x01" * 32

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70) | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=25)


def _corpus() -> tuple[list[dict], dict[str, tuple[bytes, bool]]]:
    """Real responses: the shared vectors and the soft keys'; and, by rawId, each soft key's COSE
    key and whether it is backup eligible (what the server would have stored).

    The soft keys' responses answer CHALLENGE on http://localhost:8000 and are accepted as they
    are (test_the_corpus_holds_every_vector_and_accepted_soft_key_responses): a mutation of one of
    them must be refused because of what it changed. The vectors answer challenges and origins
    of their own, so they are refused unmutated and their mutations only show a *clean* refusal.
    The registration is ES256: a changed coordinate is off the curve, so every change to its
    key is detectable (an Ed25519 or RSA key with a flipped byte can still be a valid key)."""
    out, keys = [], {}
    for name in ("registration.json", "authentication.json"):
        path = VECTORS / name
        if path.exists():  # counted below: a missing file fails the corpus test loudly
            out += [v["response"] for v in json.loads(path.read_text())]
    registering = SoftKey()
    out.append(registering.create(CHALLENGE, user_handle=b"u" * 32))
    for key in (registering, SoftKey(EDDSA, synced=False), SoftKey(RS256)):
        key.user_handle = b"u" * 32
        assertion = key.get(CHALLENGE)
        keys[assertion["rawId"]] = (key.cose_public_key, key.synced)
        out.append(assertion)
    return out, keys


CORPUS, KEYS = _corpus()
SOFT_KEY_RESPONSES = 4  # the last four of CORPUS
STRANGER_KEY = SoftKey().cose_public_key  # verifies the vectors' assertions (refused anyway)
FIELDS = ("clientDataJSON", "attestationObject", "authenticatorData", "signature", "userHandle")


def _b64decode(text: str) -> bytes:
    text = text.rstrip("=").replace("+", "-").replace("/", "_")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@st.composite
def mutations(draw):
    """(original, mutated, how, field): a real response with one field's bytes flipped, cut,
    extended or replaced, or its JSON shape broken."""
    # Half the time one of the soft keys' accepted responses: the ones whose mutations must be refused.
    original = draw(st.sampled_from(CORPUS) | st.sampled_from(CORPUS[-SOFT_KEY_RESPONSES:]))
    response = json.loads(json.dumps(original))
    inner = response["response"]
    present = [f for f in FIELDS if isinstance(inner.get(f), str)]
    how = draw(st.sampled_from(["flip", "truncate", "extend", "replace", "json", "drop", "retype"]))
    field = draw(st.sampled_from(present))
    raw = bytearray(_b64decode(inner[field]))
    if how == "flip" and raw:
        i = draw(st.integers(0, len(raw) - 1))
        raw[i] ^= draw(st.integers(1, 255))
    elif how == "truncate":
        raw = raw[:draw(st.integers(0, max(0, len(raw) - 1)))]
    elif how == "extend":
        raw += draw(st.binary(min_size=1, max_size=64))
    elif how == "replace":
        raw = bytearray(draw(st.binary(max_size=200)))
    elif how == "json":
        raw = bytearray(json.dumps(draw(json_values)).encode())
    if how == "drop":
        inner.pop(field)
    elif how == "retype":
        inner[field] = draw(json_values)
    else:
        inner[field] = b64url(bytes(raw))
    return original, response, how, field


def mutated_responses():
    return mutations().map(lambda m: m[1])


def _outcome(response: dict) -> str:
    """"accepted" or "refused" (Malformed/Rejected); any other exception fails the test."""
    kind = "attestationObject" in response.get("response", {})
    try:
        if kind:
            parsed = verify.parse_registration(response)
            verify.verify_registration(response=parsed, expected_challenge=CHALLENGE,
                                       expected_origins=["http://localhost:8000"], rp_id="localhost")
        else:
            parsed = verify.parse_authentication(response)
            public_key, backup_eligible = KEYS.get(response.get("rawId"), (STRANGER_KEY, True))
            verify.verify_authentication(response=parsed, expected_challenge=CHALLENGE,
                                         expected_origins=["http://localhost:8000"], rp_id="localhost",
                                         public_key=public_key, stored_sign_count=0,
                                         stored_backup_eligible=backup_eligible)
    except (verify.Malformed, verify.Rejected):
        return "refused"
    return "accepted"


def _registration_view(response: dict):
    """What verify_registration checks in a registration response, decoded here on its own (json
    and fido2's CBOR, not verify.py); None when it does not decode. Left out, because no check
    reads them (attestation "none" signs nothing): the AAGUID, the counter, the reserved flag bits,
    BS beside BE, JSON whitespace and unknown members, toJSON()'s convenience `authenticatorData`."""
    try:
        inner = response["response"]
        client_data = json.loads(_b64decode(inner["clientDataJSON"]).decode("utf-8"))
        attestation = cbor.decode(_b64decode(inner["attestationObject"]))
        auth_data = attestation["authData"]
        flags = auth_data[32]
        length = int.from_bytes(auth_data[53:55], "big")
        cose_key, rest = cbor.decode_from(auth_data[55 + length:])
        return (client_data["type"], websafe_decode(client_data["challenge"]), client_data["origin"],
                client_data.get("crossOrigin", False), "topOrigin" in client_data, client_data.get("tokenBinding"),
                sorted(attestation), attestation["fmt"], attestation["attStmt"], auth_data[:32],
                flags & (UP | UV | AT | ED), bool(flags & BS and not flags & BE), auth_data[55:55 + length],
                cose_key, rest, response["rawId"], response["id"], response["type"])
    except Exception:  # noqa: BLE001 - whatever does not decode here is no valid registration
        return None


def _may_be_accepted(original: dict, response: dict, field: str) -> bool:
    """Decided by what the mutation did: True only when it changed nothing that a check reads."""
    if "attestationObject" in original["response"]:
        view = _registration_view(response)
        return view is not None and view == _registration_view(original)
    # An assertion signs authenticatorData and the hash of clientDataJSON: any change to those or to
    # the signature must be refused. userHandle is signed by nothing and is not verify_authentication's
    # to judge (the ceremony compares it with the owner's: test_api_passkeys.py
    # test_user_handle_must_be_the_owners); here it only has to parse: absent, null or a string.
    return field == "userHandle" and isinstance(response["response"].get("userHandle"), (str, type(None)))


def test_the_corpus_holds_every_vector_and_accepted_soft_key_responses():
    assert len(CORPUS) == 86 + SOFT_KEY_RESPONSES, "../shared/vectors missing or incomplete"
    # Else the property below would demand nothing: every mutation of a refused response is refused.
    assert [_outcome(r) for r in CORPUS[-SOFT_KEY_RESPONSES:]] == ["accepted"] * SOFT_KEY_RESPONSES


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations())
def test_mutated_real_responses_are_refused_cleanly(mutation):
    original, response, how, field = mutation
    outcome = _outcome(response)  # any exception other than Malformed/Rejected fails the test
    if _outcome(original) == "accepted" and not _may_be_accepted(original, response, field):
        assert outcome == "refused", (how, field)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_random_json_as_a_credential_is_refused_cleanly(value):
    # Never a credential: the members a response needs (clientDataJSON, attestationObject,
    # authenticatorData) are longer than any key json_values makes (12 characters at most).
    for candidate in (value, {"type": "public-key", "id": "AA", "rawId": "AA", "response": value}):
        for parse in (verify.parse_registration, verify.parse_authentication):
            with pytest.raises(verify.Malformed):
                parse(candidate)


# --- the JSON endpoints ----------------------------------------------------------------------

ENDPOINTS = [("POST", p) for p in (
    "/api/login/password", "/api/login/code", "/api/login/code/resend", "/api/login/passkey/options",
    "/api/login/passkey/verify", "/api/step-up/code/send", "/api/step-up/code",
    "/api/step-up/passkey/options", "/api/step-up/passkey/verify", "/api/passkeys/register/options",
    "/api/passkeys/register/verify", "/api/authorize", "/api/account/email")] + [
    ("PATCH", "/api/passkeys/AAAA"), ("DELETE", "/api/passkeys/AAAA")]


@pytest.fixture
def hostile(make_app, mailsink):
    """A logged-in client with one passkey (so every endpoint does real work)."""
    from softkey import b64url_decode
    from conftest import add_customer
    app = make_app(rate_limit=None)
    add_customer(app)
    client = TestClient(app, headers={"Origin": ORIGIN})
    client.__enter__()
    login(client, mailsink)
    opts = client.post("/api/passkeys/register/options", json={}).json()["publicKey"]
    cred = SoftKey().create(b64url_decode(opts["challenge"]), user_handle=b64url_decode(opts["user"]["id"]))
    assert client.post("/api/passkeys/register/verify", json={"credential": cred}).status_code == 201
    yield app, client
    client.__exit__(None, None, None)


# Endpoints whose body carries nothing (only a JSON object, or nothing, is accepted as one): a 2xx
# to such a body is their ordinary answer, not hostile input getting through.
BODY_IGNORED = {"/api/login/code/resend", "/api/step-up/code/send", "/api/step-up/passkey/options",
                "/api/passkeys/register/options", "/api/login/passkey/options"}


def _legitimate(path: str, body: bytes) -> bool:
    """Whether a body is a well-formed request the endpoint may grant to this fresh, logged-in
    session; every other body must be refused."""
    try:
        value = json.loads(body) if body.strip() else {}
    except ValueError:
        return False
    if not isinstance(value, dict):
        return False
    if path in BODY_IGNORED:
        return path != "/api/login/passkey/options" or isinstance(value.get("next"), (str, type(None)))
    if path == "/api/authorize":  # a real operation, asked by a session verified just now
        return value.get("operation") in IMPORTANT_OPERATIONS
    if path == "/api/account/email":  # an address the server's own rule finds usable
        return isinstance(value.get("email"), str)
    if path == "/api/step-up/code":  # a six-digit guess can be right (one in a million)
        return isinstance(value.get("code"), str) and re.fullmatch(r"\s*\d{6}\s*", value["code"]) is not None
    return False


def _counts(app):
    return app.state.ctx.db.run_sync(lambda d: (d.execute(select(func.count()).select_from(Credential)).scalar_one(),
                                                d.execute(select(func.count()).select_from(Session)).scalar_one()))


def test_every_endpoint_refuses_random_bodies_with_the_contract_body(hostile):
    app, client = hostile
    before = _counts(app)
    seen = {"n": 0}

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                      HealthCheck.too_slow])
    @given(endpoint=st.sampled_from(ENDPOINTS),
           body=st.one_of(json_values.map(lambda v: json.dumps(v).encode()), st.binary(max_size=300),
                          mutated_responses().map(lambda r: json.dumps(r).encode()),
                          mutated_responses().map(lambda r: json.dumps({"credential": r}).encode())))
    def check(endpoint, body):
        seen["n"] += 1
        method, path = endpoint
        r = client.request(method, path, content=body, headers={"Content-Type": "application/json"})
        assert r.status_code < 500, (path, r.status_code, r.text)
        if r.status_code >= 400:
            error = r.json()["error"]
            assert isinstance(error["code"], str) and isinstance(error["message"], str) and error["message"]
        else:
            assert _legitimate(path, body), (method, path, r.status_code, body[:200])
        # Whatever it was, it never added a passkey.
        assert _counts(app)[0] <= before[0]

    check()
    assert seen["n"] >= 150
    assert _counts(app)[0] == before[0], "nothing was stored"
