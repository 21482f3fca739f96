"""The benchmark's SMTP server, in a process of its own: `python -m bench.sink PORT`.

It accepts every message and reports it on stdout as one line, `<recipient>\t<code or ->`, so the
load generator can count delivered notifications and read login codes without sharing memory with
the server under test. A real SMTP conversation each time: Tobira's mail worker and its code
sender use their real client.
"""

from __future__ import annotations

import re
import sys
import threading
from email import message_from_bytes
from email.policy import default as default_policy

from aiosmtpd.controller import Controller

CODE_LINE = re.compile(r"^(\d{6})\r?$", re.M)


class Handler:
    def __init__(self) -> None:
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        message = message_from_bytes(envelope.original_content or envelope.content, policy=default_policy)
        text = message.get_body(("plain",)).get_content()
        found = CODE_LINE.search(text)
        line = "".join(f"{rcpt}\t{found.group(1) if found else '-'}\n" for rcpt in envelope.rcpt_tos)
        with self.lock:
            sys.stdout.write(line)
            sys.stdout.flush()
        return "250 OK"


def main() -> None:
    port = int(sys.argv[1])
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    try:
        sys.stdin.read()  # runs until the parent closes our stdin
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
