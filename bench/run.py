"""The load benchmark: `python -m bench` (or `bash bench/run.sh`, which installs first).

For each configuration (SQLite with 1 and 2 workers, PostgreSQL with 2) it starts the floor app and
then Tobira as real `uvicorn` processes with the same options, drives each with N virtual browsers
for a fixed window after a warm-up, and reports:

- passkey login ceremonies per second (options, verify, GET /api/session; the login notification
  e-mail goes through the outbox to an SMTP server in another process and is counted there),
  p50/p99 latency of the whole ceremony, errors and timeouts;
- p50/p99 of the notification lag: from the verify answer to the SMTP server's report of that
  login's notice (the run waits for every mail, so a lagging outbox shows here, not as loss);
- server CPU per ceremony (all processes of the server, from /proc), the load generator's CPU,
  and the SMTP server's CPU per mail;
- the floor's rounds per second (two bare requests) and the ratio;
- at 64 clients, the tail ratio (p99/p50 of the ceremony over p99/p50 of the floor);
- under attack: the ceremony rate while 16 more clients flood unknown-customer password attempts
  and maximum-size malformed bodies;
- password logins (password, e-mailed code read back from the SMTP server, code) per second and
  per CPU-second of the server.

Every virtual browser reports its own client address through X-Forwarded-For, as a load balancer
would (Tobira trusts 127.0.0.1 as that balancer), so per-address limits see many customers, not one.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable
from urllib.parse import parse_qs, urlencode, urlsplit

from .client import Browser, ProtocolError
from .passkey import Assertions
from .seed import PASSWORD, Customer, seed

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")
MAX_BODY = 64 * 1024


class RoundFailed(Exception):
    pass


# --- processes -------------------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return pids


def cpu_seconds(pid: int) -> float:
    """user + system CPU of a process and all its descendants (uvicorn's workers are children)."""
    total = 0
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError):
            pass
    return total / TICKS


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Server:
    """A server process on a port of its own; stopped with SIGTERM like a deployment would."""

    def __init__(self, name: str, argv: list[str], env: dict, port: int, log_path: Path, probe: str) -> None:
        self.name, self.port, self.probe = name, port, probe
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=self.log, stderr=self.log)

    async def ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited with {self.proc.returncode}; see {self.log.name}")
            try:
                browser = Browser("127.0.0.1", self.port, "http://localhost")
                method, path = self.probe.split(" ")
                response = await browser.request(method, path, b"{}" if method == "POST" else None, timeout=2)
                browser.close()
                if response.status == 200:
                    return
            except (OSError, ProtocolError, asyncio.TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{self.name} did not answer within {timeout}s; see {self.log.name}")
            await asyncio.sleep(0.1)

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class MailCounter:
    """Reads the SMTP sink's report lines: counts mails, hands login codes to whoever waits, and
    times login notices from the verify response that caused them to their arrival (when this
    process reads the sink's line). A verify that timed out after the server had logged in leaves
    a notice no ceremony announced, and that recipient's later pairs are off by one; such a run
    reports the timeout."""

    def __init__(self) -> None:
        self.delivered = 0
        self.codes: dict[str, asyncio.Future] = {}
        self.proc: asyncio.subprocess.Process | None = None
        self.port = _free_port()
        self.start_lags()

    def start_lags(self) -> None:
        """Forget the pairing of the run before. Mails pair with causes per recipient, oldest first
        (the outbox sends in order): `due` holds causes whose mail has not come, `early` mails
        whose verify answer the load generator had not read yet (or that no ceremony announces,
        such as a password login's mails)."""
        self.due: dict[str, deque[float]] = {}
        self.early: dict[str, deque[float]] = {}
        self.lags: list[tuple[float, float]] = []  # (caused at, lag), perf_counter seconds

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.sink", str(self.port), cwd=ROOT,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        assert (await self.proc.stdout.readline()).strip() == b"ready"
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        # Whatever the pipe holds at once, not a line per await: thousands of mails a second.
        rest = b""
        while chunk := await self.proc.stdout.read(1 << 16):
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            arrived = time.perf_counter()
            for line in lines:
                self._arrived(line.decode(), arrived)

    def _arrived(self, line: str, at: float) -> None:
        rcpt, _, code = line.partition("\t")
        self.delivered += 1
        due = self.due.get(rcpt)
        if due:
            caused = due.popleft()
            self.lags.append((caused, at - caused))
        else:
            self.early.setdefault(rcpt, deque()).append(at)
        if code != "-":
            self._future(rcpt).set_result(code)

    def notice_due(self, rcpt: str) -> None:
        """A login notice to rcpt was just caused (its verify answered): time it to its arrival."""
        caused = time.perf_counter()
        early = self.early.get(rcpt)
        if early:
            arrived = early.popleft()
            self.lags.append((caused, arrived - caused))
        else:
            self.due.setdefault(rcpt, deque()).append(caused)

    def lag_summary(self, start: float, end: float) -> dict:
        """p50/p99 of the notification lag of the notices caused between start and end."""
        lags = sorted(lag for caused, lag in self.lags if start <= caused <= end)
        n = len(lags)
        return {"notify_lag_p50_ms": round(statistics.median(lags) * 1000, 1) if n else None,
                "notify_lag_p99_ms": round(lags[min(n - 1, int(n * 0.99))] * 1000, 1) if n else None,
                "notify_lags_measured": n}

    def _future(self, rcpt: str) -> asyncio.Future:
        future = self.codes.get(rcpt)
        if future is None or future.done():
            future = self.codes[rcpt] = asyncio.get_running_loop().create_future()
        return future

    def expect_code(self, rcpt: str) -> asyncio.Future:
        """Call before the request that sends the code (so it cannot arrive unseen)."""
        future = self.codes[rcpt] = asyncio.get_running_loop().create_future()
        return future

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    async def stop(self) -> None:
        self.proc.stdin.close()
        await self.proc.wait()
        self.reader.cancel()


# --- driving load ----------------------------------------------------------------------------


@dataclass
class Window:
    """What happened inside the measurement window (after the warm-up)."""

    seconds: float = 0.0
    start: float = 0.0  # perf_counter at its beginning
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    timeouts: int = 0
    error_samples: list[str] = field(default_factory=list)
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    sink_cpu: float = 0.0
    total_ok: int = 0  # every completed round, warm-up included (for the mail count)
    other: dict = field(default_factory=dict)

    def summary(self, unit: str) -> dict:
        n = len(self.latencies)
        ordered = sorted(self.latencies)
        p50 = statistics.median(ordered) if n else None
        p99 = ordered[min(n - 1, int(n * 0.99))] if n else None
        return {
            f"{unit}_per_s": round(n / self.seconds, 1),
            "completed": n,
            "p50_ms": round(p50 * 1000, 2) if n else None,
            "p99_ms": round(p99 * 1000, 2) if n else None,
            "p99_over_p50": round(p99 / p50, 2) if n else None,
            "errors": self.errors,
            "timeouts": self.timeouts,
            "error_samples": self.error_samples[:5],
            f"server_cpu_ms_per_{unit}": round(self.server_cpu / n * 1000, 2) if n else None,
            "server_cores_busy": round(self.server_cpu / self.seconds, 2),
            f"client_cpu_ms_per_{unit}": round(self.client_cpu / n * 1000, 3) if n else None,
            "client_cores_busy": round(self.client_cpu / self.seconds, 2),
            "smtp_sink_cores_busy": round(self.sink_cpu / self.seconds, 3),
            **self.other,
        }


Round = Callable[[Browser, int], Awaitable[None]]

GOAL_RATIO = 0.35  # the ceremonies' goal, as a ratio to the floor (issue 5)


def goal_budget(floor: dict, ceremonies: dict, cores: int) -> dict:
    """What the ratio goal asks of this machine, from the run's own measurements: the ceremony rate
    it means, and the cores that rate would need at the CPU each ceremony costs here. The server
    (with its mail worker), the load generator and the SMTP sink all run on this machine, so at
    that rate they would all have to fit in its cores; and a ceremony's three requests cost the
    server at least what three of the floor's bare requests do."""
    rate = GOAL_RATIO * floor["round_per_s"]
    per = {"server": ceremonies["server_cpu_ms_per_ceremony"],
           "load_generator": ceremonies["client_cpu_ms_per_ceremony"],
           "smtp_sink": round(ceremonies["smtp_sink_cores_busy"] / ceremonies["ceremony_per_s"] * 1000, 3)}
    return {"goal_ceremonies_per_s": round(rate, 1), "cpu_ms_per_ceremony": per,
            "cores_needed": round(rate * sum(per.values()) / 1000, 2), "cores": cores,
            "cpu_ms_per_ceremony_allowed": round(cores / rate * 1000, 3),
            "three_bare_requests_ms": round(1.5 * floor["server_cpu_ms_per_round"], 3)}


async def drive(*, server: Server, sink: MailCounter, clients: int, warmup: float, duration: float,
                make_browser: Callable[[int], Browser], one_round: Round,
                background: list[Callable[[asyncio.Event], Awaitable[None]]] = ()) -> Window:
    window = Window()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    now = time.perf_counter  # uvloop's loop.time() has only millisecond resolution
    start_at = now() + warmup
    end_at = start_at + duration

    async def client(i: int) -> None:
        browser = make_browser(i)
        n = 0
        while not stop.is_set():
            began = now()
            try:
                await one_round(browser, i * 1_000_000 + n)
            except asyncio.TimeoutError:
                if start_at <= began and now() <= end_at:
                    window.timeouts += 1
                browser.close()
                browser = make_browser(i)
                continue
            except (RoundFailed, ProtocolError, OSError, KeyError, ValueError) as exc:
                if start_at <= began and now() <= end_at:
                    window.errors += 1
                    window.error_samples.append(f"{type(exc).__name__}: {exc}"[:300])
                browser.close()
                browser = make_browser(i)
                await asyncio.sleep(0.01)
                continue
            finally:
                n += 1
            ended = now()
            window.total_ok += 1
            if start_at <= began and ended <= end_at:
                window.latencies.append(ended - began)
        browser.close()

    tasks = [loop.create_task(client(i)) for i in range(clients)]
    tasks += [loop.create_task(job(stop)) for job in background]
    await asyncio.sleep(max(0.0, start_at - now()))
    server_cpu, client_cpu, sink_cpu, t0 = server.cpu(), own_cpu(), sink.cpu(), now()
    await asyncio.sleep(max(0.0, end_at - now()))
    window.start, window.seconds = t0, now() - t0
    window.server_cpu = server.cpu() - server_cpu
    window.client_cpu = own_cpu() - client_cpu
    window.sink_cpu = sink.cpu() - sink_cpu
    stop.set()
    await asyncio.wait(tasks, timeout=35)
    return window


def _expect(response, status: int, what: str) -> None:
    if response.status != status:
        raise RoundFailed(f"{what}: {response.status} {response.body[:200]!r}")


# --- the workloads ---------------------------------------------------------------------------


CHALLENGE = re.compile(rb'"challenge"\s*:\s*"([A-Za-z0-9_-]*)"')


def challenge_of(options: bytes) -> bytes:
    """The options answer's challenge, decoded as a browser does before it goes into clientDataJSON."""
    found = CHALLENGE.search(options)
    if found is None:
        raise RoundFailed(f"options without a challenge: {options[:200]!r}")
    text = found.group(1)
    return base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))


def client_address(n: int, net: int = 10) -> str:
    return f"{net}.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


CUSTOMER_CODE = re.compile(rb'"customer_code"\s*:\s*"([^"]*)"')


def session_customer(session: bytes) -> str | None:
    """Whose session GET /api/session describes (a search, not a parse: the body is mostly other things)."""
    found = CUSTOMER_CODE.search(session)
    return found.group(1).decode() if found else None


def floor_round(sample_body: bytes) -> Round:
    async def one(browser: Browser, n: int) -> None:
        r = await browser.request("POST", "/options", b"{}")
        _expect(r, 200, "options")
        challenge_of(r.body)
        r = await browser.request("POST", "/verify", sample_body)
        _expect(r, 200, "verify")
    return one


def ceremony_round(customers: list[Customer], sink: MailCounter) -> Round:
    passkeys = [Assertions(customer.key) for customer in customers]

    async def one(browser: Browser, n: int) -> None:
        i = (n // 1_000_000) % len(customers)
        customer = customers[i]
        browser.forget_cookies()  # a new visitor each time: the options request makes the anonymous session
        r = await browser.request("POST", "/api/login/passkey/options", b"{}")
        _expect(r, 200, "options")
        r = await browser.request("POST", "/api/login/passkey/verify", passkeys[i].body(challenge_of(r.body)))
        _expect(r, 200, "verify")
        sink.notice_due(customer.email)
        r = await browser.request("GET", "/api/session")
        _expect(r, 200, "session")
        if session_customer(r.body) != customer.code:
            raise RoundFailed("session of another customer")
    return one


REDIRECT = "https://app.bench.example/cb"


def oidc_round(customers: list[Customer], sink: MailCounter, client_id: str, secret: str) -> Round:
    """An app's sign-in for a customer already logged in to Tobira: the authorization request (a
    code), then the code for tokens (client_secret_post, PKCE). Each virtual browser logs in with
    its passkey once, in the warm-up, and keeps its session."""
    passkeys = [Assertions(customer.key) for customer in customers]

    async def one(browser: Browser, n: int) -> None:
        i = (n // 1_000_000) % len(customers)
        if "tobira_session" not in browser.cookies:
            r = await browser.request("POST", "/api/login/passkey/options", b"{}")
            _expect(r, 200, "options")
            r = await browser.request("POST", "/api/login/passkey/verify", passkeys[i].body(challenge_of(r.body)))
            _expect(r, 200, "verify")
        verifier = secrets.token_urlsafe(32)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        query = urlencode({"client_id": client_id, "redirect_uri": REDIRECT, "response_type": "code",
                           "scope": "openid profile", "state": str(n), "nonce": str(n), "code_challenge": challenge,
                           "code_challenge_method": "S256"})
        r = await browser.request("GET", f"/oauth/authorize?{query}")
        _expect(r, 303, "authorize")
        code = parse_qs(urlsplit(r.location or "").query).get("code")
        if not code:
            raise RoundFailed(f"authorize without a code: {r.location!r}")
        form = urlencode({"grant_type": "authorization_code", "code": code[0], "redirect_uri": REDIRECT,
                          "code_verifier": verifier, "client_id": client_id, "client_secret": secret}).encode()
        r = await browser.request("POST", "/oauth/token", form, content_type="application/x-www-form-urlencoded")
        _expect(r, 200, "token")
        if b'"id_token"' not in r.body:
            raise RoundFailed("token answer without an ID token")
    return one


def password_round(customers: list[Customer], sink: MailCounter, counter: list[int]) -> Round:
    async def one(browser: Browser, n: int) -> None:
        counter[0] += 1
        customer = customers[counter[0] % len(customers)]
        browser.forget_cookies()
        browser.forwarded_for = client_address(counter[0], 11)  # each login from its own address
        code = sink.expect_code(customer.email)
        r = await browser.post_json("/api/login/password", {"customer_code": customer.code, "password": PASSWORD})
        _expect(r, 200, "password")
        if r.json()["status"] != "code_sent":
            raise RoundFailed(f"unexpected {r.body!r}")
        r = await browser.post_json("/api/login/code", {"code": await asyncio.wait_for(code, 30)})
        _expect(r, 200, "code")
    return one


def attackers(port: int, origin: str, count: int, stats: dict) -> list[Callable[[asyncio.Event], Awaitable[None]]]:
    """Half guess passwords of unknown customers, half send maximum-size malformed bodies."""
    junk = b'{"id":"' + b"A" * (MAX_BODY - 64) + b'","type":"public-key"}'
    assert len(junk) <= MAX_BODY
    jobs = []
    for i in range(count):
        async def flood(stop: asyncio.Event, i=i) -> None:
            browser = Browser("127.0.0.1", port, origin, forwarded_for=client_address(i + 1, 66))
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    if i % 2 == 0:
                        r = await browser.post_json("/api/login/password", {
                            "customer_code": f"NOBODY{i:02d}{n:06d}", "password": secrets.token_urlsafe(12)})
                    else:
                        path = "/api/login/passkey/verify" if n % 2 else "/api/passkeys/register/verify"
                        r = await browser.request("POST", path, junk)
                    key = f"{'password' if i % 2 == 0 else 'malformed'}_{r.status}"
                    stats[key] = stats.get(key, 0) + 1
                except (ProtocolError, OSError, asyncio.TimeoutError) as exc:
                    stats["attack_" + type(exc).__name__] = stats.get("attack_" + type(exc).__name__, 0) + 1
                    browser.close()
                    browser = Browser("127.0.0.1", port, origin, forwarded_for=client_address(i + 1, 66))
            browser.close()
        jobs.append(flood)
    return jobs


# --- configurations --------------------------------------------------------------------------


@dataclass
class Config:
    name: str
    database: str  # "sqlite" | "postgresql"
    workers: int


class Bench:
    def __init__(self, args) -> None:
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="tobira-bench-"))
        self.results: dict = {"machine": _machine(), "settings": {
            "clients": args.clients, "tail_clients": args.tail_clients, "attackers": args.attackers,
            "warmup_s": args.warmup, "attack_warmup_s": args.attack_warmup, "attack_duration_s": args.attack_duration,
            "duration_s": args.duration},
            "runs": {}}
        self.sink = MailCounter()
        self.floors: dict[tuple[int, int], dict] = {}

    def log(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    async def floor(self, workers: int, clients: int) -> dict:
        key = (workers, clients)
        if key not in self.floors:
            port = _free_port()
            server = Server("floor", [sys.executable, "-m", "bench.floor", str(port), str(workers)], dict(os.environ),
                            port, self.work / "floor.log", "POST /options")
            try:
                await server.ready()
                sample = json.dumps(_sample_assertion(), separators=(",", ":")).encode()
                window = await drive(server=server, sink=self.sink, clients=clients, warmup=self.args.warmup,
                                     duration=self.args.duration,
                                     make_browser=lambda i: Browser("127.0.0.1", port, "http://localhost"),
                                     one_round=floor_round(sample))
            finally:
                server.stop()
            self.floors[key] = window.summary("round")
            self.log(f"  floor   {workers}w {clients:3d} clients: {self.floors[key]['round_per_s']:8.1f} rounds/s"
                     f"  p50 {self.floors[key]['p50_ms']} ms  p99 {self.floors[key]['p99_ms']} ms")
        return self.floors[key]

    def _database_url(self, config: Config, tag: str) -> tuple[str, Callable[[], None]]:
        if config.database == "sqlite":
            path = self.work / f"{tag}.db"
            return f"sqlite:///{path}", lambda: None
        import psycopg

        name = f"tobira_bench_{secrets.token_hex(4)}"
        admin = self.args.postgres_admin
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

        def drop() -> None:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        base = admin.rsplit("/", 1)[0]
        return f"{base.replace('postgresql://', 'postgresql+psycopg://')}/{name}", drop

    async def tobira(self, config: Config, *, clients: int, workload: str, tag: str) -> dict:
        port = _free_port()
        origin = f"http://localhost:{port}"
        url, drop = self._database_url(config, tag)
        try:
            customers = seed(url, origin=origin, passkey_customers=clients if workload != "password" else 0,
                             password_customers=self.args.password_customers if workload == "password" else 0)
            data = self.work / tag
            data.mkdir()
            env = {**{k: v for k, v in os.environ.items() if not k.startswith("TOBIRA_")},
                   "TOBIRA_DATABASE_URL": url, "TOBIRA_ORIGIN": origin, "TOBIRA_DATA_DIR": str(data),
                   "TOBIRA_SECRET_KEY": secrets.token_urlsafe(40), "TOBIRA_SMTP_URL": f"smtp://127.0.0.1:{self.sink.port}",
                   "TOBIRA_TRUSTED_PROXIES": "127.0.0.1",
                   # Each virtual browser is one address logging in back to back, hundreds of times a
                   # minute (a customer does it a few times a day): the options limit still counts
                   # every ask, so its cost is measured, but never refuses one here.
                   "TOBIRA_LOGIN_OPTIONS_LIMIT": "1000000/minute"}
            server = Server("tobira", [sys.executable, "-m", "server", "serve", "--port", str(port),
                                       "--workers", str(config.workers)], env, port, data / "server.log",
                            "GET /healthz")
            try:
                await server.ready()
                if os.environ.get("BENCH_PIDFILE"):  # for attaching a profiler (py-spy) to the server
                    Path(os.environ["BENCH_PIDFILE"]).write_text(str(server.proc.pid))
                attack_stats: dict = {}
                background = []
                if workload == "attack":
                    background = attackers(port, origin, self.args.attackers, attack_stats)
                if workload == "password":
                    counter = [0]
                    one = password_round(customers, self.sink, counter)
                elif workload == "oidc":
                    added = subprocess.run([sys.executable, "-m", "server", "client", "add", "Bench app",
                                            "--redirect-uri", REDIRECT], env=env, cwd=data, check=True,
                                           capture_output=True, text=True).stdout
                    made = dict(line.split(": ", 1) for line in added.strip().splitlines())
                    one = oidc_round(customers, self.sink, made["client_id"], made["client_secret"])
                else:
                    one = ceremony_round(customers, self.sink)
                mails_before, sink_cpu_before = self.sink.delivered, self.sink.cpu()
                self.sink.start_lags()
                # Under attack, the measurement is one whole window of TOBIRA_RATE_LIMIT (a minute)
                # after the first: the steady state of a long flood, each address's allowance of
                # guesses (hashed) included once, as in every minute of a real one.
                warmup = self.args.attack_warmup if workload == "attack" else self.args.warmup
                window = await drive(
                    server=server, sink=self.sink, clients=clients, warmup=warmup,
                    duration=self.args.attack_duration if workload == "attack" else self.args.duration,
                    one_round=one, background=background,
                    make_browser=lambda i: Browser("127.0.0.1", port, origin, forwarded_for=client_address(i + 1)))
                # Each login's notification (and, for password logins, its code) must reach the SMTP server.
                # (An oidc round sends no mail: only each browser's one passkey login did, in the warm-up.)
                expected = window.total_ok * {"password": 2, "oidc": 0}.get(workload, 1)
                waited = time.monotonic()
                while self.sink.delivered - mails_before < expected and time.monotonic() - waited < 60:
                    await asyncio.sleep(0.1)
                window.other["mails_expected"] = expected
                window.other["mails_delivered"] = self.sink.delivered - mails_before
                window.other["mail_drain_s"] = round(time.monotonic() - waited, 2)
                # Over the whole run, drain included: while the server is saturated its outbox may
                # deliver most of the mail only after the window.
                delivered = window.other["mails_delivered"]
                window.other["smtp_sink_cpu_ms_per_mail"] = (
                    round((self.sink.cpu() - sink_cpu_before) / delivered * 1000, 3) if delivered else None)
                if workload not in ("password", "oidc"):
                    window.other.update(self.sink.lag_summary(window.start, window.start + window.seconds))
                if attack_stats:
                    window.other["attack_requests"] = dict(sorted(attack_stats.items()))
                    window.other["attack_requests_per_s"] = round(sum(
                        v for k, v in attack_stats.items()) / (warmup + self.args.attack_duration), 1)
            finally:
                server.stop()
        finally:
            drop()
        unit = {"password": "login", "oidc": "sign_in"}.get(workload, "ceremony")
        summary = window.summary(unit)
        if workload == "password":
            cpu = summary["server_cores_busy"]
            summary["logins_per_server_cpu_s"] = round(summary["login_per_s"] / cpu, 1) if cpu else None
        self.log(f"  tobira  {config.name:10s} {workload:9s} {clients:3d} clients: {summary[unit + '_per_s']:8.1f} {'ceremonies' if unit == 'ceremony' else unit.replace('_', '-') + 's'}/s"
                 f"  p50 {summary['p50_ms']} ms  p99 {summary['p99_ms']} ms  errors {summary['errors']}"
                 f"  timeouts {summary['timeouts']}  server CPU {summary[f'server_cpu_ms_per_{unit}']} ms/{unit}"
                 f"  mails {summary['mails_delivered']}/{summary['mails_expected']}"
                 + (f"  notice lag p50 {summary['notify_lag_p50_ms']} ms p99 {summary['notify_lag_p99_ms']} ms"
                    if unit == "ceremony" else ""))
        return summary

    async def run(self) -> dict:
        await self.sink.start()
        try:
            args = self.args
            configs = [Config("sqlite-1w", "sqlite", 1), Config("sqlite-2w", "sqlite", 2),
                       Config("postgres-2w", "postgresql", 2)]
            if args.only:
                configs = [c for c in configs if c.name in args.only]
            if not self._postgres_available():
                self.log("  PostgreSQL does not answer at --postgres-admin: skipping postgres-2w")
                configs = [c for c in configs if c.database != "postgresql"]
            for config in configs:
                self.log(f"{config.name}:")
                run: dict = {}
                floor = await self.floor(config.workers, args.clients)
                ceremonies = await self.tobira(config, clients=args.clients, workload="ceremony",
                                               tag=f"{config.name}-c{args.clients}")
                run["floor"] = floor
                run["ceremonies"] = ceremonies
                run["ratio"] = round(ceremonies["ceremony_per_s"] / floor["round_per_s"], 3)
                self.log(f"  ratio to the floor: {run['ratio']}")
                budget = run["goal_budget"] = goal_budget(floor, ceremonies, os.cpu_count() or 1)
                per = budget["cpu_ms_per_ceremony"]
                self.log(f"  goal {GOAL_RATIO}: {budget['goal_ceremonies_per_s']} ceremonies/s would need"
                         f" {budget['cores_needed']} cores at this run's CPU per ceremony (server {per['server']},"
                         f" load generator {per['load_generator']}, SMTP sink {per['smtp_sink']} ms);"
                         f" {budget['cores']} cores allow {budget['cpu_ms_per_ceremony_allowed']} ms in all,"
                         f" of which the floor's cost of three bare requests is {budget['three_bare_requests_ms']} ms")
                # (The OpenID Connect sign-ins run on every configuration; the rest on sqlite-1w only.)
                asked = set(args.workloads.split(","))
                wanted = asked if config.name == "sqlite-1w" else asked & {"oidc"}
                if "tail" in wanted:
                    tail_floor = await self.floor(config.workers, args.tail_clients)
                    tail = await self.tobira(config, clients=args.tail_clients, workload="ceremony",
                                             tag=f"{config.name}-c{args.tail_clients}")
                    run["tail"] = {"floor": tail_floor, "ceremonies": tail,
                                   "tail_ratio": round(tail["p99_over_p50"] / tail_floor["p99_over_p50"], 2)}
                    self.log(f"  tail at {args.tail_clients}: ceremony p99/p50 {tail['p99_over_p50']}"
                             f" / floor {tail_floor['p99_over_p50']} = {run['tail']['tail_ratio']}")
                if "attack" in wanted:
                    attacked = await self.tobira(config, clients=args.clients, workload="attack",
                                                 tag=f"{config.name}-attack")
                    run["under_attack"] = {"ceremonies": attacked, "kept": round(
                        attacked["ceremony_per_s"] / ceremonies["ceremony_per_s"], 3)}
                    self.log(f"  under attack: {run['under_attack']['kept']:.0%} of the ceremony rate kept")
                if "oidc" in wanted:
                    signed = await self.tobira(config, clients=args.clients, workload="oidc",
                                               tag=f"{config.name}-oidc")
                    run["oidc_sign_ins"] = signed
                    self.log(f"  OpenID Connect sign-ins (authorize + token): {signed['sign_in_per_s']}/s,"
                             f" {signed['server_cpu_ms_per_sign_in']} ms server CPU each, beside"
                             f" {ceremonies['server_cpu_ms_per_ceremony']} ms per passkey ceremony")
                if "password" in wanted:
                    passwords = await self.tobira(config, clients=args.password_clients, workload="password",
                                                  tag=f"{config.name}-password")
                    run["password_logins"] = passwords
                    self.log(f"  password logins: {passwords['login_per_s']}/s,"
                             f" {passwords['logins_per_server_cpu_s']} per server CPU-second")
                self.results["runs"][config.name] = run
        finally:
            await self.sink.stop()
            shutil.rmtree(self.work, ignore_errors=True)
        return self.results

    def _postgres_available(self) -> bool:
        try:
            import psycopg

            with psycopg.connect(self.args.postgres_admin, connect_timeout=3):
                return True
        except Exception:
            return False


def _sample_assertion() -> dict:
    from softkey import SoftKey

    return SoftKey().get(secrets.token_bytes(32))


def _machine() -> dict:
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--tail-clients", type=int, default=64)
    p.add_argument("--attackers", type=int, default=16)
    p.add_argument("--password-clients", type=int, default=8)
    p.add_argument("--password-customers", type=int, default=2000)
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--attack-warmup", type=float, default=60.0,
                   help="seconds of flood before the under-attack window is measured")
    p.add_argument("--attack-duration", type=float, default=60.0,
                   help="the under-attack window (default: one whole rate-limit window)")
    p.add_argument("--workloads", default="ceremony,tail,attack,password,oidc",
                   help="which runs besides the 32-client ceremonies ('' for none): tail, attack and password "
                        "on sqlite-1w, oidc (authorize + token for a logged-in session) on every configuration")
    p.add_argument("--only", nargs="*", help="configurations to run: sqlite-1w sqlite-2w postgres-2w")
    p.add_argument("--postgres-admin", default=os.environ.get("BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"))
    p.add_argument("--json", default=str(ROOT / "bench" / "results.json"), help="where to write the results")
    args = p.parse_args(argv)
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    results = runner(Bench(args).run())
    Path(args.json).write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(_headline(results), indent=2))
    print(f"(full results in {args.json})", file=sys.stderr)


def _headline(results: dict) -> dict:
    out = {}
    for name, run in results["runs"].items():
        line = {"ceremonies_per_s": run["ceremonies"]["ceremony_per_s"], "floor_rounds_per_s":
                run["floor"]["round_per_s"], "ratio": run["ratio"], "p50_ms": run["ceremonies"]["p50_ms"],
                "p99_ms": run["ceremonies"]["p99_ms"], "errors": run["ceremonies"]["errors"],
                "server_cpu_ms_per_ceremony": run["ceremonies"]["server_cpu_ms_per_ceremony"],
                "client_cpu_ms_per_ceremony": run["ceremonies"]["client_cpu_ms_per_ceremony"],
                "cores_needed_at_goal": run["goal_budget"]["cores_needed"]}
        if "tail" in run:
            line["tail_ratio_at_64"] = run["tail"]["tail_ratio"]
            line["tail_errors_timeouts"] = run["tail"]["ceremonies"]["errors"] + run["tail"]["ceremonies"]["timeouts"]
        if "under_attack" in run:
            line["kept_under_attack"] = run["under_attack"]["kept"]
        if "password_logins" in run:
            line["password_logins_per_s"] = run["password_logins"]["login_per_s"]
            line["password_logins_per_server_cpu_s"] = run["password_logins"]["logins_per_server_cpu_s"]
        out[name] = line
    return out


if __name__ == "__main__":
    main()
