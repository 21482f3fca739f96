"""Micro-benchmark: what SQLite itself costs on this machine, with nothing of Tobira around it.

    python -m bench.sqlite_micro [-n 5000] [--repeat 5]

Prints the CPU (user + system, this process) per transaction on a fresh file in WAL mode with
`synchronous=NORMAL`, as Tobira opens it: an empty write transaction (BEGIN IMMEDIATE, COMMIT),
and one that inserts one or three rows of about 300 bytes into a table with two indexes (about
what the login path writes: its verify transaction inserts four rows and updates three). It is
the floor under any design that keeps sessions, ceremonies and the outbox in SQLite.
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import statistics
import tempfile
from pathlib import Path


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(db: sqlite3.Connection, inserts: int, n: int) -> float:
    start = cpu()
    for i in range(n):
        db.execute("BEGIN IMMEDIATE")
        for _ in range(inserts):
            db.execute("INSERT INTO t (key, owner, body) VALUES (?, ?, ?)", (os.urandom(16).hex(), i, "x" * 300))
        db.execute("COMMIT")
    return (cpu() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sqlite_micro", description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=5000, help="transactions per run")
    parser.add_argument("--repeat", type=int, default=5, help="runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        db = sqlite3.connect(Path(work) / "micro.db", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, key TEXT UNIQUE, owner INTEGER, body TEXT)")
        db.execute("CREATE INDEX ix_t_owner ON t (owner)")
        for inserts in (0, 1, 3):
            runs = [measure(db, inserts, args.n) for _ in range(args.repeat)]
            print(f"write transaction, {inserts} inserts: {min(runs):6.1f} µs CPU (median {statistics.median(runs):.1f})")
        db.close()


if __name__ == "__main__":
    main()
