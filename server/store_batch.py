"""Writes that go to the database together, as one statement: the last step of a login.

A login's last step writes several rows (the new session, the old one gone, the failure count
reset, its event, its notice e-mail), all of them only if one condition holds: the sign counter's
compare-and-set, the code not yet used, the account not locked. On PostgreSQL every statement is a
round trip. So the domain gathers those writes in a `Batch` (the store's write functions take one
wherever they take a `Tx`, when nobody reads what they return), and `write_together` sends the
conditions and the writes as one statement of data-modifying CTEs: PostgreSQL makes all of it or
none of it, and the `Tx` needs no BEGIN or COMMIT around it. SQLite has no writing CTEs and no
round trips to save: there the same statements run one after the other in the call's transaction.

What may go in a batch: the store's own statements (named parameters: the combined statement is
built once per shape), writes whose results nobody reads before the batch is sent. Every part of
one PostgreSQL statement sees the database as it was when the statement began, and of two
changes to one row PostgreSQL keeps one: so no part may depend on another's effect, and no two
parts (gates included) may UPDATE or DELETE in one table; `write_together` refuses such a batch
on both databases, so a test on SQLite finds it too.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Sequence

from sqlalchemy import Delete, Insert, Select, Update, bindparam, exists, func, insert, literal, select
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
    changed = [statement.table for statement, _ in (*gates, *batch.writes) if not isinstance(statement, Insert)]
    if len(changed) != len(set(changed)):
        raise ValueError(f"two parts of one batch change rows of one table: {sorted(map(str, changed))}")
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
    parts = [*gates, *batch.writes]
    shape = (tuple((statement, tuple(params)) for statement, params in parts), len(gates), tuple(batch.reads))
    combined = _combined(shape)
    values = {f"p{i}_{name}": value for i, (_, params) in enumerate(parts) for name, value in params.items()}
    row = db.execute_alone(combined, values).one()
    for i, passed_rows in enumerate(row[:len(gates)]):
        if not passed_rows:
            return Written(i, [])
    return Written(None, list(row[len(gates):len(gates) + len(batch.reads)]))


@functools.lru_cache(maxsize=64)
def _combined(shape: tuple) -> Select:
    """One statement for every batch of this shape (the same statements, with the same parameter
    names, the same gates and reads): built once, so each login only binds values to it, and
    SQLAlchemy's compiled cache has it from the second time on. Each part's parameters are renamed
    p<part>_<name>: two parts may both have one called "h"."""
    parts, gate_count, reads = shape
    ctes = []
    passed = None  # the condition every later part hangs on: the last gate returned a row
    for i, (statement, names) in enumerate(parts):
        part: Insert | Update | Delete
        if isinstance(statement, Insert):
            table = statement.table
            values = select(*(bindparam(f"p{i}_{name}", type_=table.c[name].type) for name in names))
            part = insert(table).from_select(list(names), values if passed is None else values.where(passed))
        else:
            renamed = _renamed(statement, i)
            assert isinstance(renamed, (Update, Delete))  # a batch holds writes only
            part = renamed if passed is None else renamed.where(passed)
        cte = part.cte(f"part{i}")
        ctes.append(cte)
        if i < gate_count:
            passed = exists(cte.select())
    columns: list[Any] = [select(func.count()).select_from(cte).scalar_subquery() for cte in ctes[:gate_count]]
    columns += [select(list(ctes[gate_count + i].c)[0]).limit(1).scalar_subquery() for i in reads]
    return select(*columns or [literal(1)]).add_cte(*ctes)


def _renamed(statement: UpdateBase, part: int) -> ExternallyTraversible:
    """The statement with each named parameter k renamed p<part>_k (its type kept)."""
    def renamed(element: ExternallyTraversible, **_: Any) -> ExternallyTraversible | None:
        if isinstance(element, BindParameter) and not element.unique:
            return bindparam(f"p{part}_{element.key}", type_=element.type)
        return None

    return replacement_traverse(statement, {}, renamed)
