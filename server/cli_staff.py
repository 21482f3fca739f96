"""`tobira staff …`: the staff console's accounts, from the server's shell (staff.py audits each, as the CLI)."""

from __future__ import annotations

import json

from . import audit, staff
from .config import utcnow


def _run(fn):
    from .cli import Fail, _database, _settings

    try:
        return _database(_settings()).run_sync(fn)
    except staff.StaffError as exc:
        raise Fail(str(exc)) from None


def cmd_add(args) -> None:
    _, code = _run(lambda db: staff.add(db, args.name, args.role, now=utcnow(), actor=audit.Actor.cli()))
    print(f"staff member {args.name} ({args.role}) added; they enrol a passkey at /admin/enrol within 24 hours with")
    print(f"enrolment_code: {code}")


def cmd_list(args) -> None:
    for member in _run(staff.listing):
        print(json.dumps(member, ensure_ascii=False))


def cmd_disable(args) -> None:
    ended = _run(lambda db: staff.disable(db, args.name, now=utcnow(), actor=audit.Actor.cli()))
    print(f"{args.name} disabled; {ended} session(s) ended")


def cmd_reset_passkeys(args) -> None:
    code = _run(lambda db: staff.reset_passkeys(db, args.name, now=utcnow(), actor=audit.Actor.cli()))
    print(f"{args.name}'s passkeys removed and sessions ended; they enrol again at /admin/enrol within 24 hours with")
    print(f"enrolment_code: {code}")


def add_parsers(sub) -> None:
    group = sub.add_parser("staff", help="staff console accounts (passkey-only)").add_subparsers(dest="action",
                                                                                                 required=True)
    add = group.add_parser("add", help="a new staff member; prints their one-time enrolment code (24 h)")
    add.add_argument("name")
    add.add_argument("--role", choices=staff.ROLES, required=True)
    add.set_defaults(fn=cmd_add)
    group.add_parser("list", help="one JSON object per staff member").set_defaults(fn=cmd_list)
    disable = group.add_parser("disable", help="disable a staff member; their sessions end at once")
    disable.add_argument("name")
    disable.set_defaults(fn=cmd_disable)
    reset = group.add_parser("reset-passkeys", help="remove a staff member's passkeys; prints a new enrolment code")
    reset.add_argument("name")
    reset.set_defaults(fn=cmd_reset_passkeys)
