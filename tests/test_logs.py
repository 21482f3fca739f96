"""No password, code, cookie value or token in any log line of a whole login run."""

from __future__ import annotations

import io
import logging
import re

from server.logs import JsonFormatter
from mailsink import body
from conftest import PASSWORD


def test_a_whole_login_leaks_nothing_into_the_logs(client, customer, mailsink, clock, json_log):
    secrets_seen = {PASSWORD, "wrong password 1"}
    client.post("/api/login/password", json={"customer_code": "TARO1234", "password": "wrong password 1"})
    client.post("/api/login/password", json={"customer_code": "TARO1234", "password": PASSWORD})
    first = mailsink.last_code("taro@example.com")
    secrets_seen.add(first)
    client.post("/api/login/code", json={"code": f"{(int(first) + 1) % 10**6:06d}"})
    clock.advance(30)
    client.post("/api/login/code/resend")
    code = mailsink.last_code("taro@example.com")
    secrets_seen.add(code)
    r = client.post("/api/login/code", json={"code": code, "remember_device": True})
    assert r.status_code == 200
    for value in client.cookies.values():
        secrets_seen.add(value)
        secrets_seen.update(part for part in value.split(".") if len(part) > 10)
    client.get("/api/session")
    client.post("/api/logout")
    client.post("/api/login/password", json={"customer_code": "TARO1234", "password": PASSWORD})
    mailsink.wait_for(lambda m: "ログインのお知らせ" in str(m["Subject"]))
    text = json_log.getvalue()
    assert text.count("\n") >= 10, "the run was logged"
    for line in text.splitlines():
        assert line.startswith("{") and '"request_id"' in line
    for secret in secrets_seen:
        assert secret not in text, f"a secret reached the logs: {secret[:4]}…"
    # Codes in any form: no 6-digit run from the mails appears in the log.
    for code in re.findall(r"^(\d{6})\r?$", "\n".join(body(m) for m in mailsink.messages), re.M):
        assert code not in text


def test_every_security_event_is_one_json_log_line(client, customer, mailsink, caplog):
    import json as _json
    caplog.set_level(logging.INFO, logger="tobira.events")
    client.post("/api/login/password", json={"customer_code": "TARO1234", "password": "wrong password 1"})
    from conftest import login
    login(client, mailsink)
    lines = [r for r in caplog.records if r.name == "tobira.events"]
    kinds = [r.event for r in lines]
    assert kinds == ["login_failed", "code_sent", "login"]
    formatted = JsonFormatter().format(lines[0])
    assert _json.loads(formatted)["event"] == "login_failed" and "wrong password 1" not in formatted


def test_a_rolled_back_event_is_not_logged(app, caplog, clock):
    from server import store
    caplog.set_level(logging.INFO, logger="tobira.events")

    def fails(db):
        store.add_event(db, kind="never_happened", when=clock(), user_id=None)
        raise RuntimeError("rolled back")

    try:
        app.state.ctx.db.run_sync(fails)
    except RuntimeError:
        pass
    assert not [r for r in caplog.records if getattr(r, "event", None) == "never_happened"]


def test_log_lines_are_written_in_batches_but_never_lost_or_reordered():
    import time

    from server.logs import BatchingHandler

    stream = io.StringIO()
    handler = BatchingHandler(stream, every=0.3)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger("tobira.test-batching")
    log.propagate, log.handlers[:] = False, [handler]
    log.setLevel(logging.INFO)
    log.info("first")  # the first after a quiet spell goes out at once
    assert stream.getvalue() == "first\n"
    log.info("second")
    log.info("third")
    assert stream.getvalue() == "first\n"  # waiting for the batch
    log.warning("trouble")  # from WARNING up, at once, with what waited before it
    assert stream.getvalue() == "first\nsecond\nthird\ntrouble\n"
    log.info("fourth")
    deadline = time.monotonic() + 5
    while "fourth" not in stream.getvalue() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stream.getvalue().endswith("trouble\nfourth\n")  # the flusher wrote it when things went quiet
    log.info("fifth")
    log.info("sixth")
    handler.flush()  # what logging.shutdown does at exit
    assert stream.getvalue().endswith("fourth\nfifth\nsixth\n")


def test_a_closed_batching_handler_writes_what_waited_and_stops_its_flusher():
    import threading
    import time

    from server.logs import BatchingHandler

    before = threading.active_count()
    stream = io.StringIO()
    handler = BatchingHandler(stream, every=0.05)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.handle(logging.makeLogRecord({"msg": "one", "levelno": logging.INFO}))
    handler.handle(logging.makeLogRecord({"msg": "two", "levelno": logging.INFO}))
    handler.close()
    assert stream.getvalue() == "one\ntwo\n"
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert threading.active_count() == before
