"""The outbox worker in a process of its own, beside the web workers of `tobira serve`.

Sending a notice is CPU work (the SMTP conversation, in Python) that has nothing to do with
answering the request that queued it. In the web process it competed for the interpreter lock
with every request: a tenth of the server's time at load (bench/, README "Speed"). Here it runs
on its own interpreter; the queue stays in the database, so a crash of either process loses no
mail, and several instances' workers share the queue without sending twice (mail.OutboxWorker).

The worker notices new mail by polling (a cheap indexed query several times a second), since
the web workers have no way to wake another process. It stops on SIGTERM or SIGINT, or when the
process that started it goes away (its stdin closes), after one last pass over what is due.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys

from . import db as dbmod
from .config import Settings, utcnow
from .mail import OutboxWorker, make_mailer

log = logging.getLogger("tobira.mail")

SEPARATE = "TOBIRA_SEPARATE_MAIL_WORKER"  # set by `tobira serve` for its --workers: they only queue
POLL_SECONDS = 0.2  # the most a notice waits in the queue while the worker is idle
STOP_SECONDS = 15  # how long `stop` waits for the last pass before it kills the worker


def run(settings: Settings) -> None:
    """The worker process's main: deliver until told to stop."""
    # A notice may wait a moment; a customer at the login page may not. When the CPUs are busy,
    # the scheduler serves the web workers first (a flood of logins gets through, their notices
    # follow a little later).
    with contextlib.suppress(OSError):
        os.nice(10)
    database = dbmod.Database(dbmod.make_engine(settings.database_url))
    # Bigger batches than in-process: under load, fewer SMTP connections and fewer claims that
    # take SQLite's write lock from the web process.
    worker = OutboxWorker(database, make_mailer(settings), utcnow, idle_seconds=POLL_SECONDS, batch=200)
    asyncio.run(_serve(worker))
    database.close()
    database.engine.dispose()


async def _serve(worker: OutboxWorker) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, worker.stop)
    with contextlib.suppress(OSError, ValueError):  # no usable stdin: only signals stop it
        loop.add_reader(sys.stdin.fileno(), _stop_on_eof, worker)
    log.info("mail worker started", extra={"pid": os.getpid()})
    await worker.run()
    await worker.last_pass(STOP_SECONDS - 5)
    log.info("mail worker stopped")


def _stop_on_eof(worker: OutboxWorker) -> None:
    if not os.read(sys.stdin.fileno(), 4096):  # EOF: the parent is gone
        asyncio.get_running_loop().remove_reader(sys.stdin.fileno())
        worker.stop()


def start() -> subprocess.Popen:
    """Start a worker (same settings: the environment and working directory are inherited). Its
    stdin is a pipe held by this process: if this process dies, even by SIGKILL, the worker ends."""
    return subprocess.Popen([sys.executable, "-m", "server", "mail-worker"], stdin=subprocess.PIPE)


def stop(worker: subprocess.Popen) -> None:
    """Ask for a last pass and an exit; kill it if it does not come."""
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    if worker.stdin:
        worker.stdin.close()
