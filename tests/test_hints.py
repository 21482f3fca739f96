"""WebAuthn L3 hints in every ceremony's options (contract: "Passkey adoption and reach"): the
customer's own device first, a phone nearby at login, a roaming key from "Add a security key"."""

from __future__ import annotations

from softkey import SoftKey, b64url_decode
from conftest import login


def test_login_options_ask_for_this_device_then_a_phone(client):
    options = client.post("/api/login/passkey/options", json={}).json()["publicKey"]
    assert options["hints"] == ["client-device", "hybrid"]


def test_registration_and_step_up_ask_for_this_device(client, customer, mailsink):
    login(client, mailsink)
    options = client.post("/api/passkeys/register/options", json={}).json()["publicKey"]
    assert options["hints"] == ["client-device"]
    assert "authenticatorAttachment" not in options["authenticatorSelection"]
    key = SoftKey()
    r = client.post("/api/passkeys/register/verify", json={"credential": key.create(
        b64url_decode(options["challenge"]), user_handle=b64url_decode(options["user"]["id"]))})
    assert r.status_code == 201, r.text
    step_up = client.post("/api/step-up/passkey/options", json={}).json()["publicKey"]
    assert step_up["hints"] == ["client-device"]


def test_add_a_security_key_asks_for_a_roaming_key_and_it_registers(client, customer, mailsink):
    login(client, mailsink)
    r = client.post("/api/passkeys/register/options", json={"authenticator": "security-key"})
    options = r.json()["publicKey"]
    assert options["hints"] == ["security-key"]
    assert options["authenticatorSelection"]["authenticatorAttachment"] == "cross-platform"
    key = SoftKey(synced=False, attachment="cross-platform", transports=["usb"])
    r = client.post("/api/passkeys/register/verify", json={"credential": key.create(
        b64url_decode(options["challenge"]), user_handle=b64url_decode(options["user"]["id"]))})
    assert r.status_code == 201, r.text


def test_an_unknown_authenticator_kind_is_refused(client, customer, mailsink):
    login(client, mailsink)
    r = client.post("/api/passkeys/register/options", json={"authenticator": "phone"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
