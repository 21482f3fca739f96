"""/metrics (contract: "Numbers"): Prometheus text on TOBIRA_METRICS_LISTEN only, the counts of
every worker added up, and the outbox read from the database."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time

import httpx
import pytest

from server.config import ConfigError, load_settings
from mailsink import free_port

PASSWORD = "correct horse battery"


def value(text: str, name: str, **labels) -> float:
    """The sample `name{labels}` of a Prometheus text page (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(wanted) + r"\}" if wanted else "") + r" ([0-9.e+-]+)$"
    found = re.search(pattern, text, re.M)
    return float(found.group(1)) if found else 0.0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_metrics_add_up_the_workers_and_stay_off_the_public_port(tmp_path, mailsink, database_url):
    port, metrics_port = free_port(), free_port()
    origin = "http://localhost:8000"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TOBIRA_")},
           "TOBIRA_DATA_DIR": str(tmp_path), "TOBIRA_DATABASE_URL": database_url, "TOBIRA_ORIGIN": origin,
           "TOBIRA_SECRET_KEY": secrets.token_urlsafe(40), "TOBIRA_SMTP_URL": "smtp://127.0.0.1:9",  # mail waits
           "TOBIRA_METRICS_LISTEN": f"127.0.0.1:{metrics_port}"}
    subprocess.run([sys.executable, "-m", "server", "user", "add", "TARO1234", "--email", "taro@example.com",
                    "--name", "山田 太郎", "--password-stdin"], input=PASSWORD + "\n", text=True, env=env,
                   cwd=tmp_path, check=True, capture_output=True)
    proc = subprocess.Popen([sys.executable, "-m", "server", "serve", "--port", str(port), "--workers", "2"],
                            env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base, metrics_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/metrics"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stderr.read().decode(errors="replace")[-2000:]
            try:
                httpx.get(base + "/healthz", timeout=1)
                httpx.get(metrics_url, timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "server or metrics did not start"
                time.sleep(0.1)
        # Failed passwords over new connections: the two workers share them out, the endpoint adds up.
        for _ in range(6):
            with httpx.Client(base_url=base, headers={"Origin": origin}) as c:
                r = c.post("/api/login/password", json={"customer_code": "TARO1234", "password": "wrong password"})
                assert r.status_code == 401
        text = httpx.get(metrics_url).text
        assert value(text, "tobira_sign_ins_total", method="password", outcome="failed") == 6
        assert value(text, "tobira_refusals_total", code="invalid_credentials") == 6
        assert "tobira_outbox_depth 0.0" in text
        assert httpx.get(base + "/metrics").status_code == 404  # never on the public port
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_the_outbox_gauges_read_the_queue(app, clock):
    from prometheus_client import CollectorRegistry, generate_latest

    from server import metrics, store_outbox

    db = app.state.ctx.db
    registry = CollectorRegistry()
    registry.register(metrics._Outbox(db, clock))
    assert value(generate_latest(registry).decode(), "tobira_outbox_depth") == 0
    db.run_sync(store_outbox.enqueue_mail, kind="login", to_addr="a@example.com", message="x", when=clock())
    clock.advance(90)
    db.run_sync(store_outbox.enqueue_mail, kind="login", to_addr="b@example.com", message="y", when=clock())
    text = generate_latest(registry).decode()
    assert value(text, "tobira_outbox_depth") == 2 and value(text, "tobira_outbox_oldest_seconds") == 90


@pytest.mark.parametrize("raw", ["9100", "localhost", "127.0.0.1:0", "127.0.0.1:99999", ":9100"])
def test_a_bad_listen_address_is_refused(raw, tmp_path):
    with pytest.raises(ConfigError, match="TOBIRA_METRICS_LISTEN"):
        load_settings({"TOBIRA_DATA_DIR": str(tmp_path), "TOBIRA_SECRET_KEY": "s" * 40,
                       "TOBIRA_METRICS_LISTEN": raw}, dotenv=None)
