"""The audit trail: who (a staff member, or the CLI and its operating-system user), in what role,
did what to which customer, why, from where and when. Entries are only ever added (the table's
triggers refuse UPDATE and DELETE; migration 0009)."""

from __future__ import annotations

import csv
import getpass
import io
from dataclasses import dataclass
from datetime import datetime

from . import store_staff
from .db import Tx
from .rows import AuditRow, StaffRow


@dataclass(frozen=True)
class Actor:
    name: str
    role: str  # support | admin | cli
    ip: str | None
    staff_id: int | None = None  # None: the CLI

    @classmethod
    def staff(cls, member: StaffRow, ip: str | None) -> "Actor":
        return cls(member.name, member.role, ip, member.id)

    @classmethod
    def cli(cls) -> "Actor":
        """`tobira …` on the server: the operating-system user who ran it."""
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "unknown"
        return cls(f"cli:{user}"[:64], "cli", None)


def record(db: Tx, actor: Actor, action: str, *, now: datetime, customer_code: str | None = None,
           reason: str | None = None) -> None:
    store_staff.add_audit(db, AuditRow(id=None, at=now, staff=actor.name, role=actor.role, action=action,
                                       customer_code=customer_code, reason=reason, ip=actor.ip))


def as_json(entry: AuditRow) -> dict:
    return {"at": entry.at.isoformat(), "staff": entry.staff, "role": entry.role, "action": entry.action,
            "customer_code": entry.customer_code, "reason": entry.reason, "ip": entry.ip}


FIELDS = ("at", "staff", "role", "action", "customer_code", "reason", "ip")


def as_csv(entries: list[AuditRow]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\r\n")
    writer.writeheader()
    for entry in entries:
        row = as_json(entry)
        # A cell a spreadsheet would read as a formula is written as text (CSV injection).
        writer.writerow({k: ("'" + v if isinstance(v, str) and v[:1] in "=+-@\t\r" else v) for k, v in row.items()})
    return out.getvalue()
