"""Hostile input, by property: random and mutated JSON, base64url, CBOR, clientDataJSON and
authenticator data, at the ceremony code and at every JSON endpoint. Always a refusal of the
expected kind (Malformed/Rejected; a 4xx with the contract's body), never a crash, nothing stored."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import func, select
from starlette.testclient import TestClient

from server import verify
from server.models import Credential, Session
from softkey import SoftKey, b64url
from conftest import ORIGIN, login

VECTORS = Path(__file__).resolve().parents[2] / "shared" / "vectors"
CHALLENGE = b"\x01" * 32

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70) | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=25)


def _corpus() -> list[dict]:
    """Real responses: the shared vectors (when present) and the soft key's."""
    out = []
    for name in ("registration.json", "authentication.json"):
        path = VECTORS / name
        if path.exists():
            out += [v["response"] for v in json.loads(path.read_text())]
    key = SoftKey()
    out += [key.create(CHALLENGE, user_handle=b"u" * 32), key.get(CHALLENGE)]
    return out


CORPUS = _corpus()
FIELDS = ("clientDataJSON", "attestationObject", "authenticatorData", "signature", "userHandle")


def _b64decode(text: str) -> bytes:
    text = text.rstrip("=").replace("+", "-").replace("/", "_")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@st.composite
def mutated_responses(draw):
    """A real response with one field's bytes flipped, cut, extended or replaced, or its JSON shape broken."""
    response = json.loads(json.dumps(draw(st.sampled_from(CORPUS))))
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
    return response


def _run(response: dict) -> None:
    kind = "attestationObject" in response.get("response", {})
    try:
        if kind:
            parsed = verify.parse_registration(response)
            verify.verify_registration(response=parsed, expected_challenge=CHALLENGE,
                                       expected_origins=["http://localhost:8000"], rp_id="localhost")
        else:
            parsed = verify.parse_authentication(response)
            verify.verify_authentication(response=parsed, expected_challenge=CHALLENGE,
                                         expected_origins=["http://localhost:8000"], rp_id="localhost",
                                         public_key=SoftKey().cose_public_key, stored_sign_count=0,
                                         stored_backup_eligible=True)
    except (verify.Malformed, verify.Rejected):
        pass


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_responses())
def test_mutated_real_responses_are_refused_cleanly(response):
    _run(response)  # any exception other than Malformed/Rejected fails the test


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_random_json_as_a_credential_is_refused_cleanly(value):
    for candidate in (value, {"type": "public-key", "id": "AA", "rawId": "AA", "response": value}):
        for parse in (verify.parse_registration, verify.parse_authentication):
            try:
                parse(candidate)
            except verify.Malformed:
                pass


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


def _counts(app):
    return app.state.ctx.db.run_sync(lambda d: (d.exec(select(func.count()).select_from(Credential)).scalar_one(),
                                                d.exec(select(func.count()).select_from(Session)).scalar_one()))


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
        # Whatever it was, it never added a passkey.
        assert _counts(app)[0] <= before[0]

    check()
    assert seen["n"] >= 150
    assert _counts(app)[0] == before[0], "nothing was stored"
