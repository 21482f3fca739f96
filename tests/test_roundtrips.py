"""Round trips to PostgreSQL per login (bench/roundtrips.py), counted by tests/pgturns.py.

At most 4 for a passkey login (options + verify, with its session and queued notice) and 6 for a
password + code login, with the rate-limit windows in Redis (what the README advises for many
instances, the reason to run PostgreSQL at all): the database is then asked only about the login.
With the windows in the database each window a login asks about adds its statement: the
ceilings for that are what is reached today, so the count cannot grow unnoticed.
"""

from __future__ import annotations

import psycopg
import pytest

from pgturns import TurnCounter
from conftest import PG_SERVER

AT_MOST = {"passkey login (options + verify)": 4, "password + code login": 6}
WITH_WINDOWS_IN_POSTGRESQL = {"passkey login (options + verify)": 5, "password + code login": 15}
REDIS = "redis://127.0.0.1:6379/0"


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


def test_login_round_trips_with_the_windows_in_redis(pg):
    import redis

    try:
        redis.Redis.from_url(REDIS, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip(f"no Redis at {REDIS}")
    from bench.roundtrips import measure

    counts = measure(PG_SERVER, REDIS)
    assert set(counts) == set(AT_MOST)
    for flow, most in AT_MOST.items():
        assert counts[flow] <= most, f"{flow}: {counts[flow]} round trips (at most {most})"


def test_login_round_trips_with_the_windows_in_postgresql(pg):
    from bench.roundtrips import measure

    counts = measure(PG_SERVER)
    assert set(counts) == set(WITH_WINDOWS_IN_POSTGRESQL)
    for flow, ceiling in WITH_WINDOWS_IN_POSTGRESQL.items():
        assert counts[flow] <= ceiling, f"{flow}: {counts[flow]} round trips (ceiling {ceiling})"
