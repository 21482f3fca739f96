"""A real SMTP server in the test process (aiosmtpd) that keeps every message it receives."""

from __future__ import annotations

import re
import socket
import threading
import time
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Handler:
    def __init__(self, sink: "MailSink") -> None:
        self.sink = sink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.sink.refused:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.sink.closing & set(envelope.rcpt_tos):
            return "421 4.3.2 shutting down"  # the client closes the connection on 421
        msg = message_from_bytes(envelope.original_content or envelope.content, policy=default_policy)
        with self.sink.lock:
            self.sink.messages.append(msg)
        return "250 OK"


class MailSink:
    def __init__(self, **controller_kwargs) -> None:
        self.messages: list[EmailMessage] = []
        self.refused: set[str] = set()  # recipients it answers 550 (a mailbox that does not exist)
        self.closing: set[str] = set()  # a message to one of these is answered 421 (the server goes away)
        self.lock = threading.RLock()  # a wait_for predicate may call to()
        self.port = free_port()
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port, **controller_kwargs)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> "MailSink":
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def wait_for(self, predicate, timeout: float = 10.0) -> EmailMessage:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for msg in self.messages:
                    if predicate(msg):
                        return msg
            time.sleep(0.02)
        raise AssertionError(f"no matching mail within {timeout}s; got {[m['Subject'] for m in self.messages]}")

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for m in self.messages if address in m["To"]]

    def last_code(self, address: str, timeout: float = 10.0) -> str:
        """The code in the newest code mail to `address` (the code stands alone on its own line)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for msg in reversed(self.to(address)):
                found = re.search(r"^(\d{6})\r?$", body(msg), re.M)
                if found:
                    return found.group(1)
            time.sleep(0.02)
        raise AssertionError(f"no code mail to {address}")

    def clear(self) -> None:
        with self.lock:
            self.messages.clear()


def body(msg: EmailMessage) -> str:
    return msg.get_body(preferencelist=("plain",)).get_content()
