"""TOBIRA_RATE_LIMIT: failed sign-ins per client address → 429 rate_limited, before any hashing."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from conftest import ORIGIN, PASSWORD, add_customer


def attempt(c, pw="wrong password", code="TARO1234"):
    return c.post("/api/login/password", json={"customer_code": code, "password": pw})


@pytest.fixture
def limited(make_app):
    app = make_app(rate_limit=(5, 60), lock_after_failures=100)
    add_customer(app)
    return app


def client_from(app, ip):
    return TestClient(app, headers={"Origin": ORIGIN}, client=(ip, 50000))


def test_failures_over_the_limit_are_refused_before_hashing(limited, monkeypatch):
    hashed = []
    hasher = limited.state.ctx.passwords._hasher

    class Spy:
        def verify(self, h, p):
            hashed.append(1)
            return hasher.verify(h, p)

    monkeypatch.setattr(limited.state.ctx.passwords, "_hasher", Spy())
    with client_from(limited, "203.0.113.7") as c:
        assert [attempt(c).status_code for _ in range(5)] == [401] * 5
        r = attempt(c, pw=PASSWORD)
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(r.headers["retry-after"]) <= 60 and r.json()["error"]["retry_after"] >= 1
        assert len(hashed) == 5, "the refused attempt cost no argon2id"


def test_unknown_customers_count_too(limited):
    with client_from(limited, "203.0.113.8") as c:
        for i in range(5):
            attempt(c, code=f"NOBODY{i:02d}")
        assert attempt(c).status_code == 429


def test_other_addresses_are_not_affected(limited):
    with client_from(limited, "203.0.113.9") as bad:
        for _ in range(6):
            attempt(bad)
    with client_from(limited, "198.51.100.1") as good:
        assert attempt(good, pw=PASSWORD).json()["status"] == "code_sent"


def test_successes_do_not_count(limited):
    with client_from(limited, "203.0.113.10") as c:
        for _ in range(8):
            assert attempt(c, pw=PASSWORD).status_code == 200


def test_the_window_passes(limited, clock):
    with client_from(limited, "203.0.113.11") as c:
        for _ in range(5):
            attempt(c)
        assert attempt(c).status_code == 429
        clock.advance(61)
        assert attempt(c, pw=PASSWORD).status_code == 200


def test_wrong_codes_count(limited, mailsink):
    with client_from(limited, "203.0.113.12") as c:
        attempt(c, pw=PASSWORD)
        for _ in range(3):
            c.post("/api/login/code", json={"code": "000000"} )
        for _ in range(2):
            attempt(c)
        r = c.post("/api/login/code", json={"code": mailsink.last_code("taro@example.com")})
        assert r.status_code == 429


def test_zero_turns_it_off(make_app):
    app = make_app(rate_limit=None, lock_after_failures=100)
    add_customer(app)
    with client_from(app, "203.0.113.13") as c:
        assert all(attempt(c).status_code == 401 for _ in range(40))


def test_proxy_address_is_trusted_only_when_configured(make_app):
    import ipaddress
    app = make_app(rate_limit=(2, 60), trusted_proxies=(ipaddress.ip_network("10.0.0.0/8"),))
    add_customer(app)
    with client_from(app, "10.1.2.3") as proxy:  # a trusted proxy: X-Forwarded-For names the client
        proxy.headers["X-Forwarded-For"] = "203.0.113.20"
        assert [attempt(proxy).status_code for _ in range(2)] == [401, 401]
        assert attempt(proxy).status_code == 429
        proxy.headers["X-Forwarded-For"] = "198.51.100.20"  # another customer behind the same proxy
        assert attempt(proxy).status_code == 401
    with client_from(app, "192.0.2.50") as direct:  # not a proxy: its X-Forwarded-For is ignored
        direct.headers["X-Forwarded-For"] = "198.51.100.99"
        attempt(direct)
        attempt(direct)
        direct.headers["X-Forwarded-For"] = "198.51.100.77"
        assert attempt(direct).status_code == 429
