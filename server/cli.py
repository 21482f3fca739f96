"""The `tobira` command: run the server, and the support desk's account actions."""

from __future__ import annotations

import argparse
import getpass
import os
import secrets
import signal
import sys

from . import accounts, audit, cli_oidc, cli_staff, db as dbmod, mailworker, store_outbox
from .config import ConfigError, Settings, load_settings, utcnow
from .passwords import Passwords, check_password_rules


class Fail(Exception):
    """One line for the operator, exit status 1 (2 for configuration)."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def _settings() -> Settings:
    try:
        return load_settings(os.environ)
    except ConfigError as exc:
        raise Fail(str(exc), 2) from None


def _database(settings: Settings, *, migrate: bool = True) -> dbmod.Database:
    engine = dbmod.make_engine(settings.database_url)
    try:
        dbmod.check_connection(engine)
    except ConnectionError as exc:
        raise Fail(str(exc), 2) from None
    if migrate:
        dbmod.upgrade(engine)
    return dbmod.Database(engine)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise Fail("the two passwords differ")
    reason = check_password_rules(password)
    if reason:
        raise Fail(reason)
    return password


def uvicorn_options(host: str, port: int) -> dict:
    """How `serve` runs uvicorn; bench/ serves its floor app with exactly these, to compare fairly.

    Tobira writes its own JSON request log and reads client addresses itself (trusted proxies),
    so uvicorn's access log and proxy-header handling stay off. On SIGTERM, requests in flight get
    20 seconds to finish: a request stuck on a hung database must not hold a deployment's stop."""
    return dict(host=host, port=port, log_config=None, access_log=False, proxy_headers=False, server_header=False,
                timeout_graceful_shutdown=20)


def cmd_serve(args) -> None:
    import uvicorn

    from . import logs
    from .app import create_app

    settings = _settings()
    logs.configure()
    database = _database(settings)
    if args.demo:
        _ensure_demo_customer(database)
    common = uvicorn_options(args.host, args.port)
    # SIGTERM is how systemd, Kubernetes and load balancers ask for a stop. uvicorn catches it,
    # finishes the requests in flight and the lifespan shutdown, then raises the signal again with
    # the handler it found installed: with the default one a clean stop would end as "killed by
    # SIGTERM" (status 143). This handler makes it exit status 0 (and still stops at once when the
    # signal comes before uvicorn has started). With --workers, uvicorn's supervisor handles it.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    database.engine.dispose()
    if settings.metrics_listen:
        from . import metrics

        counts = metrics.prepare_workers(settings.data_dir) if args.workers > 1 else None
        metrics.serve(settings.metrics_listen, database, utcnow, multiprocess_dir=counts)
    # Queued mail is sent by a process of its own (server/mailworker.py); the web workers only queue.
    mail_worker = mailworker.start()
    try:
        if args.workers > 1:
            os.environ[mailworker.SEPARATE] = "1"  # read by app_from_env in each worker
            uvicorn.run("server.app:app_from_env", factory=True, workers=args.workers, **common)
        else:
            uvicorn.run(create_app(settings, migrate=False, deliver_mail=False), **common)
    finally:
        # After the web workers: every notice their last requests queued is there to be sent.
        mailworker.stop(mail_worker)


def cmd_mail_worker(args) -> None:
    from . import logs

    logs.configure()
    mailworker.run(_settings())


def _exit_cleanly(signum, frame) -> None:
    sys.exit(0)


def _ensure_demo_customer(database: dbmod.Database) -> None:
    from . import store

    if database.run_sync(store.count_users):
        return
    password = secrets.token_urlsafe(9)
    code, email = "DEMO0001", "demo@example.com"
    password_hash = Passwords(workers=1).hash(password)
    database.run_sync(accounts.add_user, customer_code=code, display_name="デモ 太郎", email=email,
                      password_hash=password_hash, now=utcnow())
    # Printed once, on the console only (never the JSON log): the demo has no other way in.
    print(f"\nDemo customer created (shown once):\n  customer code: {code}\n  password:      {password}\n"
          f"  e-mail:        {email}  (codes land in the mail folder of the data directory)\n", flush=True)


def cmd_user_add(args) -> None:
    try:
        code = accounts.check_customer_code(args.code)
        email = accounts.check_email(args.email)
        name = accounts.check_display_name(args.name)
    except accounts.AccountError as exc:
        raise Fail(str(exc)) from None
    settings = _settings()
    database = _database(settings)
    password = _read_password(args.password_stdin)
    password_hash = Passwords(workers=1).hash(password)
    _run(database, accounts.add_user, customer_code=code, display_name=name, email=email,
         password_hash=password_hash, now=utcnow())
    print(f"created customer {code}")


def cmd_user_show(args) -> None:
    for key, value in _run(_database(_settings()), _audited("customer_viewed", accounts.describe, args.code), now=utcnow()).items():
        print(f"{key}: {value}")


def cmd_user_unlock(args) -> None:
    was = _run(_database(_settings()), _audited("unlock", accounts.unlock, args.code), now=utcnow())
    lock = {"password": "password lock", "hold": "support hold"}.get(was)
    print(f"unlocked {args.code} ({lock} lifted)" if lock else f"{args.code} was not locked; failure count reset")


def cmd_user_hold(args) -> None:
    ended = _run(_database(_settings()), _audited("hold", accounts.hold, args.code, args.reason), now=utcnow(),
                 reason=args.reason)
    print(f"{args.code} is on hold: every sign-in refused, passkeys included, until `tobira user unlock`; "
          f"ended {ended} session(s)")


def cmd_user_release_hold(args) -> None:
    released = _run(_database(_settings()), _audited("release-hold", accounts.release_hold, args.code), now=utcnow())
    print(f"released the hold on {released} passkey(s) of {args.code}")


def cmd_user_set_email(args) -> None:
    _run(_database(_settings()), _audited("set-email", accounts.set_email, args.code), args.email, now=utcnow())
    print(f"e-mail of {args.code} set; trusted devices forgotten")


def cmd_user_end_sessions(args) -> None:
    ended = _run(_database(_settings()), _audited("end-sessions", accounts.end_sessions, args.code), now=utcnow())
    print(f"ended {ended} session(s) of {args.code}")


def cmd_user_reset_passkeys(args) -> None:
    from . import messages

    settings = _settings()

    def notify(db, user, count):
        if user.email:
            msg = messages.reset_mail(sender=settings.mail_from, to=user.email, rp_name=settings.rp_name, lang="ja",
                                      when=utcnow(), count=count)
            store_outbox.enqueue_mail(db, kind="passkeys_reset", to_addr=user.email, message=msg.as_string(),
                                      when=utcnow())

    removed = _run(_database(settings), _audited("reset-passkeys", accounts.reset_passkeys, args.code), now=utcnow(),
                   notify=notify)
    print(f"removed {removed} passkey(s) of {args.code}; sessions ended, trusted devices forgotten; "
          "the customer is told by e-mail")


def cmd_events(args) -> None:
    import json

    for event in _run(_database(_settings()), accounts.events, args.code):
        print(json.dumps(event, ensure_ascii=False))


def cmd_stats(args) -> None:
    import json

    from . import stats

    settings = _settings()
    database = _database(settings)
    if args.csv:
        print("customer_code")
        for code in database.run_sync(stats.to_reach, utcnow()):
            print(code)
        return
    numbers = database.run_sync(stats.adoption, settings, utcnow())
    if args.json:
        print(json.dumps(numbers, ensure_ascii=False))
        return
    for key, value in numbers.items():
        if key != "logins_by_day":
            print(f"{key}: {'-' if value is None else value}")
    for day, methods in numbers["logins_by_day"].items():
        print(f"logins {day}: " + ", ".join(f"{method} {count}" for method, count in methods.items()))


def cmd_db_upgrade(args) -> None:
    _database(_settings(), migrate=True)
    print("database schema is up to date")


def _run(database: dbmod.Database, fn, *args, **kwargs):
    try:
        return database.run_sync(fn, *args, **kwargs)
    except accounts.AccountError as exc:
        raise Fail(str(exc)) from None


def _audited(action: str, fn, code: str, reason: str | None = None):
    """A support-desk action from the shell, in one transaction with its audit entry (actor: cli and
    the operating-system user)."""
    def run(db, *args, **kwargs):
        result = fn(db, code, *args, **kwargs)
        audit.record(db, audit.Actor.cli(), action, now=utcnow(), customer_code=code, reason=reason)
        return result
    return run


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tobira", description="Tobira passkey login server")
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--demo", action="store_true", help="create a demo customer when there is none")
    serve.set_defaults(fn=cmd_serve)

    user = sub.add_parser("user", help="customer accounts (support desk)").add_subparsers(dest="action", required=True)
    add = user.add_parser("add", help="create a customer")
    add.add_argument("code")
    add.add_argument("--email", required=True)
    add.add_argument("--name", required=True)
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.set_defaults(fn=cmd_user_add)
    for name, fn, help_ in (("show", cmd_user_show, "show a customer"),
                            ("unlock", cmd_user_unlock,
                             "lift the password lock (too many failed logins) or the support hold"),
                            ("release-hold", cmd_user_release_hold,
                             "after an identity check by phone: the customer's new passkeys count at once"),
                            ("end-sessions", cmd_user_end_sessions, "log the customer out everywhere"),
                            ("reset-passkeys", cmd_user_reset_passkeys,
                             "lost device: remove every passkey, end every session, forget trusted devices")):
        cmd = user.add_parser(name, help=help_)
        cmd.add_argument("code")
        cmd.set_defaults(fn=fn)
    hold = user.add_parser("hold", help="suspected takeover: refuse every sign-in (passkeys too), end sessions")
    hold.add_argument("code")
    hold.add_argument("--reason", help="why, for the record (at most 200 characters)")
    hold.set_defaults(fn=cmd_user_hold)
    set_email = user.add_parser("set-email", help="change a customer's e-mail address")
    set_email.add_argument("code")
    set_email.add_argument("email")
    set_email.set_defaults(fn=cmd_user_set_email)

    events = sub.add_parser("events", help="a customer's security events, one JSON object per line, oldest first")
    events.add_argument("code")
    events.set_defaults(fn=cmd_events)

    stats_cmd = sub.add_parser("stats", help="passkey adoption: who has one, who to reach, logins by day")
    output = stats_cmd.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="one JSON object")
    output.add_argument("--csv", action="store_true",
                        help="the codes of customers active in 30 days without a passkey, for outreach")
    stats_cmd.set_defaults(fn=cmd_stats)

    worker = sub.add_parser("mail-worker", help="deliver queued mail until stopped (`serve` runs one itself)")
    worker.set_defaults(fn=cmd_mail_worker)

    cli_oidc.add_parsers(sub)
    cli_staff.add_parsers(sub)

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="action", required=True)
    db.add_parser("upgrade", help="create or upgrade the schema (idempotent)").set_defaults(fn=cmd_db_upgrade)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.fn(args)
    except Fail as exc:
        print(f"tobira: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
