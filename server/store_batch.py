"""Writes that go to the database together, as one statement: the last step of a login.

A login's last step writes several rows (the new session, the old one gone, the failure count
reset, its event, its notice e-mail), all of them only if one condition holds: the sign counter's
compare-and-set, the code not yet used, the account not locked. On PostgreSQL every statement is a
round trip. So the domain gathers those writes in a `Batch` (the store's write functions take one
wherever they take a `Tx`, when nobody reads what they return), and `write_together` sends the
conditions and the writes as one statement of data-modifying CTEs: PostgreSQL makes all of it or
none of it, and the `Tx` needs no BEGIN or COMMIT around it. SQLite has no writing CTEs and no
round trips to save: there the same statements run one after the other in the call's transaction.

What may go in a batch: writes whose results nobody reads before the batch is sent. Every part of
one PostgreSQL statement sees the database as it was when the statement began, so no write may
depend on another's effect (two writes to one row would be undefined): a batch's writes touch
different rows, and anything that must be read first is read before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from sqlalchemy import Delete, Insert, Update, exists, func, insert, literal, select
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.visitors import ExternallyTraversible, replacement_traverse

from .db import Tx

Statement = tuple[UpdateBase, dict[str, Any]]  # a write and the values of its named parameters


class Batch:
    """Writes gathered to be sent together (`write_together`); a store write function given a
    Batch instead of a Tx adds its statement here and returns at once."""

    __slots__ = ("writes", "reads", "info")

    def __init__(self) -> None:
        self.writes: list[Statement] = []
        self.reads: list[int] = []  # which writes' RETURNING rows write_together hands back
        self.info: dict[str, Any] = {}  # events, moved to the Tx's when the writes are made

    def execute(self, statement: UpdateBase, params: dict[str, Any] | None = None, *, read: bool = False) -> None:
        if read:
            self.reads.append(len(self.writes))
        self.writes.append((statement, params or {}))


Writer = Tx | Batch  # where a write whose result nobody reads may go


@dataclass(frozen=True, slots=True)
class Written:
    """What write_together did. blocked_by: the first gate that did not pass (its index), None when
    all passed and the writes were made; values: what each write added with read=True returned."""

    blocked_by: int | None
    values: list[Any]

    @property
    def made(self) -> bool:
        return self.blocked_by is None


def write_together(db: Tx, batch: Batch, *, gates: Sequence[Statement] = ()) -> Written:
    """The gates in order (each an UPDATE or DELETE with RETURNING that must return a row, each
    only tried when the ones before it passed, each on rows of its own), then, only when all
    passed, the batch's writes (nothing of them when one did not). A gate that passed has made
    its write even when a later one does not pass: a code used up stays used when the lock then
    stops the login, as the caller's refusal says."""
    if db.dialect.name == "postgresql":
        written = _in_one_statement(db, batch, gates)
    else:
        written = _one_after_another(db, batch, gates)
    if written.made:
        db.info.setdefault("events", []).extend(batch.info.get("events", []))
    return written


def _one_after_another(db: Tx, batch: Batch, gates: Sequence[Statement]) -> Written:
    for i, (statement, params) in enumerate(gates):
        if db.execute(statement, params).first() is None:
            return Written(i, [])
    values = []
    for i, (statement, params) in enumerate(batch.writes):
        result = db.execute(statement, params)
        if i in batch.reads:
            values.append(result.scalar())
    return Written(None, values)


def _in_one_statement(db: Tx, batch: Batch, gates: Sequence[Statement]) -> Written:
    ctes = []
    passed = None  # the condition every later part hangs on: the last gate returned a row
    for i, (statement, params) in enumerate(gates):
        gate = _with_values(statement, params)
        assert isinstance(gate, (Update, Delete))  # a gate is an UPDATE or DELETE ... RETURNING
        cte = (gate if passed is None else gate.where(passed)).cte(f"gate{i}")
        ctes.append(cte)
        passed = exists(cte.select())
    written = []
    for i, (statement, params) in enumerate(batch.writes):
        write = _insert_from_values(statement, params, passed) if isinstance(statement, Insert) else \
            _with_values(statement, params)
        assert isinstance(write, (Insert, Update, Delete))  # a batch holds writes only
        if passed is not None and not isinstance(write, Insert):
            write = write.where(passed)
        written.append(write.cte(f"write{i}"))
    columns: list[Any] = [select(func.count()).select_from(cte).scalar_subquery() for cte in ctes]
    columns += [select(list(written[i].c)[0]).limit(1).scalar_subquery() for i in batch.reads]
    row = db.execute_alone(select(*columns or [literal(1)]).add_cte(*ctes, *written)).one()
    for i, passed_rows in enumerate(row[:len(ctes)]):
        if not passed_rows:
            return Written(i, [])
    return Written(None, list(row[len(ctes):len(ctes) + len(batch.reads)]))


def _with_values(statement: UpdateBase, params: dict[str, Any]) -> ExternallyTraversible:
    """The statement with its named parameters replaced by these values (as anonymous parameters,
    so two parts of one statement may both have a parameter called "h")."""
    def value_of(element: ExternallyTraversible, **_: Any) -> ExternallyTraversible | None:
        if isinstance(element, BindParameter) and element.key in params:
            return literal(params[element.key], element.type)
        return None

    return replacement_traverse(statement, {}, value_of)


def _insert_from_values(statement: Insert, params: dict[str, Any], passed) -> Insert:
    """INSERT ... SELECT <values> [WHERE <the gates passed>]: the table and the values only, so a
    batch's INSERTs are plain ones of new rows (no RETURNING, no ON CONFLICT: store.py's are)."""
    table = statement.table
    values = select(*(literal(value, table.c[name].type) for name, value in params.items()))
    return insert(table).from_select(list(params), values if passed is None else values.where(passed))
