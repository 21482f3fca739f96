"""Sending mail: real SMTP, or the dev mail folder; and the outbox queue kept in the database.

A one-time code is sent at once, on the request (the customer is waiting for it, and must hear
if it could not be sent). Everything else (login notices, lock notices) is written to the
`mail_outbox` table in the transaction that caused it and delivered by `OutboxWorker` in batches,
off the request path: a crash or an SMTP outage delays those mails but loses none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import smtplib
import ssl
import time
from datetime import timedelta
from email import message_from_string
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32, default as default_policy
from email.utils import parseaddr
from pathlib import Path
from typing import Callable, Protocol

import aiosmtplib

from . import store_outbox
from .config import Settings, SmtpSettings
from .db import Database
from .queueworker import QueueWorker

log = logging.getLogger("tobira.mail")

_LINE_END = re.compile(r"\r\n|\r|\n")


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:200]


def _crlf(text: str) -> str:
    """SMTP's line ends (smtplib leaves those of a bytes message as they are)."""
    return _LINE_END.sub("\r\n", text)


class MailError(Exception):
    """The message could not be handed to the mail server."""


class Mailer(Protocol):
    async def send(self, messages: list[Message]) -> None: ...


class SmtpMailer:
    """Hands messages to an SMTP server over one connection per batch (plain, STARTTLS or SSL)."""

    def __init__(self, smtp: SmtpSettings, *, tls_context: ssl.SSLContext | None = None, timeout: float = 15,
                 sender: str | None = None) -> None:
        self.smtp = smtp
        self.tls_context = tls_context or ssl.create_default_context()
        self.timeout = timeout
        self.sender = sender  # the envelope sender for queued mail (else read from its From header)

    async def send(self, messages: list[Message]) -> None:
        await self._session([lambda client, msg=msg: client.send_message(msg) for msg in messages])

    async def send_raw(self, mails: list[tuple[str, str]]) -> list[str | None]:
        """(recipient, message text) pairs: queued mail, rendered when it was queued, goes out as it is.
        Returns, per mail, None when the server took it, else why not: a recipient or message the
        server refuses fails alone, so the rest of the batch is not sent again with its retry.
        A server that cannot be reached or logged into raises MailError (nothing was sent).

        Parsing the text back into a message object and flattening it again would cost more CPU
        than the SMTP conversation itself (it did: a fifth of the server's time under load). The
        conversation runs on the standard library's blocking client in a thread: it costs less
        than half of aiosmtplib's CPU per message (240 against 590 microseconds here, sending to
        bench/sink.py), and queued mail has nobody waiting on the event loop for it."""
        jobs = []
        for to_addr, text in mails:
            sender = self.sender or parseaddr(HeaderParser(policy=compat32).parsestr(text, headersonly=True)["From"])[1]
            jobs.append((sender, to_addr, _crlf(text).encode("utf-8")))
        return await asyncio.to_thread(self._send_blocking, jobs) if jobs else []

    def _send_blocking(self, jobs: list[tuple[str, str, bytes]]) -> list[str | None]:
        s = self.smtp
        outcomes: list[str | None] = []
        try:
            client: smtplib.SMTP  # SMTP_SSL is an SMTP
            if s.security == "ssl":
                client = smtplib.SMTP_SSL(s.host, s.port, timeout=self.timeout, context=self.tls_context)
            else:
                client = smtplib.SMTP(s.host, s.port, timeout=self.timeout)
            with client:
                if s.security == "starttls":
                    client.starttls(context=self.tls_context)  # refused by the server: an error, never plain
                if s.username:
                    client.login(s.username, s.password or "")
                for sender, to_addr, data in jobs:
                    try:
                        client.sendmail(sender, [to_addr], data)
                        outcomes.append(None)
                    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
                        outcomes.append(_reason(exc))  # this one only: smtplib has reset the transaction
        except (smtplib.SMTPException, OSError) as exc:  # OSError: refused, timed out, TLS failed
            if not outcomes:
                raise MailError(_reason(exc)) from None
            outcomes += [_reason(exc)] * (len(jobs) - len(outcomes))  # the connection broke mid-batch
        return outcomes

    async def _session(self, jobs: list) -> None:
        if not jobs:
            return
        s = self.smtp
        client = aiosmtplib.SMTP(
            hostname=s.host, port=s.port, timeout=self.timeout,
            use_tls=s.security == "ssl", start_tls=s.security == "starttls",
            tls_context=self.tls_context if s.security != "plain" else None,
        )
        try:
            async with client:
                if s.username:
                    await client.login(s.username, s.password or "")
                for job in jobs:
                    await job(client)
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
            raise MailError(_reason(exc)) from None


class DevMailFolder:
    """Development: each message becomes a .eml file; the log says where (never what it says)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def send(self, messages: list[Message]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for msg in messages:
            path = self.directory / f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(4)}.eml"
            path.write_bytes(bytes(msg))
            log.info("mail written to the dev mail folder",
                     extra={"to": msg["To"], "subject": str(msg["Subject"]), "file": str(path)})


def make_mailer(settings: Settings) -> Mailer:
    if settings.smtp is None:
        return DevMailFolder(settings.data_dir / "mail")
    return SmtpMailer(settings.smtp, sender=settings.mail_from)


class OutboxWorker(QueueWorker):
    """Delivers queued mail in batches; several instances share the queue without sending twice."""

    name = "outbox"

    def __init__(self, db: Database, mailer: Mailer, clock: Callable, *, idle_seconds: float = 2.0,
                 gather_seconds: float = 0.05, batch: int = 50) -> None:
        super().__init__(idle_seconds=idle_seconds, gather_seconds=gather_seconds)
        self.db, self.mailer, self.clock, self.batch = db, mailer, clock, batch

    async def deliver_due(self) -> int:
        """One pass over what is due; returns how many were sent."""
        now = self.clock()
        token = secrets.token_hex(16)
        rows = await self.db.run(store_outbox.claim_mail, now=now, until=now + timedelta(minutes=2), token=token,
                                       limit=self.batch)
        if not rows:
            return 0
        send_raw = getattr(self.mailer, "send_raw", None)
        try:
            if send_raw is not None:
                outcomes = await send_raw([(r.to_addr, r.message) for r in rows])
            else:
                await self.mailer.send([message_from_string(r.message, policy=default_policy) for r in rows])
                outcomes = [None] * len(rows)
        except MailError as exc:
            outcomes = [str(exc)] * len(rows)
        sent = [r.id for r, why in zip(rows, outcomes) if why is None]
        if sent:
            await self.db.run(store_outbox.mark_mail_sent, sent, self.clock())
        failed = [(r, why) for r, why in zip(rows, outcomes) if why is not None]
        if failed:
            log.warning("outbox delivery failed", extra={"error": failed[0][1], "count": len(failed)})
        for r, why in failed:
            # Back off: 30 s, 1 min, 2 min ... at most an hour between tries.
            delay = min(3600, 30 * 2 ** min(r.attempts, 7))
            await self.db.run(store_outbox.mark_mail_failed, r.id, retry_at=self.clock() + timedelta(seconds=delay), error=why)
        return len(sent)

    async def last_pass(self, seconds: float) -> None:
        """At shutdown: send what is due, for at most `seconds`; whatever is left stays queued for
        the next start."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(seconds):
                await self.deliver_due()
