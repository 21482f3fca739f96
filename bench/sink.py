"""The benchmark's SMTP server, in a process of its own: `python -m bench.sink PORT`.

It accepts every message and reports it on stdout as one line per recipient,
`<recipient>\t<code or ->`, so the load generator can count delivered notifications and read login
codes without sharing memory with the server under test. It prints `ready` once it listens and
stops when its stdin is closed. A real SMTP conversation each time: Tobira's mail worker and its
code sender use their real client (aiosmtplib).

aiosmtpd spent about a millisecond of CPU per mail (a task per session, a `Message` parsed per
mail), which at thousands of logins per second would need a core of its own. This is a plain
asyncio Protocol that speaks the part of RFC 5321 a submitting client uses: EHLO/HELO (PIPELINING,
8BITMIME, SMTPUTF8, SIZE), MAIL, RCPT (any number), DATA with dot-unstuffing, RSET, NOOP, QUIT;
several messages per connection; pipelined commands answered in order. Messages are single-part
text/plain (what Tobira sends): the body after the header block is decoded only as far as its
Content-Transfer-Encoding says, then searched for a 6-digit code alone on a line.
"""

from __future__ import annotations

import asyncio
import binascii
import os
import re
import sys

HOST = b"bench.sink"
MAX_SIZE = 32 * 1024 * 1024  # advertised with SIZE; a MAIL announcing more is refused
MAX_LINE = 4096  # a command line longer than this is not from a real client

# Both start with a literal, which the regex engine scans for quickly (a ^ in MULTILINE mode is
# tried at every position: several times slower on a notice).
CODE_LINE = re.compile(rb"\n(\d{6})\r?\n")  # searched with a line break added at either end
TRANSFER_ENCODING = re.compile(rb"\ncontent-transfer-encoding:[ \t]*([a-z0-9-]+)", re.I)
MAIL_FROM = re.compile(rb"^from:[ \t]*<([^>]*)>(.*)$", re.I | re.S)
RCPT_TO = re.compile(rb"^to:[ \t]*<([^>]+)>", re.I)
SIZE_PARAM = re.compile(rb"(?:^|[ \t])size=(\d+)", re.I)

EHLO_REPLY = (b"250-" + HOST + b"\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
              b"250 SIZE " + str(MAX_SIZE).encode() + b"\r\n")
OK = b"250 2.0.0 OK\r\n"


def unstuff(data: bytes) -> bytes:
    """RFC 5321 4.5.2: the client doubled every leading dot; take one off again. Lines may end in
    a bare LF: smtplib sends bytes as given (and stuffs after LF too), as real servers accept."""
    if data.startswith(b".."):
        data = data[1:]
    return data.replace(b"\n..", b"\n.")


def find_code(message: bytes) -> str:
    """The 6-digit code standing alone on a line of the body, or "-"."""
    head_end, body_start = _blank_line(message)
    if head_end < 0:
        return "-"
    body = message[body_start:]
    encoding = TRANSFER_ENCODING.search(b"\n" + message[:head_end])
    name = encoding.group(1).lower() if encoding else b"7bit"
    if name == b"base64":
        body = binascii.a2b_base64(body)  # skips the line breaks between base64 lines
    elif name == b"quoted-printable":
        body = binascii.a2b_qp(body)
    found = CODE_LINE.search(b"\n" + body + b"\n")
    return found.group(1).decode() if found else "-"


def _blank_line(message: bytes) -> tuple[int, int]:
    """Where the header block ends and the body starts (the first is -1 without a blank line)."""
    crlf, lf = message.find(b"\r\n\r\n"), message.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return crlf, crlf + 4
    return lf, lf + 2


def report(recipients: list[bytes], message: bytes) -> bytes:
    code = find_code(message).encode()
    return b"".join(rcpt + b"\t" + code + b"\n" for rcpt in recipients)


class Session(asyncio.Protocol):
    """One client connection. All replies to one arrival of bytes go out in one write, and all its
    report lines in one write to stdout: a pipelined group costs one system call each way."""

    def __init__(self, out) -> None:
        self.out = out
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.in_data = False
        self.scanned = 0  # how much of a message's data is known to hold no terminator
        self.quitting = False
        self.sender: bytes | None = None
        self.recipients: list[bytes] = []

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(b"220 " + HOST + b" ESMTP bench sink\r\n")

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        replies: list[bytes] = []
        reports: list[bytes] = []
        while not self.quitting:
            if self.in_data:
                if not self._take_message(replies, reports):
                    break
            elif not self._take_command(replies):
                break
        if reports:
            self.out.write(b"".join(reports))
            self.out.flush()
        if replies:
            self.transport.write(b"".join(replies))
        if self.quitting:
            self.transport.close()

    def _take_command(self, replies: list[bytes]) -> bool:
        end = self.buffer.find(b"\n")
        if end < 0:
            if len(self.buffer) > MAX_LINE:
                replies.append(b"500 5.5.2 Line too long\r\n")
                self.quitting = True
            return False
        line = bytes(self.buffer[:end]).rstrip(b"\r")
        del self.buffer[:end + 1]
        verb, _, argument = line.partition(b" ")
        replies.append(self._command(verb.upper(), argument.strip()))
        return True

    def _command(self, verb: bytes, argument: bytes) -> bytes:
        if verb == b"MAIL":
            return self._mail(argument)
        if verb == b"RCPT":
            return self._rcpt(argument)
        if verb == b"DATA":
            if not self.recipients:
                return b"503 5.5.1 Error: need RCPT command\r\n"
            self.in_data, self.scanned = True, 0
            return b"354 End data with <CR><LF>.<CR><LF>\r\n"
        if verb == b"EHLO" or verb == b"HELO":
            self._reset()
            return EHLO_REPLY if verb == b"EHLO" else b"250 " + HOST + b"\r\n"
        if verb == b"RSET":
            self._reset()
            return OK
        if verb == b"NOOP":
            return OK
        if verb == b"QUIT":
            self.quitting = True
            return b"221 2.0.0 Bye\r\n"
        return b"500 5.5.2 Error: command not recognized\r\n"

    def _mail(self, argument: bytes) -> bytes:
        if self.sender is not None:
            return b"503 5.5.1 Error: nested MAIL command\r\n"
        parsed = MAIL_FROM.match(argument)
        if parsed is None:
            return b"501 5.5.4 Syntax: MAIL FROM:<address>\r\n"
        size = SIZE_PARAM.search(parsed.group(2))
        if size and int(size.group(1)) > MAX_SIZE:
            return b"552 5.3.4 Error: message too big\r\n"
        self.sender = parsed.group(1)  # may be empty: the null reverse-path of a bounce
        return OK

    def _rcpt(self, argument: bytes) -> bytes:
        if self.sender is None:
            return b"503 5.5.1 Error: need MAIL command\r\n"
        parsed = RCPT_TO.match(argument)
        if parsed is None:
            return b"501 5.5.4 Syntax: RCPT TO:<address>\r\n"
        self.recipients.append(parsed.group(1))
        return OK

    def _take_message(self, replies: list[bytes], reports: list[bytes]) -> bool:
        """The data ends with CRLF.CRLF, or at once with .CRLF when the message is empty."""
        if self.buffer.startswith(b".\r\n"):
            content, consumed = b"", 3
        else:
            end = self.buffer.find(b"\r\n.\r\n", self.scanned)
            if end < 0:
                self.scanned = max(0, len(self.buffer) - 4)  # the terminator may straddle two arrivals
                return False
            content, consumed = bytes(self.buffer[:end + 2]), end + 5
        del self.buffer[:consumed]
        reports.append(report(self.recipients, unstuff(content)))
        replies.append(OK)
        self._reset()
        return True

    def _reset(self) -> None:
        self.in_data = False
        self.sender = None
        self.recipients = []


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    out = sys.stdout.buffer
    server = await loop.create_server(lambda: Session(out), "127.0.0.1", port, reuse_address=True)
    stopped = loop.create_future()
    loop.add_reader(sys.stdin.fileno(), _on_stdin, stopped)
    out.write(b"ready\n")
    out.flush()
    try:
        await stopped
    finally:
        loop.remove_reader(sys.stdin.fileno())
        server.close()


def _on_stdin(stopped: asyncio.Future) -> None:
    """Anything but end-of-file on stdin is ignored: the parent stops us by closing it."""
    if not os.read(sys.stdin.fileno(), 4096) and not stopped.done():
        stopped.set_result(None)


def main() -> None:
    try:
        import uvloop

        run = uvloop.run
    except ImportError:
        run = asyncio.run
    run(serve(int(sys.argv[1])))


if __name__ == "__main__":
    main()
