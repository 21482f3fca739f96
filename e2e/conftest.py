"""Browser tests: a real `tobira serve` subprocess, a real SMTP sink, Debian's Chromium via Playwright.

Each test gets its own data directory, database, mail sink and server, so tests never share state.
Pages are opened at http://localhost:<port> (never 127.0.0.1): that is the configured origin, and the
host WebAuthn accepts over plain http.
"""

from __future__ import annotations

import os
import secrets
import string
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from mailsink import free_port  # noqa: E402

from .support import (CHROMIUM, CHROMIUM_ARGS, CUSTOMER_CODE, DESKTOP, EMAIL, NAME, PASSWORD,  # noqa: E402
                      SCREENSHOTS, Authenticators, add_virtual_authenticator)

STARTUP_TIMEOUT = 20.0


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "server_env(**settings): TOBIRA_* variables for this test's `server`, e.g. "
                   "@pytest.mark.server_env(TOBIRA_STEP_UP_WINDOW=3)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Let fixtures see whether the test failed (item.rep_setup / rep_call / rep_teardown)."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def _failed(request) -> bool:
    return any(getattr(request.node, f"rep_{when}", None) is not None
               and getattr(request.node, f"rep_{when}").failed for when in ("setup", "call"))


@dataclass
class Server:
    url: str
    env: dict[str, str]
    process: subprocess.Popen
    stderr_path: Path
    stdout_path: Path

    def stderr_tail(self, lines: int = 60) -> str:
        out = []
        for path in (self.stdout_path, self.stderr_path):
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {path.name} (last {len(text)} lines) ---\n" + "\n".join(text))
        return "\n".join(out)


def _server_env(tmp_path: Path, port: int, smtp_url: str) -> dict[str, str]:
    # The machine's own TOBIRA_* variables must not leak into the server under test.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOBIRA_")}
    alphabet = string.ascii_letters + string.digits
    env.update({
        "TOBIRA_DATA_DIR": str(tmp_path),
        "TOBIRA_DATABASE_URL": f"sqlite:///{tmp_path / 'tobira.db'}",
        "TOBIRA_ORIGIN": f"http://localhost:{port}",
        "TOBIRA_SECRET_KEY": "".join(secrets.choice(alphabet) for _ in range(48)),
        "TOBIRA_SMTP_URL": smtp_url,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "PYTHONUNBUFFERED": "1",
    })
    return env


def _cli(env: dict[str, str], cwd: Path, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run([sys.executable, "-m", "server", *args], env=env, cwd=cwd, input=stdin,
                            capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise AssertionError(f"`tobira {' '.join(args)}` exited {result.returncode}:\n"
                             f"{result.stdout}\n{result.stderr}")
    return result.stdout


def _wait_until_up(server: Server, timeout: float = STARTUP_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"server exited with {server.process.returncode} before answering\n"
                                 + server.stderr_tail())
        try:
            with urllib.request.urlopen(server.url + "/login", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
            last_error = exc
        time.sleep(0.1)
    raise AssertionError(f"server did not answer GET /login within {timeout}s ({last_error!r})\n"
                         + server.stderr_tail())


@pytest.fixture
def server(tmp_path, mailsink, request):
    """A running `tobira serve` with one customer (TARO1234 / taro@example.com / 山田 太郎)."""
    port = free_port()
    env = _server_env(tmp_path, port, mailsink.url)
    marker = request.node.get_closest_marker("server_env")
    if marker is not None:
        # "{port}" in a value is this server's port (e.g. a related origin on another host name).
        env.update({name: str(value).format(port=port) for name, value in marker.kwargs.items()})
    # The working directory is the temporary one, so no stray .env file can change the settings.
    _cli(env, tmp_path, "user", "add", CUSTOMER_CODE, "--email", EMAIL, "--name", NAME, "--password-stdin",
         stdin=PASSWORD + "\n")

    stdout_path, stderr_path = tmp_path / "server.stdout", tmp_path / "server.stderr"
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "server", "serve", "--port", str(port), "--host", "127.0.0.1"],
            env=env, cwd=tmp_path, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    srv = Server(url=f"http://localhost:{port}", env=env, process=process, stderr_path=stderr_path,
                 stdout_path=stdout_path)
    try:
        _wait_until_up(srv)
        yield srv
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if _failed(request):
            print(f"\n=== tobira server output ({srv.url}) ===\n{srv.stderr_tail()}")


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium package (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def context(browser):
    """A fresh browser profile (no cookies) at a desktop size, Japanese by default."""
    ctx = browser.new_context(viewport=DESKTOP, locale="ja-JP")
    ctx.set_default_timeout(10_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context):
    return context.new_page()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS



@pytest.fixture
def virtual_authenticator(page):
    """(cdp_session, authenticator_id) of a virtual platform authenticator on `page`, for passkey tests."""
    cdp, authenticator_id = add_virtual_authenticator(page)
    yield cdp, authenticator_id
    try:
        cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": authenticator_id})
    except Exception:
        pass  # the page is gone already


@pytest.fixture
def authenticators(page):
    """Virtual authenticators on `page`, one plugged in at a time (see support.Authenticators)."""
    bench = Authenticators(page)
    yield bench
    bench.close()
