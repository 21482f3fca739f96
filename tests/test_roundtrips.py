"""Round trips to PostgreSQL per login (bench/roundtrips.py), counted by tests/pgturns.py.

Issue 12 asks for at most 4 (passkey login: options + verify) and 6 (password + code). Today's
ceilings below keep the count from growing until the data layer brings it down to those.
"""

from __future__ import annotations

import psycopg
import pytest

from pgturns import TurnCounter
from conftest import PG_SERVER

TODAY = {"passkey login (options + verify)": 16, "password + code login": 35}


@pytest.fixture
def pg(pg_template):
    if pg_template is None:
        pytest.skip(f"no PostgreSQL server at {PG_SERVER}")


def test_the_proxy_counts_turns_not_statements(pg):
    host_port = PG_SERVER.rsplit("@", 1)[1]
    host, port = host_port.split(":")
    turns = TurnCounter(host, int(port))
    try:
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{turns.port}/postgres", autocommit=True) as conn:
            turns.reset()  # connecting and authenticating are not the statements' turns
            conn.execute("SELECT 1").fetchone()
            assert turns.reset() == 1
            with conn.pipeline():  # three statements sent together: one turn
                for n in range(3):
                    conn.execute("SELECT %s", (n,))
            assert turns.reset() == 1
            with conn.transaction():  # BEGIN, the statement, COMMIT: one turn each
                conn.execute("SELECT 1").fetchone()
            assert turns.reset() == 3
    finally:
        turns.close()


def test_login_round_trips_do_not_grow(pg):
    from bench.roundtrips import measure

    counts = measure(PG_SERVER)
    assert set(counts) == set(TODAY)
    for flow, ceiling in TODAY.items():
        assert counts[flow] <= ceiling, f"{flow}: {counts[flow]} round trips (today's ceiling {ceiling})"
