"""/openapi.json: it describes every JSON route and nothing else, it is valid OpenAPI 3.1, the
server's answers conform to it (every success answer walked through in-process with a software
authenticator), and schemathesis finds nothing against a live `tobira serve`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import httpx
import jsonschema
import pytest
import schemathesis
from openapi_spec_validator import validate
from starlette.testclient import TestClient

from conftest import ORIGIN, PASSWORD
from mailsink import free_port
from server.errors import CODES
from server.openapi import document
from softkey import SoftKey, b64url_decode

METHODS = {"get", "post", "put", "patch", "delete"}


def json_routes(app) -> dict[tuple[str, str], str]:
    """(path, method) -> handler name, for every route answered by server/web/api.py and the OpenID
    Connect endpoints of server/web/oauth.py (HEAD rides on GET; where one handler answers GET and
    POST, the POST operation's id is the name + "_post": operation ids are unique)."""
    found = {}
    for route in app.routes:
        endpoint = getattr(route, "endpoint", None)
        if getattr(endpoint, "__module__", None) not in ("server.web.api", "server.web.oauth", "server.web.admin"):
            continue
        methods = route.methods - {"HEAD"}
        for method in methods:
            suffix = "_post" if method == "POST" and len(methods) > 1 else ""
            path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)  # {session_id:sid}: a convertor, not the name
            found[(path, method.lower())] = endpoint.__name__ + suffix
    return found


def described(doc: dict) -> dict[tuple[str, str], str]:
    return {(path, method): op["operationId"] for path, item in doc["paths"].items()
            for method, op in item.items() if method in METHODS}


# --- the document itself ----------------------------------------------------------------------


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # no database work here
def test_every_json_route_is_described_and_nothing_else(app, client):
    doc = client.get("/openapi.json").json()
    routes = json_routes(app)
    assert {("/openapi.json", "get"), ("/auth/check", "get"), ("/api/authorize", "post"),
            ("/oauth/token", "post"), ("/.well-known/openid-configuration", "get")} <= set(routes)
    missing = sorted(set(routes) - set(described(doc)))
    assert not missing, f"routes with no description in server/openapi.py: {missing}"
    extra = sorted(set(described(doc)) - set(routes))
    assert not extra, f"described in server/openapi.py but not routed: {extra}"
    # operationId is the handler's name: the description is of the code that answers.
    assert described(doc) == routes


def _csrf_refused(response) -> bool:
    return response.status_code == 403 and response.json()["error"]["code"] == "csrf_rejected"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_document_is_valid_openapi_and_fits_this_instance(app, client, settings, customer, mailsink):
    """What the document says about this instance, held against what this instance does.

    (It was held against `document(...)` and the Cookies object, the very things the served
    document is made from: equal by construction, so nothing was checked.)"""
    r = client.get("/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.headers["cache-control"] == "no-store" and r.headers["x-content-type-options"] == "nosniff"
    doc = r.json()
    validate(doc)  # OpenAPI 3.1 + JSON Schema 2020-12
    # The Origin parameter is documented exactly where the server really refuses a foreign Origin,
    # and its enum holds origins the server really admits.
    stranger = TestClient(app)  # no session: nothing it sends can change anything that matters

    def send(method: str, url: str, origin: str):
        stranger.cookies.clear()
        if method == "get":
            return stranger.get(url, headers={"Origin": origin})
        return stranger.request(method.upper(), url, content=b"{}",
                                headers={"Origin": origin, "Content-Type": "application/json"})

    for path, item in doc["paths"].items():
        for method, op in ((m, o) for m, o in item.items() if m in METHODS):
            origin = [p for p in op["parameters"] if p.get("name") == "Origin"]
            url = re.sub(r"\{[^}]+\}", "AAAA", path)
            foreign = send(method, url, "https://evil.example")
            assert _csrf_refused(foreign) == bool(origin), (method, path, foreign.status_code, foreign.text)
            if origin:
                assert origin[0]["required"] and op["responses"]["403"], (method, path)
                assert origin[0]["schema"]["enum"] == list(settings.origins), (method, path)
                for allowed in origin[0]["schema"]["enum"]:
                    assert not _csrf_refused(send(method, url, allowed)), (method, path, allowed)
    stranger.close()
    # The cookie names documented are the names of the cookies the server really sets: the session
    # (securitySchemes) and the trusted device (a cookie parameter of the password step).
    client.post("/api/login/password", json={"customer_code": "TARO1234", "password": PASSWORD})
    r = client.post("/api/login/code", json={"code": mailsink.last_code("taro@example.com"), "remember_device": True})
    assert r.status_code == 200, r.text
    set_names = {h.split("=", 1)[0] for h in r.headers.get_list("set-cookie")}
    device = [p["name"] for p in doc["paths"]["/api/login/password"]["post"]["parameters"] if p.get("in") == "cookie"]
    assert set_names == {doc["components"]["securitySchemes"]["session"]["name"], *device}, (set_names, device)


def test_every_error_code_in_the_document_is_one_the_server_has():
    doc = document(origins=(ORIGIN,), session_cookie="s", device_cookie="d")
    codes = set()

    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "object" and set(node.get("properties", {})) >= {"code", "message"}:
                codes.update(node["properties"]["code"]["enum"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    assert codes and codes <= set(CODES), codes - set(CODES)


def test_every_error_answer_names_codes_declared_at_its_status():
    """server/errors.py declares each code's statuses; the document lists a code only at one of them."""
    doc = document(origins=(ORIGIN,), session_cookie="s", device_cookie="d")
    seen = 0
    for item in doc["paths"].values():
        for op in (o for m, o in item.items() if m in METHODS):
            for status, response in op["responses"].items():
                if "$ref" in response:
                    response = doc["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
                if int(status) < 400:
                    continue
                if "text/html" in response.get("content", {}):  # the OpenID Connect endpoints' error pages
                    continue
                schema = response["content"]["application/json"]["schema"]
                if schema == {"$ref": "#/components/schemas/OAuthError"}:  # OAuth's own errors, not ours
                    assert "openid-connect" in op["tags"]
                    continue
                for body in schema.get("oneOf", [schema]):
                    error = body["properties"]["error"]
                    for code in error["properties"]["code"]["enum"]:
                        declared = CODES[code]
                        declared.at(int(status))  # ValueError when not declared at this status
                        assert set(error["required"]) == {"code", "message", *declared.extras}, (code, status)
                        seen += 1
    assert seen > 50


def test_an_https_instance_describes_its_host_cookie():
    doc = document(origins=("https://broker.example.jp",), session_cookie="__Host-tobira_session",
                   device_cookie="__Host-tobira_device")
    validate(doc)
    assert doc["components"]["securitySchemes"]["session"]["name"] == "__Host-tobira_session"
    assert doc["paths"]["/api/logout"]["post"]["parameters"][-1]["schema"]["enum"] == ["https://broker.example.jp"]


# --- the server's answers conform, success paths included ---------------------------------------


class Conformance:
    """Checks each answer against the document: documented status, media type, headers and body."""

    def __init__(self, doc: dict) -> None:
        self.doc = doc
        self.schema = schemathesis.openapi.from_dict(doc)
        self.templates = [(re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"), path) for path in doc["paths"]]
        self.seen: set[tuple[str, str, int]] = set()

    def __call__(self, response, status: int, code: str | None = None):
        method, path = response.request.method, response.request.url.path
        template = next(t for rx, t in self.templates if rx.match(path))
        operation = self.doc["paths"][template][method.lower()]
        assert response.status_code == status, (method, path, response.status_code, response.text)
        documented = operation["responses"].get(str(status))
        assert documented, f"{method} {template}: {status} is not documented"
        documented = self._resolve(documented)
        if "content" in documented:
            assert response.headers["content-type"] == "application/json"
        else:
            assert response.content == b"" and "content-type" not in response.headers
        for name, header in documented.get("headers", {}).items():
            assert not header.get("required") or name.lower() in response.headers, (method, path, name)
            if name.lower() in response.headers:
                jsonschema.validate(response.headers[name], self._resolve(header["schema"], "schemas"))
        self.schema[template][method].validate_response(response)  # raises with the differences
        if code is not None:
            assert response.json()["error"]["code"] == code
        self.seen.add((template, method.lower(), status))
        return response

    def _resolve(self, node: dict, kind: str = "responses") -> dict:
        while "$ref" in node:
            node = self.doc["components"][kind][node["$ref"].rsplit("/", 1)[1]]
        return node


def test_every_answer_of_a_customers_day_conforms(client, customer, mailsink, clock):
    check = Conformance(client.get("/openapi.json").json())
    post, get = client.post, client.get
    # Operations.
    check(get("/healthz"), 200)
    check(get("/readyz"), 200)
    check(get("/openapi.json"), 200)
    # Not logged in.
    check(get("/api/session"), 401, "not_authenticated")
    check(get("/auth/check"), 401, "not_authenticated")
    check(get("/api/passkeys"), 401, "not_authenticated")
    check(post("/api/authorize", json={"operation": "trade"}), 401, "not_authenticated")
    check(post("/api/login/code", json={"code": "123456"}), 401, "no_pending_login")
    check(post("/api/login/password", json={"customer_code": "TARO1234", "password": "wrong password"}), 401,
          "invalid_credentials")
    # The legacy login, remembering this PC.
    check(post("/api/login/password", json={"customer_code": "TARO1234", "password": PASSWORD}), 200)
    wrong = check(post("/api/login/code", json={"code": "000000x"}), 400, "code_invalid")
    assert wrong.json()["error"]["attempts_left"] == 2
    too_soon = check(post("/api/login/code/resend"), 429, "resend_too_soon")
    assert too_soon.headers["retry-after"] == str(too_soon.json()["error"]["retry_after"])
    clock.advance(31)
    check(post("/api/login/code/resend"), 200)
    check(post("/api/login/code", json={"code": mailsink.last_code("taro@example.com"), "remember_device": True}),
          200)
    check(get("/api/session"), 200)
    check(get("/api/passkeys"), 200)
    check(post("/api/step-up/passkey/options", json={}), 409, "no_passkey")
    # Where the customer is signed in: another browser's session ended, the remembered PC forgotten.
    other = TestClient(client.app, headers={"Origin": ORIGIN})
    other.post("/api/login/password", json={"customer_code": "TARO1234", "password": PASSWORD})
    other.post("/api/login/code", json={"code": mailsink.last_code("taro@example.com")})
    signed_in = check(get("/api/sessions"), 200).json()
    their = next(s["id"] for s in signed_in["sessions"] if not s["current"])
    check(client.request("DELETE", f"/api/sessions/{their}"), 204)
    check(client.request("DELETE", f"/api/sessions/{their}"), 404, "not_found")
    check(post("/api/sessions/end-others"), 204)
    check(client.request("DELETE", f"/api/trusted-devices/{signed_in['trusted_devices'][0]['id']}"), 204)
    other.close()
    # A passkey: registered, listed, renamed.
    key = SoftKey()
    options = check(post("/api/passkeys/register/options", json={}), 200).json()["publicKey"]
    credential = key.create(b64url_decode(options["challenge"]), user_handle=b64url_decode(options["user"]["id"]))
    passkey_id = check(post("/api/passkeys/register/verify", json={"credential": credential, "name": "Phone"}),
                       201).json()["passkey"]["id"]
    check(post("/api/passkeys/register/verify", json={"credential": credential}), 400, "ceremony_expired")
    check(get("/api/passkeys"), 200)
    check(client.patch(f"/api/passkeys/{passkey_id}", json={"name": "  My phone  "}), 200)
    check(client.patch(f"/api/passkeys/{passkey_id}", json={"name": "   "}), 422, "invalid_request")
    check(client.patch("/api/passkeys/AAAA", json={"name": "x"}), 404, "not_found")
    # Step-up, both ways.
    options = check(post("/api/step-up/passkey/options"), 200).json()["publicKey"]
    check(post("/api/step-up/passkey/verify", json=key.get(b64url_decode(options["challenge"]))), 200)
    check(post("/api/step-up/code/send"), 200)
    check(post("/api/step-up/code", json={"code": "999999"}), 400, "code_invalid")
    check(post("/api/step-up/code", json={"code": mailsink.last_code("taro@example.com")}), 200)
    # Decisions.
    check(post("/api/authorize", json={"operation": "trade"}), 200)
    check(post("/api/authorize", json={"operation": "lunch"}), 422, "invalid_request")
    allowed = check(get("/auth/check?operation=withdrawal"), 200)
    assert allowed.headers["x-tobira-customer"] == "TARO1234"
    check(get("/auth/check?operation=lunch"), 422, "invalid_request")
    # Adding the passkey forgot the remembered PC: remembered again, then back in on it, which needs a
    # step-up before sensitive actions.
    check(post("/api/logout"), 204)
    check(post("/api/login/password", json={"customer_code": "TARO1234", "password": PASSWORD}), 200)
    check(post("/api/login/code", json={"code": mailsink.last_code("taro@example.com"), "remember_device": True}),
          200)
    check(post("/api/account/unlock-password"), 403, "step_up_required")
    check(post("/api/logout"), 204)
    check(post("/api/login/password", json={"customer_code": "TARO1234", "password": PASSWORD}), 200)
    check(post("/api/account/email", json={"email": "new@example.com"}), 403, "step_up_required")
    check(client.delete(f"/api/passkeys/{passkey_id}"), 403, "step_up_required")
    # A passkey login, then the sensitive actions.
    check(post("/api/logout"), 204)
    options = check(post("/api/login/passkey/options", json={"next": "/account/passkeys"}), 200).json()["publicKey"]
    check(post("/api/login/passkey/verify", json=key.get(b64url_decode(options["challenge"]))), 200)
    check(post("/api/account/email", json={"email": "new@example.com"}), 200)
    check(post("/api/account/unlock-password"), 200)
    check(client.delete(f"/api/passkeys/{passkey_id}"), 204)
    check(client.delete(f"/api/passkeys/{passkey_id}"), 404, "not_found")
    check(post("/api/passkeys/register/verify", json={"credential": {"type": "public-key"}}), 400, "invalid_request")
    # The deleted passkey is unknown now.
    check(post("/api/logout"), 204)
    options = check(post("/api/login/passkey/options"), 200).json()["publicKey"]
    unknown = check(post("/api/login/passkey/verify", json=key.get(b64url_decode(options["challenge"]))), 401,
                    "unknown_credential")
    assert unknown.json()["error"]["credential_id"] == passkey_id
    # What every request may meet on the way in.
    check(post("/api/logout", headers={"Origin": "https://evil.example"}), 403, "csrf_rejected")
    check(post("/api/login/password", content=b"[1]", headers={"Content-Type": "application/json"}), 400,
          "invalid_request")
    check(post("/api/login/password", content=b"customer_code=x",
               headers={"Content-Type": "application/x-www-form-urlencoded"}), 415, "unsupported_media_type")
    check(post("/api/login/password", content=b"{" + b" " * 70_000 + b"}",
               headers={"Content-Type": "application/json"}), 413, "payload_too_large")
    check(post("/api/login/password", json={"customer_code": 1234, "password": PASSWORD}), 422, "invalid_request")
    # Every operation's success answer was among them (the OpenID Connect endpoints' day is an
    # app's, in tests/test_oidc*.py; schemathesis below holds their answers to the document).
    succeeded = {(path, method) for path, method, status in check.seen if status < 300}
    api = {(path, method) for (path, method) in described(check.doc)
           if not {"openid-connect", "staff-console"} & set(check.doc["paths"][path][method]["tags"])}
    assert succeeded == api, api - succeeded


def test_every_answer_of_a_staff_day_conforms(app, client, customer, clock):
    """The staff console's JSON (tests/test_staff.py holds its rules): each success answer, and the
    refusals the document names, against the document."""
    from server import staff
    from server.audit import Actor

    check = Conformance(client.get("/openapi.json").json())
    ctx = app.state.ctx

    def enrolled(name: str, role: str) -> TestClient:
        code = ctx.db.run_sync(lambda db: staff.add(db, name, role, now=ctx.clock(), actor=Actor.cli())[1])
        c = TestClient(app, headers={"Origin": ORIGIN})
        options = check(c.post("/api/admin/enrol/options", json={"name": name, "enrolment_code": code}), 200)
        opts = options.json()["publicKey"]
        key = SoftKey()
        check(c.post("/api/admin/enrol/verify", json=key.create(
            b64url_decode(opts["challenge"]), user_handle=b64url_decode(opts["user"]["id"]))), 201)
        check(c.post("/api/admin/logout"), 204)
        opts = check(c.post("/api/admin/login/options"), 200).json()["publicKey"]
        check(c.post("/api/admin/login/verify", json=key.get(b64url_decode(opts["challenge"]))), 200)
        return c

    check(client.get("/api/admin/session"), 401, "not_authenticated")
    check(client.post("/api/admin/enrol/options", json={"name": "x", "enrolment_code": "y"}), 400, "enrolment_invalid")
    agent, admin = enrolled("sato", "support"), enrolled("suzuki", "admin")
    check(agent.get("/api/admin/session"), 200)
    check(agent.get("/api/admin/customers", params={"q": "TARO1234"}), 200)
    check(agent.get("/api/admin/customers/TARO1234"), 200)
    check(agent.get("/api/admin/customers/NOBODY99"), 404, "not_found")
    check(agent.post("/api/admin/customers/TARO1234/actions", json={"action": "unlock", "reason": "t-1"}), 200)
    asked = check(agent.post("/api/admin/customers/TARO1234/actions",
                             json={"action": "reset-passkeys", "reason": "t-2"}), 202).json()["request_id"]
    check(agent.get("/api/admin/approvals"), 200)
    check(agent.post(f"/api/admin/approvals/{asked}"), 403, "same_staff")
    check(admin.post(f"/api/admin/approvals/{asked}"), 200)
    check(admin.post(f"/api/admin/approvals/{asked}"), 410, "expired")
    check(agent.get("/api/admin/audit"), 403, "forbidden")
    check(admin.get("/api/admin/audit"), 200)
    check(admin.post("/api/admin/staff", json={"name": "ito", "role": "support"}), 201)
    check(admin.post("/api/admin/staff/ito/reset-passkeys"), 200)
    check(admin.post("/api/admin/staff/ito/disable"), 200)
    succeeded = {(path, method) for path, method, status in check.seen if status < 300}
    console = {(path, method) for (path, method) in described(check.doc)
               if "staff-console" in check.doc["paths"][path][method]["tags"]}
    assert succeeded == console, console - succeeded


# --- schemathesis against a live server -------------------------------------------------------

# A schema-valid WebAuthn response is still refused unless an authenticator signed it, and a
# schema-valid code unless it is the e-mailed one: 400 is the right answer to such "valid" data.
SCHEMATHESIS_CONFIG = """\
[auth.openapi.session]
api_key = "{cookie}"

# The contract documents 503 (database or mail unavailable); any other 5xx is a failure.
[checks.not_a_server_error]
expected-statuses = ["2xx", "3xx", "4xx", "503"]

[[operations]]
include-operation-id = ["passkey_login_verify", "step_up_passkey_verify", "passkey_register_verify",
                        "step_up_code", "login_code", "admin_enrol_verify", "admin_login_verify"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "429"]

# A staff enrolment needs the code `tobira staff add` printed: a generated one is 400 enrolment_invalid.
[[operations]]
include-operation-id = "admin_enrol_options"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400"]

# Renames hit the customer's real passkey (so 200 is reached), not only random IDs (404).
[[operations]]
include-operation-id = "passkey_rename"
parameters = {{ passkey_id = "{passkey_id}" }}

# Operations without an Origin parameter get the header a browser sends anyway, so an undeclared
# PUT is answered by the router (405), not by the CSRF check in front of it (403).
[[operations]]
include-operation-id = ["healthz", "readyz", "discovery", "jwks", "authorization"]
headers = {{ Origin = "{origin}" }}

# OpenID Connect: a request of the right shape still names no registered app, code or token, and
# the specs answer that with 400 (an error page, or invalid_request / invalid_grant) or 401.
[[operations]]
include-tag = "openid-connect"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401"]
"""

# Every check schemathesis has (a 405 for an undeclared method must carry `Allow`: server/app.py).
SCHEMATHESIS_ARGS = ["--checks", "all",
                     "--phases", "examples,coverage,fuzzing", "--max-examples", "10", "--seed", "20261121",
                     "--workers", "1", "--request-timeout", "15", "--generation-database", "none", "--no-color"]


@pytest.fixture
def live_server(tmp_path, mailsink, database_url):
    """A real `tobira serve` on a free port, with one customer; yields (base URL, browser origin)."""
    port = free_port()
    origin = f"http://localhost:{port}"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TOBIRA_")},
           "TOBIRA_DATA_DIR": str(tmp_path), "TOBIRA_DATABASE_URL": database_url, "TOBIRA_ORIGIN": origin,
           "TOBIRA_SECRET_KEY": "k" * 16 + "test-secret-not-for-production", "TOBIRA_SMTP_URL": mailsink.url,
           # Thousands of generated failures: without these every sign-in path would soon answer
           # only 429 or 423 and the handlers behind them would go untested.
           "TOBIRA_RATE_LIMIT": "0", "TOBIRA_LOCK_AFTER_FAILURES": "100000", "TOBIRA_LOGIN_OPTIONS_LIMIT": "0"}
    subprocess.run([sys.executable, "-m", "server", "user", "add", "TARO1234", "--email", "taro@example.com",
                    "--name", "山田 太郎", "--password-stdin"], input=PASSWORD + "\n", text=True, env=env,
                   cwd=tmp_path, check=True, capture_output=True)
    # The JSON log goes to a file: thousands of requests would fill a pipe nobody reads and stall the server.
    log = tmp_path / "server.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "server", "serve", "--port", str(port)], env=env,
                                cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=sink)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise AssertionError(log.read_text(errors="replace")[-2000:])
            try:
                httpx.get(base + "/healthz", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
        yield base, origin
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def run_schemathesis(base: str, config, report, *args: str) -> tuple[int, str, int]:
    """Run the schemathesis CLI; (exit code, its output, how many requests it made)."""
    done = subprocess.run([sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run",
                           f"{base}/openapi.json", *SCHEMATHESIS_ARGS, "--report", "ndjson",
                           "--report-ndjson-path", str(report), *args],
                          cwd=report.parent, capture_output=True, text=True, timeout=300)
    requests = 0
    for line in report.read_text().splitlines():
        event = json.loads(line)
        if "ScenarioFinished" in event:
            requests += len(event["ScenarioFinished"]["recorder"].get("interactions", {}))
    return done.returncode, done.stdout + done.stderr, requests


def test_schemathesis_finds_nothing_against_a_live_server(live_server, mailsink, tmp_path, capsys):
    base, origin = live_server
    # Log in like a browser and register a passkey, so the logged-in operations are tested beyond
    # 401 and the passkey list, rename and step-up options have something to answer with.
    with httpx.Client(base_url=base, headers={"Origin": origin}, timeout=15) as browser:
        r = browser.post("/api/login/password", json={"customer_code": "TARO1234", "password": PASSWORD})
        assert r.json() == {"status": "code_sent"}, r.text
        r = browser.post("/api/login/code", json={"code": mailsink.last_code("taro@example.com")})
        assert r.status_code == 200, r.text
        options = browser.post("/api/passkeys/register/options").json()["publicKey"]
        key = SoftKey()
        r = browser.post("/api/passkeys/register/verify", json={"credential": key.create(
            b64url_decode(options["challenge"]), user_handle=b64url_decode(options["user"]["id"]), origin=origin)})
        assert r.status_code == 201, r.text
        passkey_id = r.json()["passkey"]["id"]
        cookie = browser.cookies["tobira_session"]
    config = tmp_path / "schemathesis.toml"
    config.write_text(SCHEMATHESIS_CONFIG.format(cookie=cookie, passkey_id=passkey_id, origin=origin))
    total = 0
    # Logout last and alone: it ends the session the other operations are tested with.
    for name, only in [("logged-in", ["--exclude-operation-id", "logout"]), ("logout", ["--include-operation-id",
                                                                                        "logout"])]:
        code, output, requests = run_schemathesis(base, config, tmp_path / f"{name}.ndjson", *only)
        assert code == 0, f"schemathesis ({name}) failed:\n{output[-12000:]}"
        assert requests > 0, output[-3000:]
        total += requests
    assert total > 500
    with capsys.disabled():
        print(f"\nschemathesis: {total} requests to the live server, no failures")
