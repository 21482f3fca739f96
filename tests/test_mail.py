"""Mail: real SMTP in its three forms (plain with login, STARTTLS, SSL), the dev mail folder, the queue."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import ssl
from email.message import EmailMessage

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from server import store_outbox
from server.config import SmtpSettings
from server.mail import DevMailFolder, MailError, OutboxWorker, SmtpMailer
from mailsink import MailSink, body, free_port


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 and a client context that trusts only it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    import ipaddress
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    d = tmp_path_factory.mktemp("tls")
    (d / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(d / "cert.pem", d / "key.pem")
    client_ctx = ssl.create_default_context(cafile=str(d / "cert.pem"))
    return server_ctx, client_ctx


def message(to="taro@example.com", text="本文です\n\n123456\n") -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "no-reply@example.com", to, "テスト"
    msg.set_content(text, charset="utf-8")
    return msg


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"tobira", b"p@ss:word")
    return AuthResult(success=ok)


def send(mailer, *messages):
    asyncio.run(mailer.send(list(messages)))


def send_queued(mailer, *messages):
    """The outbox's way: the text stored when the mail was queued (SmtpMailer.send_raw)."""
    asyncio.run(mailer.send_raw([(m["To"], m.as_string()) for m in messages]))


# Every SMTP test runs both ways mail leaves: a code at once (a message object) and queued mail.
by_both_paths = pytest.mark.parametrize("send", [send, send_queued], ids=["at_once", "queued"])


@by_both_paths
def test_plain_smtp_with_login(send):
    sink = MailSink(authenticator=authenticator, auth_require_tls=False).start()
    try:
        send(SmtpMailer(SmtpSettings("127.0.0.1", sink.port, "plain", "tobira", "p@ss:word")), message())
        assert "123456" in body(sink.wait_for(lambda m: True))
        with pytest.raises(MailError):
            send(SmtpMailer(SmtpSettings("127.0.0.1", sink.port, "plain", "tobira", "wrong"), timeout=2), message())
    finally:
        sink.stop()


@by_both_paths
def test_starttls(tls_files, send):
    server_ctx, client_ctx = tls_files
    sink = MailSink(tls_context=server_ctx, require_starttls=True, authenticator=authenticator).start()
    try:
        send(SmtpMailer(SmtpSettings("127.0.0.1", sink.port, "starttls", "tobira", "p@ss:word"),
                        tls_context=client_ctx), message())
        assert sink.wait_for(lambda m: True)
        # A server whose certificate we do not trust is refused, not silently used.
        with pytest.raises(MailError):
            send(SmtpMailer(SmtpSettings("127.0.0.1", sink.port, "starttls")), message())
    finally:
        sink.stop()


@by_both_paths
def test_smtps(tls_files, send):
    server_ctx, client_ctx = tls_files
    sink = MailSink(ssl_context=server_ctx).start()
    try:
        send(SmtpMailer(SmtpSettings("127.0.0.1", sink.port, "ssl"), tls_context=client_ctx), message(), message())
        sink.wait_for(lambda m: True)
        assert len(sink.messages) == 2
    finally:
        sink.stop()


@by_both_paths
def test_lines_starting_with_a_dot_arrive_unchanged(send):
    """SMTP ends a message at a line holding one dot: the sender must double leading dots."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "no-reply@example.com", "taro@example.com", "dots"
    msg.set_content(".\n.one\n..two\nend\n")  # ASCII: sent as 7bit, the dots at the line starts
    assert msg["Content-Transfer-Encoding"] == "7bit"
    sink = MailSink().start()
    try:
        send(SmtpMailer(SmtpSettings("127.0.0.1", sink.port, "plain")), msg)
        assert body(sink.wait_for(lambda m: True)).replace("\r\n", "\n") == ".\n.one\n..two\nend\n"
    finally:
        sink.stop()


@by_both_paths
def test_unreachable_server_is_a_mail_error(send):
    with pytest.raises(MailError):
        send(SmtpMailer(SmtpSettings("127.0.0.1", free_port(), "plain"), timeout=3), message())


def test_dev_outbox_writes_eml_and_logs_one_line_without_the_body(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="tobira.mail")
    send(DevMailFolder(tmp_path / "mail"), message(text="code:\n\n654321\n"))
    files = list((tmp_path / "mail").glob("*.eml"))
    assert len(files) == 1
    from email import message_from_bytes
    from email.policy import default
    assert "654321" in body(message_from_bytes(files[0].read_bytes(), policy=default))
    lines = [r for r in caplog.records if r.name == "tobira.mail"]
    assert len(lines) == 1 and "654321" not in lines[0].getMessage() and "654321" not in str(vars(lines[0]))


class FlakyMailer:
    def __init__(self):
        self.up = False
        self.sent = []

    async def send(self, messages):
        if not self.up:
            raise MailError("connection refused")
        self.sent.extend(messages)


def test_queued_mail_survives_an_outage_and_is_sent_once(app, clock):
    db = app.state.ctx.db
    for i in range(3):
        db.run_sync(store_outbox.enqueue_mail, kind="login", to_addr=f"c{i}@example.com", message=message().as_string(),
                    when=clock())
    mailer = FlakyMailer()
    worker = OutboxWorker(db, mailer, clock)
    assert asyncio.run(worker.deliver_due()) == 0
    assert db.run_sync(store_outbox.pending_mail_count) == 3
    mailer.up = True
    assert asyncio.run(worker.deliver_due()) == 0, "backing off: not retried at once"
    clock.advance(31)
    assert asyncio.run(worker.deliver_due()) == 3
    assert asyncio.run(worker.deliver_due()) == 0
    assert db.run_sync(store_outbox.pending_mail_count) == 0 and len(mailer.sent) == 3


def _queued_for(app, sink, clock, *addresses):
    """A login notice queued for each address, and an outbox worker sending to `sink`."""
    db = app.state.ctx.db
    for to in addresses:
        db.run_sync(store_outbox.enqueue_mail, kind="login", to_addr=to, message=message(to=to).as_string(), when=clock())
    return db, OutboxWorker(db, SmtpMailer(SmtpSettings("127.0.0.1", sink.port, "plain")), clock)


def test_a_refused_recipient_fails_alone_and_the_rest_of_its_batch_goes_once(app, clock):
    """One address the mail server refuses (a mailbox that no longer exists) must not hold back, or
    on every retry send again, the notices of the other customers queued in the same batch."""
    sink = MailSink().start()
    sink.refused.add("gone@example.com")
    try:
        db, worker = _queued_for(app, sink, clock, "a@example.com", "gone@example.com", "b@example.com")
        assert asyncio.run(worker.deliver_due()) == 2
        assert sorted(str(m["To"]) for m in sink.messages) == ["a@example.com", "b@example.com"]
        assert db.run_sync(store_outbox.pending_mail_count) == 1  # the refused one waits for its retry
        clock.advance(31)
        assert asyncio.run(worker.deliver_due()) == 0  # refused again, alone
        assert len(sink.messages) == 2, "the others were not sent twice"
        sink.refused.clear()  # the mailbox is back
        clock.advance(61)
        assert asyncio.run(worker.deliver_due()) == 1
        assert sorted(str(m["To"]) for m in sink.messages) == ["a@example.com", "b@example.com", "gone@example.com"]
        assert db.run_sync(store_outbox.pending_mail_count) == 0
    finally:
        sink.stop()


def test_a_connection_lost_mid_batch_fails_what_was_left_and_sends_nothing_twice(app, clock):
    sink = MailSink().start()
    sink.closing.add("b@example.com")
    try:
        db, worker = _queued_for(app, sink, clock, "a@example.com", "b@example.com", "c@example.com")
        assert asyncio.run(worker.deliver_due()) == 1  # a went out; b was cut off, c never had a connection
        assert db.run_sync(store_outbox.pending_mail_count) == 2
        sink.closing.clear()
        clock.advance(31)
        assert asyncio.run(worker.deliver_due()) == 2
        assert sorted(str(m["To"]) for m in sink.messages) == ["a@example.com", "b@example.com", "c@example.com"]
    finally:
        sink.stop()


def test_a_claimed_batch_is_not_sent_by_a_second_worker(app, clock):
    db = app.state.ctx.db
    db.run_sync(store_outbox.enqueue_mail, kind="login", to_addr="a@example.com", message=message().as_string(),
                when=clock())
    first = db.run_sync(store_outbox.claim_mail, now=clock(), until=clock() + dt.timedelta(minutes=2), token="a" * 32,
                        limit=10)
    second = db.run_sync(store_outbox.claim_mail, now=clock(), until=clock() + dt.timedelta(minutes=2), token="b" * 32,
                         limit=10)
    assert len(first) == 1 and second == []
    clock.advance(121)  # the first sender died: after its claim lapses, another takes over
    assert len(db.run_sync(store_outbox.claim_mail, now=clock(), until=clock(), token="c" * 32, limit=10)) == 1


def test_sent_mail_is_removed_after_a_day_and_unsent_mail_never(app, clock):
    db = app.state.ctx.db
    for i in range(3):
        db.run_sync(store_outbox.enqueue_mail, kind="login", to_addr=f"c{i}@example.com", message=message().as_string(),
                    when=clock())
    old = db.run_sync(store_outbox.claim_mail, now=clock(), until=clock() + dt.timedelta(minutes=2), token="a" * 32, limit=1)
    db.run_sync(store_outbox.mark_mail_sent, [old[0].id], clock())
    clock.advance(dt.timedelta(days=1, minutes=1).total_seconds())
    recent = db.run_sync(store_outbox.claim_mail, now=clock(), until=clock() + dt.timedelta(minutes=2), token="b" * 32, limit=1)
    db.run_sync(store_outbox.mark_mail_sent, [recent[0].id], clock())
    assert db.run_sync(store_outbox.delete_sent_mail, clock() - dt.timedelta(days=1)) == 1  # only the one sent a day ago
    assert db.run_sync(store_outbox.pending_mail_count) == 1  # never sent: kept, whatever its age
    assert db.run_sync(store_outbox.delete_sent_mail, clock() - dt.timedelta(days=1)) == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # PostgreSQL: the same index (test_migrations)
def test_the_sender_finds_unsent_mail_through_its_index(app):
    """The unsent-mail query must not scan sent mail (which piles up until the sweep)."""
    from sqlalchemy import text

    with app.state.ctx.db.engine.connect() as conn:
        plan = " ".join(str(row[-1]) for row in conn.execute(text(
            "EXPLAIN QUERY PLAN SELECT id FROM mail_outbox WHERE sent_at IS NULL AND next_attempt_at <= :now"
            " ORDER BY id LIMIT 50"), {"now": "2030-01-01"}))
    assert "ix_mail_outbox_unsent" in plan, plan
