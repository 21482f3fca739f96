"""Faults, with real processes: the database going away and coming back (a private PostgreSQL
cluster the tests stop, crash and freeze), the SMTP server down, a server process killed in the
middle of a ceremony, and a graceful stop on SIGTERM (one process and `--workers 2`)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from faultkit import (PASSWORD, Browser, ControlledSink, PrivatePostgres, Server, add_customers, body,
                      postgres_bindir, server_env)
from softkey import SoftKey, b64url_decode

TARO = ("TARO1234", "taro@example.com")
BOUNDED = 8.0  # seconds: the longest any answer may take while something is down


# --- helpers ---------------------------------------------------------------------------------


def is_code_mail(msg) -> bool:
    return re.search(r"^\d{6}\r?$", body(msg), re.M) is not None


def log_in_with_code(b: Browser, sink: ControlledSink, customer: tuple[str, str] = TARO) -> None:
    r = b.post("/api/login/password", {"customer_code": customer[0], "password": PASSWORD})
    assert r.status_code == 200 and r.json()["status"] == "code_sent", r.text
    r = b.post("/api/login/code", {"code": sink.last_code(customer[1])})
    assert r.status_code == 200, r.text


def begin_registration(b: Browser, key: SoftKey) -> dict:
    r = b.post("/api/passkeys/register/options")
    assert r.status_code == 200, r.text
    opts = r.json()["publicKey"]
    return key.create(b64url_decode(opts["challenge"]), user_handle=b64url_decode(opts["user"]["id"]))


def register(b: Browser, key: SoftKey) -> None:
    r = b.post("/api/passkeys/register/verify", {"credential": begin_registration(b, key)})
    assert r.status_code == 201, r.text


def begin_passkey_login(b: Browser, key: SoftKey) -> dict:
    r = b.post("/api/login/passkey/options")
    assert r.status_code == 200, r.text
    return key.get(b64url_decode(r.json()["publicKey"]["challenge"]))


def passkey_login(base: str, key: SoftKey) -> Browser:
    b = Browser(base)
    r = b.post("/api/login/passkey/verify", begin_passkey_login(b, key))
    assert r.status_code == 200, r.text
    return b


def timed(call):
    started = time.monotonic()
    r = call()
    return r, time.monotonic() - started


def assert_unavailable(r: httpx.Response, took: float) -> None:
    assert took < BOUNDED, f"took {took:.1f}s"
    assert r.status_code == 503, r.text
    error = r.json()["error"]
    assert error["code"] == "unavailable" and isinstance(error["message"], str) and error["message"], r.text


def wait_until(predicate, within: float, what: str):
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {within}s: {what}"
        time.sleep(0.1)


def ready(url: str) -> bool:
    try:
        return httpx.get(url + "/readyz", timeout=BOUNDED).status_code == 200
    except httpx.HTTPError:
        return False


def no_500s(server: Server) -> None:
    log = server.log()
    assert '"status": 500' not in log and "unhandled error" not in log, log[-3000:]


def query(database_url: str, statement: str) -> list[tuple]:
    from server import db as dbmod

    engine = dbmod.make_engine(database_url)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(statement))
            return [tuple(r) for r in result] if result.returns_rows else []
    finally:
        engine.dispose()


def outbox(database_url: str) -> list[tuple]:
    """(id, kind, sent, claimed) for every queued mail."""
    return query(database_url, "SELECT id, kind, sent_at IS NOT NULL, claimed_until IS NOT NULL "
                               "FROM mail_outbox ORDER BY id")


# --- the database away and back (a private PostgreSQL cluster) -------------------------------


@pytest.fixture(scope="module")
def private_pg():
    bindir = postgres_bindir()
    reason = None
    if bindir is None:
        reason = "no PostgreSQL server binaries (initdb, pg_ctl) in /usr/lib/postgresql/*/bin or on PATH"
    elif os.geteuid() == 0:
        import pwd

        try:
            pwd.getpwnam("postgres")
        except KeyError:
            reason = "running as root, and there is no `postgres` OS user to run initdb as"
        if not (shutil.which("runuser") or os.path.exists("/usr/sbin/runuser")):
            reason = "running as root, and there is no `runuser` to run initdb as the postgres user"
    if reason:
        print(f"\nDatabase-outage tests skipped: {reason}")
        pytest.skip(reason)
    pg = PrivatePostgres(bindir).init()
    pg.start()
    yield pg
    pg.destroy()


@pytest.fixture(scope="module")
def pg_stack(private_pg, tmp_path_factory):
    """One `tobira serve` and one SMTP sink on a database in the private cluster, for these tests."""
    sink = ControlledSink().start()
    tmp = tmp_path_factory.mktemp("outage")
    url = private_pg.create_database("faults")
    add_customers(url, [])
    server = Server(server_env(tmp, url, sink.url), tmp).start()
    yield server, sink
    server.kill_all()
    sink.stop()


@pytest.fixture
def outage(private_pg, pg_stack):
    """The server, the sink and a new customer (code, e-mail) of this test's own."""
    server, sink = pg_stack
    code = "C" + uuid.uuid4().hex[:10].upper()
    customer = (code, f"{code.lower()}@example.com")
    add_customers(server.env["TOBIRA_DATABASE_URL"], [customer])
    yield server, sink, customer
    if not (private_pg.data / "postmaster.pid").exists():  # a failed test left it stopped
        private_pg.start()
    no_500s(server)
    assert server.proc.poll() is None, "the server died"


def test_database_outage_answers_503_and_recovers_without_a_restart(private_pg, outage):
    srv, sink, customer = outage
    taro = Browser(srv.url)
    log_in_with_code(taro, sink, customer)
    key = SoftKey()
    register(taro, key)
    # A passkey login begun before the outage, tried during it, and finished after it.
    hana = Browser(srv.url)
    assertion = begin_passkey_login(hana, key)

    private_pg.stop("fast")
    try:
        assert httpx.get(srv.url + "/healthz", timeout=BOUNDED).status_code == 200  # the process is up
        assert_unavailable(*timed(lambda: httpx.get(srv.url + "/readyz", timeout=30)))
        assert_unavailable(*timed(lambda: taro.get("/api/session", timeout=30)))
        assert_unavailable(*timed(lambda: Browser(srv.url).post("/api/login/passkey/options", timeout=30)))
        assert_unavailable(*timed(lambda: hana.post("/api/login/passkey/verify", assertion, timeout=30)))
        assert_unavailable(*timed(lambda: Browser(srv.url).post(
            "/api/login/password", {"customer_code": customer[0], "password": PASSWORD}, timeout=30)))
    finally:
        private_pg.start()

    started = time.monotonic()
    wait_until(lambda: ready(srv.url), 10, "/readyz 200 again")
    print(f"\nready {time.monotonic() - started:.2f}s after PostgreSQL was back")
    # Nothing was lost: the session, the passkey, the ceremony begun before the outage.
    r = taro.get("/api/session")
    assert r.status_code == 200 and r.json()["customer_code"] == customer[0], r.text
    assert len(taro.get("/api/passkeys").json()["passkeys"]) == 1
    r = hana.post("/api/login/passkey/verify", assertion)
    assert r.status_code == 200, r.text
    assert hana.get("/api/session").json()["auth_method"] == "passkey"
    passkey_login(srv.url, key)  # and a new ceremony


def test_ceremonies_begun_before_a_database_crash_complete_after_it(private_pg, outage):
    srv, sink, customer = outage
    taro = Browser(srv.url)
    log_in_with_code(taro, sink, customer)
    key, second = SoftKey(), SoftKey()
    register(taro, key)
    registration = begin_registration(taro, second)
    hana = Browser(srv.url)
    assertion = begin_passkey_login(hana, key)

    private_pg.stop("immediate")  # a crash: backends killed, recovery from the WAL at the next start
    private_pg.start()

    # No waiting: the pooled connections died with the crash, and the very next requests succeed.
    r = taro.post("/api/passkeys/register/verify", {"credential": registration})
    assert r.status_code == 201, r.text
    r = hana.post("/api/login/passkey/verify", assertion)
    assert r.status_code == 200, r.text
    assert len(taro.get("/api/passkeys").json()["passkeys"]) == 2
    passkey_login(srv.url, second)


def test_a_database_that_does_not_answer_gives_503_in_bounded_time(private_pg, outage):
    """Not refused but silent (a hung server, a dead network path): a new connection gets no answer."""
    import psycopg

    srv, sink, customer = outage
    taro = Browser(srv.url)
    log_in_with_code(taro, sink, customer)
    with psycopg.connect(private_pg.admin_url(), autocommit=True, connect_timeout=5) as admin:
        postmaster = private_pg.postmaster_pid()
        os.kill(postmaster, signal.SIGSTOP)  # the kernel still completes TCP handshakes; nobody answers
        try:
            # ... and the server's pooled connections are gone, so it must open new ones.
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE backend_type = 'client backend' AND datname <> 'postgres'")
            with ThreadPoolExecutor(2) as pool:
                readyz = pool.submit(timed, lambda: httpx.get(srv.url + "/readyz", timeout=60))
                session = pool.submit(timed, lambda: taro.get("/api/session", timeout=60))
                assert_unavailable(*readyz.result())
                assert_unavailable(*session.result())
        finally:
            os.kill(postmaster, signal.SIGCONT)
    wait_until(lambda: ready(srv.url), 10, "/readyz 200 again")
    assert taro.get("/api/session").status_code == 200


# --- tests with servers of their own (SQLite, and PostgreSQL at TOBIRA_TEST_POSTGRES) --------


@pytest.fixture
def sink():
    s = ControlledSink().start()
    yield s
    s.stop()


@pytest.fixture
def servers():
    """Every Server a test starts; whatever is still running afterwards is killed."""
    started: list[Server] = []
    yield started
    for s in started:
        s.kill_all()


# --- the SMTP server down --------------------------------------------------------------------


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_smtp_down_password_login_says_so_and_leaves_no_half_made_login(tmp_path, database_url, sink, servers):
    add_customers(database_url, [TARO])
    servers.append(Server(server_env(tmp_path, database_url, sink.url), tmp_path).start())
    srv = servers[-1]
    b = Browser(srv.url)
    log_in_with_code(b, sink)  # SMTP works: a login, and its notice delivered
    sink.wait_for(lambda m: not is_code_mail(m))
    assert b.post("/api/logout").status_code == 204

    sink.down()
    b.headers["Accept-Language"] = "en"
    r, took = timed(lambda: b.post("/api/login/password", {"customer_code": TARO[0], "password": PASSWORD}))
    assert took < BOUNDED, f"took {took:.1f}s"
    assert r.status_code == 503, r.text
    error = r.json()["error"]  # what the login page shows
    assert error["code"] == "mail_unavailable" and "could not send the e-mail" in error["message"], r.text
    # No half-made login: no pending login to enter a code into or to resend for, no session.
    r = b.post("/api/login/code", {"code": "123456"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "no_pending_login", r.text
    r = b.post("/api/login/code/resend")
    assert r.status_code == 401 and r.json()["error"]["code"] == "no_pending_login", r.text
    assert b.get("/api/session").status_code == 401
    assert query(database_url, "SELECT count(*) FROM sessions WHERE state = 'pending'") == [(0,)]

    sink.up()
    codes_before = sum(map(is_code_mail, sink.to(TARO[1])))
    log_in_with_code(b, sink)
    assert sum(map(is_code_mail, sink.to(TARO[1]))) == codes_before + 1  # only the new login's code
    assert b.get("/api/session").json()["auth_method"] == "email_code"
    no_500s(srv)


# --- a server process killed mid-ceremony ----------------------------------------------------


def test_a_killed_process_loses_nothing_already_confirmed(tmp_path, database_url, sink, servers):
    add_customers(database_url, [TARO])
    env = server_env(tmp_path, database_url, sink.url)
    # Every notice (anything but a code) hangs at the mail server: process 1's outbox sender gets
    # stuck on the first one, so the later ones stay queued, unclaimed, when the process dies.
    sink.hold = lambda msg: not is_code_mail(msg)
    servers.append(Server(env, tmp_path).start())
    one = servers[-1]
    taro = Browser(one.url)
    log_in_with_code(taro, sink)
    # (The next steps take well under the 15 s after which the stuck sender would give up.)
    assert sink.holding.wait(10), "the login notice never reached the mail server"
    key, second = SoftKey(), SoftKey()
    register(taro, key)
    registration = begin_registration(taro, second)  # begun on process 1, completed on process 2
    hana = passkey_login(one.url, key)
    before = outbox(database_url)
    assert [(sent, claimed) for _, _, sent, claimed in before] == [(False, True), (False, False), (False, False)], \
        before  # the login notice being sent, "passkey added" and the passkey login's notice queued

    one.signal(signal.SIGKILL)
    assert one.wait(5) == -signal.SIGKILL
    sink.hold = None
    servers.append(Server(env, tmp_path).start())
    two = servers[-1]
    taro.base = hana.base = two.url

    r = taro.post("/api/passkeys/register/verify", {"credential": registration})
    assert r.status_code == 201, r.text  # the ceremony lives in the database, not in the process
    assert taro.get("/api/session").json()["auth_method"] == "email_code"
    assert hana.get("/api/session").json()["auth_method"] == "passkey"
    assert len(taro.get("/api/passkeys").json()["passkeys"]) == 2
    passkey_login(two.url, key)
    passkey_login(two.url, second)

    # "A crash loses no mail": what process 1 had queued and not begun to send goes out now.
    held = before[0][0]
    wait_until(lambda: all(sent for id_, _, sent, _ in outbox(database_url) if id_ != held), 10,
               "process 2 delivers the queued notices")
    # The one process 1 died sending stays claimed by it until its lease (2 minutes) runs out ...
    assert [r for r in outbox(database_url) if not r[2]] == [(held, before[0][1], False, True)]
    # ... (2 minutes pass) ... and then it goes out too, once.
    query(database_url, f"UPDATE mail_outbox SET claimed_until = NULL WHERE id = {held}")
    wait_until(lambda: all(sent for _, _, sent, _ in outbox(database_url)), 10, "the held notice is delivered")
    notices = [m for m in sink.to(TARO[1]) if not is_code_mail(m)]
    assert len(notices) == len(outbox(database_url)), [str(m["Subject"]) for m in notices]
    no_500s(two)


# --- graceful stop on SIGTERM ----------------------------------------------------------------


def _sigterm_mid_flight(tmp_path, database_url, sink, servers, *, workers: int) -> None:
    """Slow requests (the mail server takes a second per message) are in flight at SIGTERM."""
    customers = [(f"HANA{i:04d}", f"hana{i}@example.com") for i in range(3)]
    add_customers(database_url, [TARO, *customers])
    servers.append(Server(server_env(tmp_path, database_url, sink.url), tmp_path, workers=workers).start())
    srv = servers[-1]
    taro = Browser(srv.url)
    r = taro.post("/api/login/password", {"customer_code": TARO[0], "password": PASSWORD})
    assert r.status_code == 200, r.text
    code = sink.last_code(TARO[1])
    sink.delay, sink.arrivals = 1.0, 0

    def password_login(customer):
        return Browser(srv.url).post("/api/login/password", {"customer_code": customer[0], "password": PASSWORD})

    with ThreadPoolExecutor(len(customers)) as pool:
        logins = [pool.submit(password_login, c) for c in customers]
        assert taro.post("/api/login/code", {"code": code}).status_code == 200  # its notice is queued
        # Every code mail and the notice are at the mail server now, each for a second.
        wait_until(lambda: sink.arrivals >= len(customers) + 1, 10, "all mail in flight")
        children = srv.children()
        stopped_at = time.monotonic()
        srv.signal(signal.SIGTERM)
        answers = [f.result() for f in logins]
    for r in answers:
        assert r.status_code == 200 and r.json()["status"] == "code_sent", r.text
    status = srv.wait(timeout=15)
    took = time.monotonic() - stopped_at
    print(f"\nSIGTERM with {len(customers)} logins in flight, {workers} worker(s): exit {status} after {took:.2f}s")
    assert status == 0, srv.log()[-3000:]
    assert took < 8
    for pid in children:  # no worker outlives the parent
        wait_until(lambda: not os.path.exists(f"/proc/{pid}") or
                   open(f"/proc/{pid}/stat").read().rsplit(") ", 1)[1][0] == "Z", 5, f"child {pid} gone")
    # The answered logins are real: each code went out and its pending login is in the database.
    for _, email in customers:
        assert sink.last_code(email, timeout=1)
    assert query(database_url, "SELECT count(*) FROM sessions WHERE state = 'pending'") == [(len(customers),)]
    # Queued mail is not lost: sent before the exit, or still queued (unclaimed) for the next start.
    rows = outbox(database_url)
    assert rows and all(sent or not claimed for _, _, sent, claimed in rows), rows
    notices = [m for m in sink.messages if not is_code_mail(m)]
    assert len(notices) == sum(sent for _, _, sent, _ in rows), [str(m["Subject"]) for m in notices]
    no_500s(srv)


def test_sigterm_finishes_requests_in_flight_and_exits_0(tmp_path, database_url, sink, servers):
    _sigterm_mid_flight(tmp_path, database_url, sink, servers, workers=1)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sigterm_to_the_parent_stops_every_worker_and_exits_0(tmp_path, database_url, sink, servers):
    _sigterm_mid_flight(tmp_path, database_url, sink, servers, workers=2)


# --- the mail worker process -----------------------------------------------------------------


def _mail_worker_of(srv: Server) -> int:
    workers = [pid for pid in srv.children()
               if b"mail-worker" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")]
    assert len(workers) == 1, srv.children()
    return workers[0]


def _gone(pid: int) -> bool:
    return not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().rsplit(") ", 1)[1][0] == "Z"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_queued_mail_goes_out_from_its_own_process_which_ends_with_the_server(tmp_path, database_url, sink,
                                                                           servers):
    add_customers(database_url, [TARO])
    servers.append(Server(server_env(tmp_path, database_url, sink.url), tmp_path).start())
    srv = servers[-1]
    worker = _mail_worker_of(srv)
    log_in_with_code(Browser(srv.url), sink)
    wait_until(lambda: any(not is_code_mail(m) for m in sink.to(TARO[1])), 5, "the login notice")
    # The worker marks a mail sent after the SMTP server has taken it, so the mark may trail the sink.
    wait_until(lambda: all(sent for _, _, sent, _ in outbox(database_url)), 5, "the outbox marked sent")

    srv.signal(signal.SIGKILL)  # no chance to stop its worker: the worker notices its parent is gone
    assert srv.wait(5) == -signal.SIGKILL
    wait_until(lambda: _gone(worker), 10, "the mail worker ends without its server")
