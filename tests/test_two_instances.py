"""Two real `tobira serve` processes on one PostgreSQL database, as behind a load balancer: no
state lives in a process that the other instance needs."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from mailsink import free_port
from softkey import SoftKey, b64url_decode

PASSWORD = "correct horse battery"

# Several instances need a shared server database: PostgreSQL only (the fixture skips, with the
# reason, when no PostgreSQL answers).
pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


@pytest.fixture
def instances(tmp_path, mailsink, database_url):
    """Instances A and B: both serve the same origin (the load balancer's), one database."""
    origin = "http://localhost:8000"  # what the browser sees; the balancer forwards to A or B
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TOBIRA_")},
           "TOBIRA_DATA_DIR": str(tmp_path), "TOBIRA_DATABASE_URL": database_url,
           "TOBIRA_SECRET_KEY": secrets.token_urlsafe(40), "TOBIRA_ORIGIN": origin,
           "TOBIRA_SMTP_URL": mailsink.url}
    subprocess.run([sys.executable, "-m", "server", "user", "add", "TARO1234", "--email", "taro@example.com",
                    "--name", "山田 太郎", "--password-stdin"], input=PASSWORD + "\n", text=True, env=env,
                   cwd=tmp_path, check=True, capture_output=True)
    procs, urls = [], []
    for _ in range(2):
        port = free_port()
        procs.append(subprocess.Popen([sys.executable, "-m", "server", "serve", "--port", str(port)], env=env,
                                      cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        urls.append(f"http://127.0.0.1:{port}")
    try:
        for proc, url in zip(procs, urls):
            deadline = time.monotonic() + 20
            while True:
                if proc.poll() is not None:
                    raise AssertionError(proc.stderr.read().decode(errors="replace")[-2000:])
                try:
                    httpx.get(url + "/healthz", timeout=1)
                    break
                except httpx.HTTPError:
                    assert time.monotonic() < deadline, f"{url} did not start"
                    time.sleep(0.1)
        yield urls, origin
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


class Browser:
    """One browser's cookies, sent to whichever instance the balancer picks."""

    def __init__(self, origin: str) -> None:
        self.cookies = httpx.Cookies()
        self.headers = {"Origin": origin}

    def post(self, base: str, path: str, json=None) -> httpx.Response:
        r = httpx.post(base + path, json=json if json is not None else {}, headers=self.headers,
                       cookies=self.cookies, timeout=15)
        self._keep(r)
        return r

    def get(self, base: str, path: str) -> httpx.Response:
        r = httpx.get(base + path, headers=self.headers, cookies=self.cookies, timeout=15)
        self._keep(r)
        return r

    def _keep(self, response: httpx.Response) -> None:
        for name, value in response.cookies.items():
            self.cookies.set(name, value, domain="", path="/")


def log_in_with_code(b: Browser, send_on: str, check_on: str, mailsink) -> None:
    assert b.post(send_on, "/api/login/password", {"customer_code": "TARO1234",
                                                   "password": PASSWORD}).json()["status"] == "code_sent"
    r = b.post(check_on, "/api/login/code", {"code": mailsink.last_code("taro@example.com")})
    assert r.status_code == 200, r.text


def register(b: Browser, options_on: str, verify_on: str, key: SoftKey) -> httpx.Response:
    opts = b.post(options_on, "/api/passkeys/register/options").json()["publicKey"]
    cred = key.create(b64url_decode(opts["challenge"]), user_handle=b64url_decode(opts["user"]["id"]))
    return b.post(verify_on, "/api/passkeys/register/verify", {"credential": cred})


def test_state_is_shared_between_instances(instances, mailsink):
    (a, b_url), origin = instances
    browser = Browser(origin)
    # A code sent by A is checked by B.
    log_in_with_code(browser, a, b_url, mailsink)
    assert browser.get(a, "/api/session").json()["auth_method"] == "email_code"
    # A passkey registered on A (options from A, verify on B) logs in on B (options on B, verify on A).
    key = SoftKey(synced=False)
    assert register(browser, a, b_url, key).status_code == 201
    # A logout on A ends the session on B.
    assert browser.post(a, "/api/logout").status_code == 204
    assert browser.get(b_url, "/api/session").status_code == 401
    opts = browser.post(b_url, "/api/login/passkey/options").json()["publicKey"]
    r = browser.post(a, "/api/login/passkey/verify", key.get(b64url_decode(opts["challenge"])))
    assert r.status_code == 200, r.text
    assert browser.get(b_url, "/api/session").json()["auth_method"] == "passkey"


def test_parallel_registrations_over_both_instances_store_at_most_five(instances, mailsink):
    (a, b_url), origin = instances
    browser = Browser(origin)
    log_in_with_code(browser, a, a, mailsink)
    prepared = []
    for i in range(6):  # six ceremonies, begun while none is stored yet
        on = (a, b_url)[i % 2]
        opts = browser.post(on, "/api/passkeys/register/options").json()["publicKey"]
        prepared.append(SoftKey().create(b64url_decode(opts["challenge"]),
                                         user_handle=b64url_decode(opts["user"]["id"])))
    with ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(lambda i: browser.post((a, b_url)[i % 2], "/api/passkeys/register/verify",
                                                     {"credential": prepared[i]}).status_code, range(6)))
    assert sorted(codes) == [201] * 5 + [409]
    assert len(browser.get(b_url, "/api/passkeys").json()["passkeys"]) == 5


def test_parallel_verifies_of_one_assertion_give_exactly_one_session(instances, mailsink):
    (a, b_url), origin = instances
    browser = Browser(origin)
    log_in_with_code(browser, a, a, mailsink)
    key = SoftKey()
    assert register(browser, a, a, key).status_code == 201
    browser.post(a, "/api/logout")
    opts = browser.post(a, "/api/login/passkey/options").json()["publicKey"]
    assertion = key.get(b64url_decode(opts["challenge"]))
    cookies = dict(browser.cookies.items())

    def verify(i):
        return httpx.post((a, b_url)[i % 2] + "/api/login/passkey/verify", json=assertion, headers=browser.headers,
                          cookies=cookies, timeout=15).status_code

    with ThreadPoolExecutor(10) as pool:
        codes = list(pool.map(verify, range(10)))
    assert codes.count(200) == 1 and set(codes) <= {200, 400}, codes


def test_single_sign_on_across_instances(instances, mailsink, tmp_path, database_url):
    """Authorize on A, exchange the code on B, refresh on A, log out on B: the app's back-channel
    logout arrives once (both instances' senders share one queue)."""
    import base64
    import hashlib
    import re
    from urllib.parse import parse_qs, urlencode, urlsplit

    from oidckit import Receiver

    (a, b_url), origin = instances
    receiver = Receiver()
    try:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("TOBIRA_")},
               "TOBIRA_DATA_DIR": str(tmp_path), "TOBIRA_DATABASE_URL": database_url,
               "TOBIRA_ORIGIN": origin, "TOBIRA_SECRET_KEY": secrets.token_urlsafe(40)}  # (apps are not encrypted)
        out = subprocess.run([sys.executable, "-m", "server", "client", "add", "Stock site", "--redirect-uri",
                              "https://stock.example.com/cb", "--backchannel-logout-uri", receiver.uri],
                             env=env, cwd=tmp_path, check=True, capture_output=True, text=True).stdout
        client_id = re.search(r"^client_id: (\S+)$", out, re.M).group(1)
        secret = re.search(r"^client_secret: (\S+)$", out, re.M).group(1)
        browser = Browser(origin)
        log_in_with_code(browser, a, b_url, mailsink)
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        query = urlencode({"client_id": client_id, "redirect_uri": "https://stock.example.com/cb",
                           "response_type": "code", "scope": "openid offline_access", "state": "s",
                           "code_challenge": challenge, "code_challenge_method": "S256"})
        r = browser.get(a, f"/oauth/authorize?{query}")
        assert r.status_code == 303, r.text
        code = parse_qs(urlsplit(r.headers["location"]).query)["code"][0]
        r = httpx.post(b_url + "/oauth/token", auth=(client_id, secret), data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": "https://stock.example.com/cb",
            "code_verifier": verifier})
        assert r.status_code == 200, r.text
        r = httpx.post(a + "/oauth/token", auth=(client_id, secret),
                       data={"grant_type": "refresh_token", "refresh_token": r.json()["refresh_token"]})
        assert r.status_code == 200, r.text
        assert browser.post(b_url, "/api/logout").status_code == 204
        receiver.wait(1)
        time.sleep(7)  # both senders have looked at the queue since (they poll every 5 s)
        assert len(receiver.tokens) == 1
        r = httpx.post(a + "/oauth/token", auth=(client_id, secret),
                       data={"grant_type": "refresh_token", "refresh_token": r.json()["refresh_token"]})
        assert r.json()["error"] == "invalid_grant"
    finally:
        receiver.close()
