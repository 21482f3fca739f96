"""Real moving parts for the fault tests: a private PostgreSQL cluster a test may stop, `tobira
serve` processes, an SMTP sink that can go down or hold mail, and one browser's cookies.

The cluster is the test's own (initdb into a temporary folder, its own port, 127.0.0.1 only), so
stopping it disturbs nobody else's database.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

import httpx
from aiosmtpd.controller import Controller

from mailsink import MailSink, body, free_port

PASSWORD = "correct horse battery"
ORIGIN = "http://localhost:8000"


# --- a private PostgreSQL cluster ------------------------------------------------------------


def postgres_bindir() -> Path | None:
    """The newest PostgreSQL server binaries on this machine (Debian's layout first)."""
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: p.parent.name, reverse=True):
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).parent
    return None


class PrivatePostgres:
    """initdb + pg_ctl on a free port. As root, runs as the `postgres` OS user (initdb refuses root)."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.port = free_port()
        as_root = os.geteuid() == 0
        # As root, in /tmp itself: the postgres user must be able to reach the folder (TMPDIR may not be).
        self.root = Path(tempfile.mkdtemp(prefix="tobira-pg-", dir="/tmp" if as_root else None))
        self.data = self.root / "data"
        self.logfile = self.root / "postgres.log"
        self.as_user: list[str] = []
        if as_root:
            import pwd

            pw = pwd.getpwnam("postgres")  # the fixture has checked that the user exists
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self.as_user = [shutil.which("runuser") or "/usr/sbin/runuser", "-u", "postgres", "--"]

    def _run(self, *args: str, timeout: float = 60) -> None:
        done = subprocess.run([*self.as_user, str(self.bindir / args[0]), *args[1:]], cwd=self.root,
                              timeout=timeout, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if done.returncode:
            log = self.logfile.read_text(errors="replace")[-2000:] if self.logfile.exists() else ""
            raise AssertionError(f"{args[0]} {' '.join(args[1:3])} failed ({done.returncode}):\n{done.stdout}\n{log}")

    def init(self) -> "PrivatePostgres":
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync",
                  "--no-instructions")
        with open(self.data / "postgresql.conf", "a") as conf:
            # fsync off: only an OS crash could lose data, and a stop (even -m immediate) is not one.
            conf.write(f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                       f"unix_socket_directories = '{self.root}'\nfsync = off\nfull_page_writes = off\n"
                       "shared_buffers = 16MB\nmax_connections = 60\n")
        return self

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-w", "-t", "30", "start")

    def stop(self, mode: str = "fast") -> None:
        """fast: backends are told to quit and rolled back; immediate: killed (crash recovery on start)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().splitlines()[0])

    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.admin_url(), autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def destroy(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                os.kill(self.postmaster_pid(), signal.SIGCONT)  # in case a test left it frozen
                self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


# --- tobira serve ----------------------------------------------------------------------------


def server_env(tmp_path: Path, database_url: str, smtp_url: str) -> dict:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("TOBIRA_")},
            "TOBIRA_DATA_DIR": str(tmp_path), "TOBIRA_DATABASE_URL": database_url,
            "TOBIRA_SECRET_KEY": "f" * 16 + "fault-test-secret-not-for-production", "TOBIRA_ORIGIN": ORIGIN,
            "TOBIRA_SMTP_URL": smtp_url}


def add_customers(database_url: str, customers: list[tuple[str, str]]) -> None:
    """The schema and customers (code, e-mail), as `tobira user add` makes them, without its start-up cost."""
    from server import accounts, db as dbmod
    from server.config import utcnow
    from server.passwords import Passwords

    engine = dbmod.make_engine(database_url)
    try:
        dbmod.upgrade(engine)
        pw = Passwords(workers=1)
        try:
            password_hash = pw.hash(PASSWORD)  # one hash for all: argon2 costs, and the salt is in it
        finally:
            pw.close()
        database = dbmod.Database(engine)
        for code, email in customers:
            database.run_sync(accounts.add_user, customer_code=code, display_name="山田 太郎", email=email,
                              password_hash=password_hash, now=utcnow())
    finally:
        engine.dispose()


class Server:
    """One `python -m server serve` process (its own process group, so no worker outlives a test)."""

    def __init__(self, env: dict, cwd: Path, *, workers: int = 1) -> None:
        self.env, self.cwd, self.workers = env, cwd, workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = cwd / f"server-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> "Server":
        cmd = [sys.executable, "-m", "server", "serve", "--port", str(self.port)]
        if self.workers > 1:
            cmd += ["--workers", str(self.workers)]
        # A file, not a pipe: a pipe nobody reads fills up and stalls the server.
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"{self.url} did not start:\n{self.log()[-3000:]}"
            time.sleep(0.1)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def children(self) -> list[int]:
        found = []
        for task in Path(f"/proc/{self.proc.pid}/task").glob("*/children"):
            found += [int(pid) for pid in task.read_text().split()]
        return found

    def kill_all(self) -> None:
        """Clean-up: SIGKILL this server's process group (only the processes this object started)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)


class Browser:
    """One browser's cookies, sent to whichever server process is up."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.cookies = httpx.Cookies()
        self.headers = {"Origin": ORIGIN}

    def post(self, path: str, json=None, *, timeout: float = 20) -> httpx.Response:
        r = httpx.post(self.base + path, json=json if json is not None else {}, headers=self.headers,
                       cookies=self.cookies, timeout=timeout)
        self._keep(r)
        return r

    def get(self, path: str, *, timeout: float = 20) -> httpx.Response:
        r = httpx.get(self.base + path, headers=self.headers, cookies=self.cookies, timeout=timeout)
        self._keep(r)
        return r

    def _keep(self, response: httpx.Response) -> None:
        for name, value in response.cookies.items():
            self.cookies.set(name, value, domain="", path="/")


# --- an SMTP sink that can go down, slow down, or hold mail ----------------------------------


class _ControlledHandler:
    def __init__(self, sink: "ControlledSink") -> None:
        self.sink = sink

    async def handle_DATA(self, server, session, envelope):
        sink = self.sink
        msg = message_from_bytes(envelope.original_content or envelope.content, policy=default_policy)
        if sink.hold is not None and sink.hold(msg):
            sink.holding.set()
            while not sink.release.is_set():  # the sender waits, as on a stuck mail server
                await asyncio.sleep(0.05)
            return "451 4.3.0 try again later"  # never counted as delivered
        with sink.lock:
            sink.arrivals += 1
        if sink.delay:
            await asyncio.sleep(sink.delay)
        with sink.lock:
            sink.messages.append(msg)
        return "250 OK"


class ControlledSink(MailSink):
    """MailSink plus: down()/up() on the same port, `delay` before accepting, `hold(msg)` to stall."""

    def __init__(self) -> None:
        super().__init__()
        self.delay = 0.0
        self.hold = None
        self.arrivals = 0  # messages that reached DATA (counted before the delay)
        self.holding, self.release = threading.Event(), threading.Event()
        self.controller = self._controller()
        self.running = False

    def _controller(self) -> Controller:
        return Controller(_ControlledHandler(self), hostname="127.0.0.1", port=self.port)

    def start(self) -> "ControlledSink":
        self.controller.start()
        self.running = True
        return self

    def stop(self) -> None:
        self.release.set()
        if self.running:
            self.controller.stop()
            self.running = False

    def down(self) -> None:
        self.controller.stop()
        self.running = False

    def up(self) -> None:
        self.controller = self._controller()  # an aiosmtpd Controller cannot be started twice
        self.start()

    def subjects(self, address: str) -> list[str]:
        return [str(m["Subject"]) for m in self.to(address)]


__all__ = ["PASSWORD", "ORIGIN", "PrivatePostgres", "postgres_bindir", "server_env", "add_customers", "Server",
           "Browser", "ControlledSink", "body", "free_port"]
