"""One-time codes, with no HTTP: issue, check, expiry, attempts, binding, storage."""

from __future__ import annotations


import pytest
from sqlalchemy import select

from server import codes, sessions
from server.store_batch import Batch, write_together
from server.codes import CodeHasher
from server.models import OneTimeCode
from conftest import add_customer

HASHER = CodeHasher.from_secret("x" * 40)


@pytest.fixture
def db(app):
    return app.state.ctx.db


@pytest.fixture
def pending(app, db, clock):
    user = add_customer(app)
    return db.run_sync(lambda d: sessions.create(d, now=clock(), state=sessions.PENDING, user=user).row)


def issue(db, pending, clock, ttl=300):
    return db.run_sync(codes.issue, HASHER, session_id_hash=pending.id_hash, user_id=pending.user_id,
                       purpose="login", now=clock(), ttl=ttl)


def check(db, pending, clock, entered, max_attempts=3, session_id_hash=None, purpose="login"):
    """One entry as a login takes it: checked, and a right code used as the gate of its writes."""
    def enter(d):
        session = session_id_hash or pending.id_hash
        result = codes.check(d, HASHER, session_id_hash=session, purpose=purpose,
                             entered=entered, now=clock(), max_attempts=max_attempts)
        if result.ok and not write_together(d, Batch(), gates=[codes.use(result, max_attempts=max_attempts)]).made:
            return codes.not_used(d, session_id_hash=session, purpose=purpose, max_attempts=max_attempts)
        return result

    return db.run_sync(enter)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def test_a_code_is_six_digits_drawn_from_secrets(monkeypatch):
    calls = []
    monkeypatch.setattr(codes.secrets, "randbelow", lambda n: calls.append(n) or 42)
    assert codes.new_code() == "000042"
    assert calls == [1_000_000]
    monkeypatch.undo()
    assert len({codes.new_code() for _ in range(50)}) > 40


def test_right_code_works_once(db, pending, clock):
    code = issue(db, pending, clock)
    assert check(db, pending, clock, code).ok
    assert check(db, pending, clock, code).outcome == "no_code"


def test_only_a_keyed_hash_is_stored(db, pending, clock):
    code = issue(db, pending, clock)
    rows = db.run_sync(lambda d: list(d.execute(select(OneTimeCode))))
    assert len(rows) == 1
    assert code not in rows[0].code_hash
    # Not a plain hash either: without the key the 10^6 codes cannot be enumerated.
    import hashlib
    assert rows[0].code_hash not in {hashlib.sha256(code.encode()).hexdigest(), hashlib.sha256(f"login\x00{pending.id_hash}\x00{code}".encode()).hexdigest()}


def test_comparison_is_constant_time(db, pending, clock, monkeypatch):
    compared = []
    real = codes.hmac.compare_digest
    monkeypatch.setattr(codes.hmac, "compare_digest", lambda a, b: compared.append((a, b)) or real(a, b))
    code = issue(db, pending, clock)
    check(db, pending, clock, wrong(code))
    check(db, pending, clock, "not digits")
    assert len(compared) == 2


def test_wrong_entries_count_down_then_void_the_code(db, pending, clock):
    code = issue(db, pending, clock)
    first = check(db, pending, clock, wrong(code))
    second = check(db, pending, clock, wrong(code))
    third = check(db, pending, clock, wrong(code))
    assert (first.outcome, first.attempts_left, first.wrong_guess) == ("code_invalid", 2, True)
    assert (second.outcome, second.attempts_left) == ("code_invalid", 1)
    assert (third.outcome, third.wrong_guess) == ("code_exhausted", True)
    # Void: even the right code no longer works, and further tries are not weighed at all.
    after = check(db, pending, clock, code)
    assert (after.outcome, after.wrong_guess) == ("code_exhausted", False)


def test_code_expires_after_ttl(db, pending, clock):
    code = issue(db, pending, clock, ttl=300)
    clock.advance(299)
    assert check(db, pending, clock, wrong(code)).outcome == "code_invalid"
    clock.advance(1)
    assert check(db, pending, clock, code).outcome == "code_expired"


def test_a_new_code_voids_the_old_one(db, pending, clock):
    old = issue(db, pending, clock)
    new = issue(db, pending, clock)
    if old == new:  # one in a million: draw again
        new = issue(db, pending, clock)
    assert check(db, pending, clock, old).outcome == "code_invalid"
    assert check(db, pending, clock, new).ok


def test_code_is_bound_to_its_session_and_purpose(app, db, pending, clock):
    code = issue(db, pending, clock)
    other = db.run_sync(lambda d: sessions.create(d, now=clock(), state=sessions.PENDING, user=None).row)
    assert check(db, pending, clock, code, session_id_hash=other.id_hash).outcome == "no_code"
    assert check(db, pending, clock, code, purpose="step_up").outcome == "no_code"
    assert check(db, pending, clock, code).ok


@pytest.mark.parametrize("typed", ["１２３４５６", " 123456 ", "123456\n", "\u3000123456"])
def test_full_width_digits_and_spaces_are_accepted(typed):
    assert codes.normalise(typed) == "123456"


@pytest.mark.parametrize("typed", ["12345", "1234567", "12 3456", "abcdef", "", "１２３", "٣٤٥٦٧٨x"])
def test_anything_not_six_digits_is_a_wrong_entry(db, pending, clock, typed):
    issue(db, pending, clock)
    result = check(db, pending, clock, typed)
    assert (result.outcome, result.attempts_left, result.wrong_guess) == ("code_invalid", 2, True)


def test_resend_wait(db, pending, clock):
    issue(db, pending, clock)
    row = db.run_sync(lambda d: d.execute(select(OneTimeCode)).first())
    assert codes.resend_wait(row, now=clock(), resend_after=30) == 30
    clock.advance(29.5)
    assert codes.resend_wait(row, now=clock(), resend_after=30) == 1
    clock.advance(0.5)
    assert codes.resend_wait(row, now=clock(), resend_after=30) == 0
    assert codes.resend_wait(None, now=clock(), resend_after=30) == 0


def test_a_right_code_is_used_only_by_the_writes_it_lets_through(db, pending, clock):
    """codes.check only weighs the entry: the code goes when a login's writes are made with it."""
    code = issue(db, pending, clock)
    weighed = db.run_sync(codes.check, HASHER, session_id_hash=pending.id_hash, purpose="login", entered=code,
                          now=clock(), max_attempts=3)
    assert weighed.ok
    assert check(db, pending, clock, code).ok  # still there: nothing was written with it
    assert check(db, pending, clock, code).outcome == "no_code"


def test_a_right_code_weighed_before_the_last_wrong_entries_gets_nothing(db, pending, clock):
    """The race the row lock used to close: a right entry is weighed, then parallel wrong entries
    use up the code's attempts before its writes go out. The gate reads the count as it deletes:
    the void code lets nothing through."""
    code = issue(db, pending, clock)
    weighed = db.run_sync(codes.check, HASHER, session_id_hash=pending.id_hash, purpose="login", entered=code,
                          now=clock(), max_attempts=3)
    for _ in range(3):
        check(db, pending, clock, wrong(code))
    made = db.run_sync(lambda d: write_together(d, Batch(), gates=[codes.use(weighed, max_attempts=3)]).made)
    assert made is False
    # Answered as any entry to a void code: the right one learns nothing more than a wrong one.
    assert db.run_sync(codes.not_used, session_id_hash=pending.id_hash, purpose="login",
                       max_attempts=3).outcome == "code_exhausted"
    assert check(db, pending, clock, code).outcome == "code_exhausted"


def test_parallel_wrong_entries_count_no_more_than_the_attempts(db, pending, clock):
    """Twelve wrong entries at once (side by side on PostgreSQL): three are counted (two
    code_invalid, one code_exhausted that voids it), the rest find the code void; none is lost."""
    from concurrent.futures import ThreadPoolExecutor

    code = issue(db, pending, clock)
    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(lambda _: check(db, pending, clock, wrong(code)), range(12)))
    counted = [r for r in results if r.wrong_guess]
    assert len(counted) == 3
    assert sorted(r.outcome for r in counted) == ["code_exhausted", "code_invalid", "code_invalid"]
    rows = db.run_sync(lambda d: list(d.execute(select(OneTimeCode))))
    assert [row.wrong_attempts for row in rows] == [3]
    assert check(db, pending, clock, code).outcome == "code_exhausted"
