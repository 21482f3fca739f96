"""Rate limits (server/ratelimit.py): failed sign-ins per address and per customer code, code
e-mails per customer and per address, in the database or in Redis; `429 rate_limited` with
`Retry-After`, `503 unavailable` when the counters cannot be reached."""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
import time
import uuid

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from server import ceremonies, store
from server.app import create_app
from server.config import load_settings
from server.mail import SmtpMailer
from server.models import OneTimeCode, Session
from softkey import ES256, SoftKey, b64url_decode
from conftest import ORIGIN, PASSWORD, add_customer, login


def attempt(c, pw="wrong password", code="TARO1234"):
    return c.post("/api/login/password", json={"customer_code": code, "password": pw})


def client_from(app, ip):
    return TestClient(app, headers={"Origin": ORIGIN}, client=(ip, 50000))


def address(i: int) -> str:
    """A different client address for each i (TEST-NET-3 and beyond)."""
    return str(ipaddress.ip_address("203.0.113.0") + i)


def from_address(app, i, **kw):
    with client_from(app, address(i)) as c:
        return attempt(c, **kw)


def rows(app, model):
    return app.state.ctx.db.run_sync(lambda d: list(d.execute(select(model))))


def assert_limited(r, code="rate_limited", most=None):
    """429 with the contract's body and a Retry-After header equal to its retry_after."""
    assert r.status_code == 429, r.text
    error = r.json()["error"]
    assert error["code"] == code and isinstance(error["retry_after"], int) and error["retry_after"] >= 1
    assert r.headers["retry-after"] == str(error["retry_after"])
    if most is not None:
        assert error["retry_after"] <= most
    return error


def wrong(code):
    return f"{(int(code) + 1) % 1_000_000:06d}"


# --- failed sign-ins per client address (TOBIRA_RATE_LIMIT) ---------------------------------


@pytest.fixture
def limited(make_app):
    app = make_app(rate_limit=(5, 60), lock_after_failures=100, customer_rate_limit=None)
    add_customer(app)
    return app


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
        error = assert_limited(attempt(c, pw=PASSWORD), most=60)
        assert set(error) == {"code", "message", "retry_after"} and error["message"]
        assert len(hashed) == 5, "the refused attempt cost no argon2id"


def test_the_message_says_how_long_in_the_requests_language(limited):
    with client_from(limited, "203.0.113.6") as c:
        for _ in range(5):
            attempt(c)
        ja = attempt(c).json()["error"]
        en = c.post("/api/login/password?lang=en", json={"customer_code": "TARO1234", "password": "x"}).json()["error"]
    assert f"{ja['retry_after']}秒" in ja["message"]
    assert en["message"] == f"Too many failed attempts. Please try again in {en['retry_after']} seconds."


def test_unknown_customers_count_too(limited):
    with client_from(limited, "203.0.113.8") as c:
        for i in range(5):
            attempt(c, code=f"NOBODY{i:02d}")
        assert_limited(attempt(c))


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
        assert_limited(attempt(c))
        clock.advance(61)
        assert attempt(c, pw=PASSWORD).status_code == 200


def test_junk_login_responses_count_as_failures(limited):
    """A flood of malformed or oversized "passkey responses" from one address is refused like a
    flood of guesses, and then before its body is read."""
    junk = [b"[]", b'{"id": 5}', b'{"id": "' + b"A" * 40000 + b'"}']
    with client_from(limited, "203.0.113.21") as c:
        c.post("/api/login/passkey/options", json={})
        statuses = [c.post("/api/login/passkey/verify", content=junk[i % 3],
                           headers={"Content-Type": "application/json"}).status_code for i in range(5)]
        assert statuses == [400] * 5
        assert_limited(c.post("/api/login/passkey/verify", json={}))
        assert_limited(attempt(c, pw=PASSWORD))  # the same address's failures, whatever their kind


def test_a_known_refusal_is_answered_late_without_a_round_trip(limited, monkeypatch):
    """The first refusal reads the shared counter; later ones come from memory, each a second
    late (a flood is held to one request per connection per second)."""
    import server.ratelimit as ratelimit

    slept = []

    async def fake_sleep(seconds):
        slept.append(seconds)

    monkeypatch.setattr(ratelimit.asyncio, "sleep", fake_sleep)
    throttle = limited.state.ctx.throttle
    throttle.tarpit_seconds = 1.0
    reads = []
    real_test = throttle.limiter.test
    monkeypatch.setattr(throttle.limiter, "test", lambda *a: reads.append(1) or real_test(*a))
    with client_from(limited, "203.0.113.22") as c:
        for _ in range(5):
            attempt(c)
        assert_limited(attempt(c))
        assert slept == [] and reads, "the first refusal came from the shared counter, at once"
        reads.clear()
        for _ in range(3):
            assert_limited(attempt(c))
        assert slept == [1.0] * 3 and reads == [], "known refusals: from memory, late"


def test_wrong_codes_count(limited, mailsink):
    with client_from(limited, "203.0.113.12") as c:
        attempt(c, pw=PASSWORD)
        for _ in range(3):
            c.post("/api/login/code", json={"code": "000000"})
        for _ in range(2):
            attempt(c)
        assert_limited(c.post("/api/login/code", json={"code": mailsink.last_code("taro@example.com")}))


def test_rejected_passkeys_count_and_verify_is_refused_before_any_check(make_app, mailsink, monkeypatch):
    app = make_app(rate_limit=(3, 60))
    add_customer(app)
    key = SoftKey(ES256)
    with client_from(app, "198.51.100.30") as owner:
        login(owner, mailsink)
        opts = owner.post("/api/passkeys/register/options", json={}).json()["publicKey"]
        credential = key.create(b64url_decode(opts["challenge"]), user_handle=b64url_decode(opts["user"]["id"]))
        assert owner.post("/api/passkeys/register/verify", json={"credential": credential}).status_code == 201

    def flip(parts):
        parts["signature"] = parts["signature"][:-1] + bytes([parts["signature"][-1] ^ 1])

    def passkey_login(c, **overrides):
        opts = c.post("/api/login/passkey/options", json={}).json()["publicKey"]
        return c.post("/api/login/passkey/verify", json=key.get(b64url_decode(opts["challenge"]), **overrides))

    checked = []
    real = ceremonies.verify.verify_authentication
    monkeypatch.setattr(ceremonies.verify, "verify_authentication", lambda **kw: checked.append(1) or real(**kw))
    with client_from(app, "203.0.113.30") as c:
        assert [passkey_login(c, tamper=flip).status_code for _ in range(3)] == [401] * 3
        assert_limited(passkey_login(c))  # even a good assertion, once the address is over
        assert len(checked) == 3, "the refused attempt was not verified"
    with client_from(app, "198.51.100.31") as other:
        assert passkey_login(other).status_code == 200


def test_zero_turns_it_off(make_app):
    app = make_app(rate_limit=None, lock_after_failures=100, customer_rate_limit=None)
    add_customer(app)
    with client_from(app, "203.0.113.13") as c:
        assert all(attempt(c).status_code == 401 for _ in range(40))


def test_proxy_address_is_trusted_only_when_configured(make_app):
    app = make_app(rate_limit=(2, 60), trusted_proxies=(ipaddress.ip_network("10.0.0.0/8"),))
    add_customer(app)
    with client_from(app, "10.1.2.3") as proxy:  # a trusted proxy: X-Forwarded-For names the client
        proxy.headers["X-Forwarded-For"] = "203.0.113.20"
        assert [attempt(proxy).status_code for _ in range(2)] == [401, 401]
        assert_limited(attempt(proxy))
        proxy.headers["X-Forwarded-For"] = "198.51.100.20"  # another customer behind the same proxy
        assert attempt(proxy).status_code == 401
    with client_from(app, "192.0.2.50") as direct:  # not a proxy: its X-Forwarded-For is ignored
        direct.headers["X-Forwarded-For"] = "198.51.100.99"
        attempt(direct)
        attempt(direct)
        direct.headers["X-Forwarded-For"] = "198.51.100.77"
        assert_limited(attempt(direct))


# --- failed sign-ins per customer code (TOBIRA_CUSTOMER_RATE_LIMIT) -------------------------


def test_one_customer_code_from_many_addresses_is_limited(make_app, clock):
    app = make_app(customer_rate_limit=(4, 900), lock_after_failures=100)
    add_customer(app)
    # Each try from another client address: the address limit never trips.
    for i in range(4):
        assert from_address(app, i).status_code == 401
    assert_limited(from_address(app, 50, pw=PASSWORD), most=900)
    with client_from(app, "10.0.0.1") as c:  # any address, the right password: still refused
        assert_limited(attempt(c, pw=PASSWORD))
    assert from_address(app, 51, code="HANA5678").status_code == 401, "other customer codes are not affected"
    clock.advance(901)
    assert from_address(app, 52, pw=PASSWORD).json()["status"] == "code_sent"


def test_through_a_proxy_with_x_forwarded_for(make_app):
    app = make_app(customer_rate_limit=(3, 900), lock_after_failures=100,
                   trusted_proxies=(ipaddress.ip_network("10.0.0.0/8"),))
    add_customer(app)
    with client_from(app, "10.9.9.9") as proxy:
        for i in range(3):
            proxy.headers["X-Forwarded-For"] = address(100 + i)
            assert attempt(proxy).status_code == 401
        proxy.headers["X-Forwarded-For"] = address(200)
        assert_limited(attempt(proxy))


def test_an_unknown_customer_code_is_limited_the_same_way(make_app):
    """No enumeration: the same answers, status, body and header, whether the code exists or not."""
    app = make_app(customer_rate_limit=(4, 900), lock_after_failures=100)
    add_customer(app)
    known = [from_address(app, i).status_code for i in range(4)]
    unknown = [from_address(app, 10 + i, code="NOBODY99").status_code for i in range(4)]
    assert known == unknown == [401] * 4
    a, b = from_address(app, 20), from_address(app, 21, code="NOBODY99")
    assert_limited(a)
    assert_limited(b)
    assert a.json() == b.json() and a.headers["retry-after"] == b.headers["retry-after"]


def test_a_code_no_customer_can_have_is_not_counted_per_customer(make_app):
    app = make_app(customer_rate_limit=(2, 900), lock_after_failures=100)
    for i in range(4):  # too long for a customer code: the address limit still applies
        assert from_address(app, i, code="x" * 200).status_code == 401


def test_never_refused_before_the_lockout_would_lock(make_app, settings, mailsink, clock):
    """With the defaults: failures 1..10 answer 401 and the 10th locks; after a lock every password,
    right or wrong, answers 401 until the limit, twice the lockout, is used up."""
    assert (settings.lock_after_failures, settings.customer_rate_limit) == (10, (20, 900))
    app = make_app()
    customer = add_customer(app)
    db = app.state.ctx.db
    for i in range(1, 11):
        assert db.run_sync(store.user_by_id, customer.id).locked_at is None
        r = from_address(app, i)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_credentials", i
    assert db.run_sync(store.user_by_id, customer.id).locked_at is not None
    mailsink.wait_for(lambda m: "ロック" in str(m["Subject"]))
    assert from_address(app, 11, pw=PASSWORD).status_code == 401
    for i in range(12, 21):  # failures 11..20: still the contract's answers
        assert from_address(app, 100 + i).status_code == 401
    assert_limited(from_address(app, 200, pw=PASSWORD), most=900)  # the 21st try: the limit
    clock.advance(901)
    assert from_address(app, 202, pw=PASSWORD).status_code == 401, "the window passed; the lock stays"


def test_catches_failures_interleaved_with_the_customers_logins(make_app, mailsink, clock):
    """9 guesses, a real login (which resets the lockout's count), 9 more, a login, 2 more: the
    account never locks, but the 21st failure in the window is refused."""
    app = make_app()
    customer = add_customer(app)
    guesses = 0
    for burst in (9, 9, 2):
        for _ in range(burst):
            guesses += 1
            assert from_address(app, guesses).status_code == 401
        if burst == 9:
            clock.advance(31)
            with client_from(app, "198.51.100.77") as real:
                login(real, mailsink)
    assert guesses == 20 and app.state.ctx.db.run_sync(store.user_by_id, customer.id).locked_at is None
    assert_limited(from_address(app, 99))
    clock.advance(901)
    assert from_address(app, 98).status_code == 401


def test_wrong_codes_count_per_customer_and_code_entry_is_checked(make_app, mailsink, clock):
    app = make_app(rate_limit=None, customer_rate_limit=(4, 900), lock_after_failures=100)
    add_customer(app)
    with client_from(app, address(1)) as c:
        assert attempt(c, pw=PASSWORD).json()["status"] == "code_sent"
        code = mailsink.last_code("taro@example.com")
        for _ in range(3):
            assert c.post("/api/login/code", json={"code": wrong(code)}).status_code == 400
        clock.advance(31)
        assert c.post("/api/login/code/resend").status_code == 200
        code = mailsink.last_code("taro@example.com")
        assert c.post("/api/login/code", json={"code": wrong(code)}).status_code == 400
        assert_limited(c.post("/api/login/code", json={"code": code}))  # even the right one
        assert c.get("/api/session").status_code == 401
    assert_limited(from_address(app, 2, pw=PASSWORD)), "the customer's failures count at the password too"


def test_wrong_step_up_codes_count_per_customer(make_app, mailsink, clock):
    app = make_app(rate_limit=None, customer_rate_limit=(3, 900), lock_after_failures=100)
    add_customer(app)
    with client_from(app, address(1)) as c:
        login(c, mailsink)
        assert c.post("/api/step-up/code/send").status_code == 200
        code = mailsink.last_code("taro@example.com")
        for _ in range(3):
            assert c.post("/api/step-up/code", json={"code": wrong(code)}).status_code == 400
        clock.advance(31)
        assert c.post("/api/step-up/code/send").status_code == 200
        assert_limited(c.post("/api/step-up/code", json={"code": mailsink.last_code("taro@example.com")}))


def test_rejected_passkeys_do_not_count_per_customer(make_app, mailsink):
    """A signature is not a guessable secret, and the lockout ignores rejected passkeys: counting
    them per customer would let anyone holding a credential ID refuse its owner."""
    app = make_app(customer_rate_limit=(2, 900))
    add_customer(app)
    key = SoftKey(ES256)
    with client_from(app, address(1)) as owner:
        login(owner, mailsink)
        opts = owner.post("/api/passkeys/register/options", json={}).json()["publicKey"]
        credential = key.create(b64url_decode(opts["challenge"]), user_handle=b64url_decode(opts["user"]["id"]))
        assert owner.post("/api/passkeys/register/verify", json={"credential": credential}).status_code == 201
    for i in range(5):
        with client_from(app, address(10 + i)) as c:
            opts = c.post("/api/login/passkey/options", json={}).json()["publicKey"]
            r = c.post("/api/login/passkey/verify", json=key.get(b64url_decode(opts["challenge"]), user_handle=None))
            assert r.status_code == 401
    assert from_address(app, 20, pw=PASSWORD).json()["status"] == "code_sent"


# --- code e-mails (TOBIRA_CODE_SEND_LIMIT, TOBIRA_CODE_SEND_ADDRESS_LIMIT) ------------------


def test_code_mails_per_customer_count_logins_and_resends(make_app, mailsink, clock):
    app = make_app(code_send_limit=(3, 3600))
    add_customer(app)
    with client_from(app, address(1)) as c:
        assert attempt(c, pw=PASSWORD).json()["status"] == "code_sent"
        clock.advance(31)
        assert c.post("/api/login/code/resend").status_code == 200
    assert from_address(app, 2, pw=PASSWORD).json()["status"] == "code_sent"
    pending_before, codes_before = len(rows(app, Session)), len(rows(app, OneTimeCode))
    mails_before = len(mailsink.to("taro@example.com"))
    with client_from(app, address(3)) as c:
        error = assert_limited(attempt(c, pw=PASSWORD), most=3600)
        assert "tobira_session" not in c.cookies, "no pending login handed out"
    assert "確認コード" in error["message"]
    assert (len(rows(app, Session)), len(rows(app, OneTimeCode))) == (pending_before, codes_before)
    time.sleep(0.2)
    assert len(mailsink.to("taro@example.com")) == mails_before == 3
    clock.advance(3601)
    assert from_address(app, 4, pw=PASSWORD).json()["status"] == "code_sent"


def test_a_refused_resend_keeps_the_code_already_sent(make_app, mailsink, clock):
    app = make_app(code_send_limit=(1, 3600))
    add_customer(app)
    with client_from(app, address(1)) as c:
        attempt(c, pw=PASSWORD)
        code = mailsink.last_code("taro@example.com")
        clock.advance(31)
        assert_limited(c.post("/api/login/code/resend"))
        assert c.post("/api/login/code", json={"code": code}).status_code == 200


def test_resend_too_soon_keeps_its_code_and_gets_the_header(client, customer, mailsink):
    attempt(client, pw=PASSWORD)
    error = assert_limited(client.post("/api/login/code/resend"), code="resend_too_soon", most=30)
    assert error["retry_after"] == 30


def test_code_mails_per_address(make_app, mailsink):
    app = make_app(code_send_limit=None, code_send_address_limit=(2, 3600))
    for code, mail in (("AAAA1111", "a@example.com"), ("BBBB2222", "b@example.com"), ("CCCC3333", "c@example.com")):
        add_customer(app, code=code, email=mail)
    with client_from(app, "203.0.113.40") as c:
        assert attempt(c, pw=PASSWORD, code="AAAA1111").json()["status"] == "code_sent"
        assert attempt(c, pw=PASSWORD, code="BBBB2222").json()["status"] == "code_sent"
        before = len(rows(app, Session))
        assert_limited(attempt(c, pw=PASSWORD, code="CCCC3333"))
        assert len(rows(app, Session)) == before
    assert not mailsink.to("c@example.com")
    with client_from(app, "198.51.100.40") as elsewhere:
        assert attempt(elsewhere, pw=PASSWORD, code="CCCC3333").json()["status"] == "code_sent"


def test_step_up_codes_count_toward_the_customers_mails(make_app, mailsink, clock):
    app = make_app(code_send_limit=(2, 3600))
    add_customer(app)
    with client_from(app, address(1)) as c:
        login(c, mailsink)  # the first mail
        assert c.post("/api/step-up/code/send").status_code == 200  # the second
        code = mailsink.last_code("taro@example.com")
        clock.advance(31)
        assert_limited(c.post("/api/step-up/code/send"), most=3600)
        assert c.post("/api/step-up/code", json={"code": code}).status_code == 200, "the sent code still works"


# --- storage: Redis, and a storage that does not answer ---------------------------------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_redis_down_answers_503_unavailable(make_app, customer):
    app = make_app(redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    with client_from(app, address(1)) as c:
        for r in (attempt(c, pw=PASSWORD), attempt(c), c.post("/api/login/code", json={"code": "123456"})):
            assert r.status_code == 503 and r.json()["error"]["code"] == "unavailable", r.text
    assert not rows(app, Session), "nothing made"


REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture
def redis_apps(settings, clock, passwords):
    """make(**overrides) -> an app on the shared Redis; all apps of one test share a key prefix."""
    import redis

    try:
        redis.Redis.from_url(REDIS, socket_connect_timeout=1).ping()
    except Exception as exc:  # noqa: BLE001 - any reason means: no Redis to test against
        print(f"\nRedis tests skipped: no server at {REDIS} ({type(exc).__name__}: {exc})")
        pytest.skip(f"no Redis at {REDIS}")
    prefix = f"tobira-test-{uuid.uuid4().hex}"
    made = []

    def make(**overrides):
        s = dataclasses.replace(settings, redis_url=REDIS, redis_key_prefix=prefix, **overrides)
        app = create_app(s, clock=clock, passwords=passwords, mailer=SmtpMailer(s.smtp))
        made.append(app)
        return app

    yield make
    if made:
        made[0].state.ctx.throttle.storage.reset()  # limits' own: deletes the keys under this prefix only


def test_two_instances_count_together_in_redis(redis_apps):
    one, two = (redis_apps(rate_limit=(3, 60), customer_rate_limit=(5, 60), lock_after_failures=100)
                for _ in range(2))
    add_customer(one)
    with client_from(one, "203.0.113.60") as a, client_from(two, "203.0.113.60") as b:
        assert [attempt(a).status_code, attempt(b).status_code, attempt(a).status_code] == [401] * 3
        assert_limited(attempt(b), most=60)
    # Per customer, from other addresses, across both instances (three failures are counted already).
    assert from_address(one, 1).status_code == 401
    assert from_address(two, 2).status_code == 401
    assert_limited(from_address(one, 3, pw=PASSWORD), most=60)


def test_code_mails_are_shared_in_redis(redis_apps, mailsink):
    one, two = (redis_apps(code_send_limit=(2, 60)) for _ in range(2))
    add_customer(one)
    assert from_address(one, 1, pw=PASSWORD).json()["status"] == "code_sent"
    assert from_address(two, 2, pw=PASSWORD).json()["status"] == "code_sent"
    assert_limited(from_address(one, 3, pw=PASSWORD))
    assert len(mailsink.to("taro@example.com")) == 2


def test_the_redis_window_passes(redis_apps):
    app = redis_apps(rate_limit=(2, 2), customer_rate_limit=None, lock_after_failures=100)
    add_customer(app)
    with client_from(app, "203.0.113.61") as c:
        attempt(c)
        attempt(c)
        wait = assert_limited(attempt(c), most=2)["retry_after"]
        time.sleep(wait + 0.3)
        assert attempt(c).status_code == 401


def test_settings_pick_the_storage(settings, tmp_path):
    from limits.storage import RedisStorage

    from server.ratelimit import SqlStorage, make_storage

    assert isinstance(make_storage(settings, None, None), SqlStorage)
    with_redis = load_settings({"TOBIRA_DATA_DIR": str(tmp_path), "TOBIRA_REDIS_URL": "redis://127.0.0.1:1/3"},
                               dotenv=None)
    assert isinstance(make_storage(with_redis, None, None), RedisStorage)
