"""Forward auth for real: Debian's nginx, with the README's configuration as it stands (read from
its nginx block, never a copy), in front of a small upstream app and a running `tobira serve`."""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import httpx
import pytest

from mailsink import free_port
from softkey import SoftKey, b64url_decode

ROOT = Path(__file__).resolve().parent.parent
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

pytestmark = pytest.mark.skipif(not Path(NGINX).exists(),
                                reason="nginx is not installed (tests/run.sh installs Debian's nginx)")


def readme_config(tobira: int, trading: int, listen: int) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- nginx-begin -->\n```nginx\n(.*?)```\n<!-- nginx-end -->", text, re.S).group(1)
    for old, new in (("127.0.0.1:8000", f"127.0.0.1:{tobira}"), ("127.0.0.1:9000", f"127.0.0.1:{trading}"),
                     ("listen 80;", f"listen 127.0.0.1:{listen};")):
        assert old in block, f"the README's nginx block no longer has {old!r}"
        block = block.replace(old, new)
    return block


class Echo(BaseHTTPRequestHandler):
    """The broker's app: says who nginx told it the customer is, and notes each path it serves."""

    def do_GET(self):
        self.server.seen.append(self.path)
        body = json.dumps({"path": self.path, "customer": self.headers.get("X-Tobira-Customer"),
                           "method": self.headers.get("X-Tobira-Auth-Method")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def wait_for(url: str, proc: subprocess.Popen, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited: {proc.stderr.read().decode(errors='replace')[-2000:]}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError(f"{what} did not answer {url}")


@pytest.fixture
def stack(tmp_path, mailsink):
    listen, tobira_port = free_port(), free_port()
    origin = f"http://localhost:{listen}"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TOBIRA_")},
           "TOBIRA_DATA_DIR": str(tmp_path), "TOBIRA_SECRET_KEY": secrets.token_urlsafe(40),
           "TOBIRA_ORIGIN": origin, "TOBIRA_SMTP_URL": mailsink.url, "TOBIRA_TRUSTED_PROXIES": "127.0.0.1",
           # Passkeys have been mandatory for a while: a legacy session must be stopped.
           "TOBIRA_PASSKEY_MANDATORY_FROM": "2026-01-05T09:00"}
    subprocess.run([sys.executable, "-m", "server", "user", "add", "TARO1234", "--email", "taro@example.com",
                    "--name", "山田 太郎", "--password-stdin"], input="correct horse battery\n", text=True,
                   env=env, cwd=tmp_path, check=True, capture_output=True)
    tobira = subprocess.Popen([sys.executable, "-m", "server", "serve", "--port", str(tobira_port)], env=env,
                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    trading = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    trading.seen = []
    threading.Thread(target=trading.serve_forever, daemon=True).start()
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"daemon off;\npid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/nginx-error.log;\n"
        + ("user root;\n" if os.geteuid() == 0 else "")
        + "events {}\nhttp {\naccess_log off;\n"
        + "".join(f"{kind}_temp_path {tmp_path}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi",
                                                                         "uwsgi", "scgi"))
        + readme_config(tobira_port, trading.server_address[1], listen) + "\n}\n")
    nginx = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(tmp_path)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    try:
        wait_for(f"http://127.0.0.1:{tobira_port}/login", tobira, "tobira")
        wait_for(f"http://127.0.0.1:{listen}/login", nginx, "nginx")
        yield SimpleNamespace(origin=origin, seen=trading.seen, env=env, cwd=tmp_path)
    finally:
        for proc in (nginx, tobira):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        trading.shutdown()


def client(origin: str) -> httpx.Client:
    return httpx.Client(base_url=origin, headers={"Origin": origin}, follow_redirects=False, timeout=10)


def raw_get(origin: str, path: str, cookies: httpx.Cookies | None = None) -> tuple[int, str | None]:
    """GET with the path exactly as written (httpx would tidy "//", "." and ".." away first)."""
    port = urlsplit(origin).port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", f"localhost:{port}")
        if cookies:
            conn.putheader("Cookie", "; ".join(f"{c.name}={c.value}" for c in cookies.jar))
        conn.endheaders()
        r = conn.getresponse()
        r.read()
        return r.status, r.getheader("Location")
    finally:
        conn.close()


def test_forward_auth_through_nginx(stack, mailsink):
    origin = stack.origin
    stranger = client(origin)
    # No session: every guarded path sends the browser to the login page, and back afterwards.
    for path in ("/trade/orders", "/withdraw/", "/balance"):
        r = stranger.get(path)
        assert r.status_code == 302 and r.headers["location"] in (f"/login?next={path}", f"{origin}/login?next={path}")
    # Spoofing the header the app trusts gets nothing either.
    assert stranger.get("/balance", headers={"X-Tobira-Customer": "TARO1234"}).status_code == 302

    c = client(origin)
    assert c.post("/api/login/password", json={"customer_code": "TARO1234",
                                               "password": "correct horse battery"}).json()["status"] == "code_sent"
    r = c.post("/api/login/code", json={"code": mailsink.last_code("taro@example.com")})
    assert r.json()["redirect"] == "/account/passkey-required"
    # A legacy session after the date: balances yes, trading and withdrawals no.
    r = c.get("/balance", headers={"X-Tobira-Customer": "SOMEONE-ELSE"})
    assert r.status_code == 200 and r.json() == {"path": "/balance", "customer": "TARO1234", "method": "email_code"}
    assert c.get("/trade/orders").status_code == 403
    assert c.get("/withdraw/").status_code == 403

    # It may still register a passkey; made from a code session, that passkey is on hold (a
    # phishing proxy could have added it): a login with it may not trade until the desk releases it.
    key = SoftKey(origin=origin)
    opts = c.post("/api/passkeys/register/options", json={}).json()["publicKey"]
    cred = key.create(b64url_decode(opts["challenge"]), user_handle=b64url_decode(opts["user"]["id"]))
    assert c.post("/api/passkeys/register/verify", json={"credential": cred}).status_code == 201

    def passkey_login():
        c.post("/api/logout")
        assert c.get("/trade/orders").status_code == 302
        opts = c.post("/api/login/passkey/options", json={}).json()["publicKey"]
        assert c.post("/api/login/passkey/verify", json=key.get(b64url_decode(opts["challenge"]))).status_code == 200

    passkey_login()
    assert c.get("/trade/orders").status_code == 403 and stack.seen[-1] == "/balance"
    subprocess.run([sys.executable, "-m", "server", "user", "release-hold", "TARO1234"], env=stack.env,
                   cwd=stack.cwd, check=True, capture_output=True)
    passkey_login()
    r = c.get("/trade/orders")
    assert r.status_code == 200 and r.json() == {"path": "/trade/orders", "customer": "TARO1234", "method": "passkey"}
    assert c.get("/withdraw/").json()["method"] == "passkey"
    # The wider guards still let a passkey session through, in any spelling the app may serve.
    for path in ("/trade", "/TRADE/x", "/Trade/orders?x=1", "/Withdraw"):
        assert raw_get(origin, path, c.cookies) == (200, None), path
    assert stack.seen[-4:] == ["/trade", "/TRADE/x", "/Trade/orders?x=1", "/Withdraw"]


# security.md 41: every spelling of a guarded path meets its guard, and never the app unguarded.
GUARDED = [  # nginx's normalised path starts with /trade or /withdraw: the important-operation check
    "/trade", "/trade/", "/trade/orders", "/TRADE/x", "/Trade", "/tRaDe/orders?x=1", "/trades", "/trade.json",
    "//trade", "//trade/orders", "///TRADE", "/%74rade/orders", "/tr%41de",
    "/withdraw", "/withdraw/", "/WITHDRAW/", "/Withdraw/x", "//withdraw/", "/withdrawal",
]
REFUSED = [  # nginx and the app could read these differently: 400 before any location is chosen
    "/./trade", "/x/../trade", "/trade/.", "/trade/..", "/trade/../balance", "/trade//..", "/balance/..?next=/trade",
    "/trade%2f..", "/trade%2F..%2Fbalance", "/balance%2f..%2ftrade", "/%2ftrade", "/%2e/trade", "/trade/%2E%2E",
    "/;/trade", "/x/..;/trade", "/trade;x", "/balance;/../trade", "/trade%3bx",
    "/\\trade", "/trade\\..", "/balance%5c..%5ctrade", "/x%252f..%252ftrade",
    "/withdraw/../balance", "/withdraw%2F..", "/WITHDRAW/./",
]


def test_every_spelling_of_a_guarded_path_meets_its_guard(stack, mailsink):
    origin = stack.origin
    # No session: the guard answers (401, which nginx turns into the way to the login page).
    for path in GUARDED:
        status, location = raw_get(origin, path)
        assert status == 302 and location in (f"/login?next={path}", f"{origin}/login?next={path}"), path
    for path in REFUSED:
        assert raw_get(origin, path)[0] == 400, path
    assert stack.seen == [], "the app served a request nobody had checked"

    # A legacy session after the passkey date: the session check alone would let it through
    # (see /balance below), so a 403 here is the important-operation check answering.
    c = client(origin)
    assert c.post("/api/login/password", json={"customer_code": "TARO1234",
                                               "password": "correct horse battery"}).json()["status"] == "code_sent"
    assert c.post("/api/login/code", json={"code": mailsink.last_code("taro@example.com")}).status_code == 200
    for path in GUARDED:
        assert raw_get(origin, path, c.cookies) == (403, None), path
    for path in REFUSED:
        assert raw_get(origin, path, c.cookies)[0] == 400, path
    assert stack.seen == []
    assert raw_get(origin, "/balance", c.cookies) == (200, None) and stack.seen == ["/balance"]
