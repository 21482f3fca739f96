"""The broker's other domains and apps share the passkeys (contract: "Passkey adoption and reach"):
related origins, Android apps (Digital Asset Links) and iOS apps (webcredentials)."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from server.config import ConfigError, android_origin, load_settings
from softkey import SoftKey, b64url_decode
from conftest import add_customer, login

FX = "http://fx.localhost:8001"  # another of the broker's sites (https in production; localhost here)
FINGERPRINT = ":".join(["3A"] * 16 + ["C7"] * 16)
APP = f"jp.broker.app={FINGERPRINT}"


def settings_with(env, **extra):
    return load_settings({**env, **extra}, dotenv=None)


@pytest.mark.parametrize("name, value, words", [
    ("TOBIRA_RELATED_ORIGINS", "http://fx.broker.example", "https"),
    ("TOBIRA_RELATED_ORIGINS", "https://fx.broker.example/path", "scheme://host"),
    ("TOBIRA_RELATED_ORIGINS", "http://localhost:8000", "already in TOBIRA_ORIGIN"),
    ("TOBIRA_ANDROID_APPS", "jp.broker.app", "must look like"),
    ("TOBIRA_ANDROID_APPS", "jp.broker.app=3A:C7", "must look like"),
    ("TOBIRA_ANDROID_APPS", f"app={FINGERPRINT}", "must look like"),  # a package name has a dot
    ("TOBIRA_ANDROID_APPS", "jp.broker.app=" + FINGERPRINT.replace("3A", "ZZ"), "must look like"),
    ("TOBIRA_APPLE_APP_IDS", "jp.broker.app", "ABCDE12345.jp.broker.app"),
])
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_malformed_entry_is_refused_in_one_line(env, name, value, words):
    with pytest.raises(ConfigError) as refused:
        settings_with(env, **{name: value})
    assert words in str(refused.value) and "\n" not in str(refused.value)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_well_known_files_exist_only_when_set(make_app, env):
    bare = make_app()
    with TestClient(bare) as c:
        for path in ("/.well-known/webauthn", "/.well-known/assetlinks.json",
                     "/.well-known/apple-app-site-association"):
            assert c.get(path).status_code == 404, path
    s = settings_with(env, TOBIRA_RELATED_ORIGINS=FX, TOBIRA_ANDROID_APPS=APP,
                      TOBIRA_APPLE_APP_IDS="ABCDE12345.jp.broker.app")
    app = make_app(related_origins=s.related_origins, android_apps=s.android_apps, apple_app_ids=s.apple_app_ids)
    with TestClient(app) as c:
        assert c.get("/.well-known/webauthn").json() == {"origins": ["http://localhost:8000", FX]}
        links = c.get("/.well-known/assetlinks.json").json()
        assert links == [{"relation": ["delegate_permission/common.get_login_creds"],
                          "target": {"namespace": "android_app", "package_name": "jp.broker.app",
                                     "sha256_cert_fingerprints": [FINGERPRINT]}}]
        aasa = c.get("/.well-known/apple-app-site-association")
        assert aasa.json() == {"webcredentials": {"apps": ["ABCDE12345.jp.broker.app"]}}
        assert aasa.headers["content-type"] == "application/json"


def _register(c, key):
    opts = c.post("/api/passkeys/register/options", json={}).json()["publicKey"]
    credential = key.create(b64url_decode(opts["challenge"]), user_handle=b64url_decode(opts["user"]["id"]))
    return c.post("/api/passkeys/register/verify", json={"credential": credential})


def _passkey_login(c, key, origin):
    opts = c.post("/api/login/passkey/options", json={}).json()["publicKey"]
    return c.post("/api/login/passkey/verify", json=key.get(b64url_decode(opts["challenge"]), origin=origin))


@pytest.fixture
def reach_app(make_app, env):
    s = settings_with(env, TOBIRA_RELATED_ORIGINS=FX, TOBIRA_ANDROID_APPS=APP)
    app = make_app(related_origins=s.related_origins, android_apps=s.android_apps, new_passkey_hold=0)
    add_customer(app)
    return app


def test_a_passkey_made_on_one_site_logs_in_on_the_related_site_and_the_app(reach_app, mailsink):
    key = SoftKey()
    with TestClient(reach_app, headers={"Origin": "http://localhost:8000"}) as main:
        login(main, mailsink)
        assert _register(main, key).status_code == 201
    with TestClient(reach_app, headers={"Origin": FX}, base_url=FX) as fx:  # the FX site, proxied to Tobira
        r = _passkey_login(fx, key, FX)
        assert r.status_code == 200, r.text
        assert fx.get("/api/session").json()["auth_method"] == "passkey"
    app_origin = android_origin(FINGERPRINT)
    with TestClient(reach_app, headers={"Origin": "http://localhost:8000"}) as android:
        r = _passkey_login(android, key, app_origin)  # clientDataJSON says android:apk-key-hash:…
        assert r.status_code == 200, r.text


@pytest.mark.parametrize("origin", ["https://fx.evil.example", "http://fx2.localhost:8001",
                                    "android:apk-key-hash:" + "A" * 43])
def test_an_origin_not_listed_is_refused(reach_app, mailsink, origin):
    key = SoftKey()
    with TestClient(reach_app, headers={"Origin": "http://localhost:8000"}) as c:
        login(c, mailsink)
        assert _register(c, key).status_code == 201
        c.cookies.clear()
        r = _passkey_login(c, key, origin)
        assert r.status_code == 401 and r.json()["error"]["code"] == "passkey_rejected"
        assert c.get("/api/session").status_code == 401


def test_a_page_request_from_an_unlisted_site_is_still_refused(reach_app):
    with TestClient(reach_app, headers={"Origin": "https://fx.evil.example"}) as c:
        r = c.post("/api/login/passkey/options", json={})
        assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_rejected"
