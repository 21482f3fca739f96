"""The queries of the e-mailed-code path's own tables: one-time codes and remembered PCs (trusted
devices). Functions take the caller's `db` like store.py's."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Table, bindparam, delete, insert, select, update

from .db import Tx
from .rows import CodeRow, DeviceRow
from .store import first, tables, written
from .store_batch import Statement, Writer

codes: Table = tables["one_time_codes"]
devices: Table = tables["trusted_devices"]
_p = bindparam


# --- one-time codes ------------------------------------------------------------------------

_DROP_CODE = delete(codes).where(codes.c.session_id_hash == _p("s"), codes.c.purpose == _p("p"))
_ADD_CODE = insert(codes)
_CODE_FOR = select(codes).where(codes.c.session_id_hash == _p("s"), codes.c.purpose == _p("p"))
_CODE_FOR_LOCKED = _CODE_FOR.with_for_update()
_WRONG_ATTEMPT = (update(codes).where(codes.c.id == _p("cid"), codes.c.wrong_attempts < _p("max"))
                  .values(wrong_attempts=codes.c.wrong_attempts + 1).returning(codes.c.wrong_attempts))
_USE_CODE = (delete(codes).where(codes.c.id == _p("cid"), codes.c.wrong_attempts < _p("max"))
             .returning(codes.c.id))


def replace_code(db: Writer, *, session_id_hash: str, user_id: int, purpose: str, code_hash: str,
                 sent_at: datetime, expires_at: datetime) -> None:
    """Store a new code; the old one for the same session and purpose stops working."""
    db.execute(_DROP_CODE, {"s": session_id_hash, "p": purpose})
    db.execute(_ADD_CODE, {"session_id_hash": session_id_hash, "user_id": user_id, "purpose": purpose,
                           "code_hash": code_hash, "sent_at": sent_at, "expires_at": expires_at,
                           "wrong_attempts": 0})


def drop_code(db: Tx, session_id_hash: str, purpose: str) -> None:
    db.execute(_DROP_CODE, {"s": session_id_hash, "p": purpose})


def code_for(db: Tx, session_id_hash: str, purpose: str, *, lock: bool = False) -> CodeRow | None:
    """The live code of a session and purpose. lock: held until the call ends (a resend: two at
    once for one session wait for each other instead of both replacing the same code)."""
    if lock:
        return written(db.execute(_CODE_FOR_LOCKED, {"s": session_id_hash, "p": purpose}), CodeRow)
    return first(db, _CODE_FOR, {"s": session_id_hash, "p": purpose}, CodeRow)


def add_wrong_attempt(db: Tx, code_id: int, *, max_attempts: int) -> int | None:
    """One wrong entry counted, alone, while the code has entries left: the new count, or None when
    it had none left (parallel entries: at most max_attempts are ever counted)."""
    return db.execute_alone(_WRONG_ATTEMPT, {"cid": code_id, "max": max_attempts}).scalar()


def gate_code_use(code_id: int, *, max_attempts: int) -> Statement:
    """The right code is deleted as it is used, only while it has entries left: it works once, and
    never after max_attempts wrong ones (codes.check)."""
    return _USE_CODE, {"cid": code_id, "max": max_attempts}


# --- trusted devices (remembered PCs) ------------------------------------------------------

_ADD_DEVICE = insert(devices)
_DEVICE = select(devices).where(devices.c.token_hash == _p("t"), devices.c.user_id == _p("u"),
                                devices.c.expires_at > _p("now"))
_USE_DEVICE = update(devices).where(devices.c.id == _p("d")).values(last_used_at=_p("when"))


def add_trusted_device(db: Writer, *, user_id: int, token_hash: str, created_at: datetime, expires_at: datetime,
                       user_agent: str | None) -> None:
    db.execute(_ADD_DEVICE, {"user_id": user_id, "token_hash": token_hash, "created_at": created_at,
                             "expires_at": expires_at, "last_used_at": None, "user_agent": user_agent})


def trusted_device(db: Tx, token_hash: str, user_id: int, now: datetime) -> DeviceRow | None:
    return first(db, _DEVICE, {"t": token_hash, "u": user_id, "now": now}, DeviceRow)


def use_trusted_device(db: Writer, device_id: int, when: datetime) -> None:
    db.execute(_USE_DEVICE, {"d": device_id, "when": when})


def trusted_devices_of(db: Tx, user_id: int) -> list[DeviceRow]:
    return [DeviceRow(*row) for row in db.read(select(devices).where(devices.c.user_id == user_id)
                                               .order_by(devices.c.id))]


def forget_trusted_device(db: Tx, user_id: int, device_id: int) -> bool:
    return db.execute(delete(devices).where(devices.c.user_id == user_id, devices.c.id == device_id)).rowcount > 0


def forget_trusted_devices(db: Tx, user_id: int) -> int:
    return db.execute(delete(devices).where(devices.c.user_id == user_id)).rowcount
