"""The request bodies' models (server/web/bodies.py): strict types, caps from web/fields.py, unknown
members ignored, the rule of a well-typed value left to the code that uses it; and /openapi.json
shows each handler's model."""

from __future__ import annotations

import pytest

from conftest import PASSWORD, login
from server.policy import IMPORTANT_OPERATIONS
from server.web import bodies
from server.web.fields import MAX_LENGTH


def post(client, path, obj):
    return client.post(path, json=obj)


def assert_invalid_field(r):
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize("obj", [
    {"customer_code": 12345678, "password": PASSWORD},  # a number is no string
    {"customer_code": ["TARO1234"], "password": PASSWORD},
    {"customer_code": "TARO1234", "password": None},  # null is no string
    {"customer_code": "TARO1234"},  # missing
    {"customer_code": "T" * (MAX_LENGTH["customer_code"] + 1), "password": PASSWORD},  # past its cap
    {"customer_code": "TARO1234", "password": PASSWORD, "next": 1},
])
def test_an_ill_typed_missing_or_too_long_field_is_422(client, customer, obj):
    assert_invalid_field(post(client, "/api/login/password", obj))


@pytest.mark.parametrize("remember", ["true", 1, 0, None, "yes"])
def test_remember_device_is_a_json_boolean_only(client, customer, remember):
    assert_invalid_field(post(client, "/api/login/code", {"code": "123456", "remember_device": remember}))


def test_a_well_typed_value_of_the_wrong_shape_is_the_rules_answer_not_422(client, customer, mailsink):
    # A customer code that can be no customer's: a failed login, like a wrong password.
    r = post(client, "/api/login/password", {"customer_code": "!!", "password": PASSWORD})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_credentials"
    # A code that is no code: a wrong entry.
    assert post(client, "/api/login/password", {"customer_code": "TARO1234", "password": PASSWORD}).status_code == 200
    r = post(client, "/api/login/code", {"code": "not a code"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "code_invalid"


def test_unknown_members_are_ignored(client, customer, mailsink):
    r = post(client, "/api/login/password", {"customer_code": "TARO1234", "password": PASSWORD, "extra": [1, {}],
                                             "remember_device": "not read here"})
    assert r.status_code == 200 and r.json() == {"status": "code_sent"}, r.text
    r = post(client, "/api/login/code", {"code": mailsink.last_code("taro@example.com"), "x": None})
    assert r.status_code == 200, r.text
    r = post(client, "/api/authorize", {"operation": "trade", "why": "because"})
    assert r.status_code != 422, r.text


@pytest.mark.parametrize("content", [b"", b"  ", b"{}", b'{"anything": [1, 2]}'])
def test_bodiless_posts_take_nothing_or_any_object(client, customer, mailsink, content):
    login(client, mailsink)
    r = client.post("/api/step-up/code/send", content=content, headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("content", [b"[]", b'"text"', b"1", b"{", b"null"])
def test_what_is_no_json_object_stays_400(client, content):
    r = client.post("/api/login/password", content=content, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request", r.text


def test_an_unknown_operation_is_422_before_the_session_is_asked(client):
    assert_invalid_field(post(client, "/api/authorize", {"operation": "lunch"}))
    assert_invalid_field(post(client, "/api/authorize", {"operation": 1}))
    assert post(client, "/api/authorize", {"operation": IMPORTANT_OPERATIONS[0]}).status_code == 401


def test_the_fields_are_read_after_the_session_where_they_were(client):
    """Step-up code and rename: a stranger is told 401 whatever the fields (not 422)."""
    assert post(client, "/api/step-up/code", {"code": 1}).status_code == 401
    assert client.patch("/api/passkeys/AAAA", json={"name": 1}).status_code == 401


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # no database work here
def test_the_document_shows_each_handlers_model(client):
    doc = client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    for name, schema in bodies.schemas().items():
        assert schemas[name] == schema
    used = {}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if isinstance(op, dict) and "requestBody" in op and "application/json" in op["requestBody"]["content"]:
                # (the OpenID Connect endpoints take forms, as their specs say: not these models)
                used[(method, path)] = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert used[("post", "/api/login/password")] == "#/components/schemas/PasswordLogin"
    assert used[("post", "/api/step-up/code")] == "#/components/schemas/StepUpCode"
    assert used[("post", "/api/login/passkey/verify")] == "#/components/schemas/AuthenticationResponseJSON"
    assert {ref.rsplit("/", 1)[1] for ref in used.values()} >= set(bodies.schemas())
    # Caps are fields.MAX_LENGTH's, and the credential is the WebAuthn shape's own schema.
    assert schemas["PasswordLogin"]["properties"]["password"]["maxLength"] == MAX_LENGTH["password"]
    assert schemas["PasskeyRegistration"]["properties"]["credential"] == {
        "$ref": "#/components/schemas/RegistrationResponseJSON"}
    assert schemas["Authorize"]["properties"]["operation"]["enum"] == list(IMPORTANT_OPERATIONS)
    assert not doc["paths"]["/api/login/passkey/options"]["post"]["requestBody"]["required"]
    assert doc["paths"]["/api/login/password"]["post"]["requestBody"]["required"]
