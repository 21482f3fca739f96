"""The benchmark's SMTP sink (bench/sink.py) speaks SMTP to real clients and reports every mail.

It runs as the benchmark runs it, `python -m bench.sink PORT` in a process of its own, and is
driven with smtplib, aiosmtplib (Tobira's client) and raw pipelined commands. Each mail must
come out as one `<recipient>\t<code or ->` line per recipient, in order.
"""

from __future__ import annotations

import asyncio
import queue
import smtplib
import socket
import subprocess
import sys
import threading
from email.header import Header
from email.message import EmailMessage
from email.mime.text import MIMEText
from pathlib import Path

import aiosmtplib
import pytest

from bench.sink import find_code, unstuff

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sink:
    """The sink process and its report lines (read by a thread, so the pipe never fills)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.sink", str(self.port)], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        assert self.lines.get(timeout=10) == "ready"

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.decode().rstrip("\n"))

    def reports(self, n: int) -> list[tuple[str, str]]:
        return [tuple(self.lines.get(timeout=5).split("\t")) for _ in range(n)]

    def stop(self) -> int:
        self.proc.stdin.close()
        return self.proc.wait(timeout=10)


@pytest.fixture
def sink():
    s = Sink()
    yield s
    assert s.stop() == 0  # closing stdin stops it
    assert s.lines.empty(), "reports nobody asked for"


def tobira_mail(body: str, to: str) -> MIMEText:
    """Built as server/messages.py builds its mails: UTF-8 text/plain, base64 body, RFC 2047 subject."""
    msg = MIMEText(body, "plain", "utf-8")
    msg["From"] = "tobira@bench.example"
    msg["To"] = to
    msg["Subject"] = Header("[Tobira] 確認コードのお知らせ", "utf-8")
    return msg


CODE_BODY = "ログインの画面で次の確認コードを入力してください。\n\n{code}\n\n有効期限は10分です。"
NOTICE_BODY = "お客様のアカウントにログインがありました。\n\n日時：2026年11月22日 10:00（日本時間）\n方法：パスキー"


def eight_bit_mail(body: str, to: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "tobira@bench.example", to, "code"
    msg.set_content(body, cte="8bit")
    return msg


def test_smtplib_several_messages_per_connection(sink):
    with smtplib.SMTP("127.0.0.1", sink.port, timeout=5) as smtp:
        assert smtp.ehlo("client.example")[0] == 250
        assert {"pipelining", "8bitmime", "size"} <= set(smtp.esmtp_features)
        smtp.sendmail("tobira@bench.example", ["a@bench.example", "b@bench.example"],
                      tobira_mail(CODE_BODY.format(code="123456"), "a@bench.example").as_string())
        assert smtp.noop()[0] == 250
        smtp.send_message(tobira_mail(NOTICE_BODY, "c@bench.example"))
        assert smtp.rset()[0] == 250
        # 8bit, with lines that start with a dot (smtplib doubles them; the sink must undo it and
        # must not take a lone "." inside the message for its end).
        smtp.send_message(eight_bit_mail(".\n..leading dots\n.\n654321\nbye", "d@bench.example"))
        # Bytes with bare LF line ends, as smtplib sends them unchanged.
        smtp.sendmail("tobira@bench.example", ["e@bench.example"],
                      b"Subject: raw\n\nno code here: 1234567\n.\n111111\n")
    assert sink.reports(5) == [("a@bench.example", "123456"), ("b@bench.example", "123456"),
                               ("c@bench.example", "-"), ("d@bench.example", "654321"),
                               ("e@bench.example", "111111")]


def test_smtplib_helo_a_null_sender_and_no_body(sink):
    with smtplib.SMTP("127.0.0.1", sink.port, timeout=5) as smtp:
        assert smtp.helo("client.example")[0] == 250
        smtp.sendmail("", ["bounce@bench.example"], b"Subject: headers only\r\n")
    assert sink.reports(1) == [("bounce@bench.example", "-")]


def test_aiosmtplib_like_tobiras_mail_worker(sink):
    async def send() -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=sink.port, timeout=5)
        async with client:
            for i in range(3):  # the outbox sends its queued mail as stored text, one connection per batch
                text = tobira_mail(NOTICE_BODY, f"n{i}@bench.example").as_string()
                await client.sendmail("tobira@bench.example", [f"n{i}@bench.example"], text.encode())
            await client.send_message(tobira_mail(CODE_BODY.format(code="000042"), "コード@bench.example"))
            await client.send_message(eight_bit_mail("8bit\n.\n987654\n", "x@bench.example"))
    asyncio.run(send())
    assert sink.reports(5) == [("n0@bench.example", "-"), ("n1@bench.example", "-"), ("n2@bench.example", "-"),
                               ("コード@bench.example", "000042"), ("x@bench.example", "987654")]


class Raw:
    """A bare SMTP connection: bytes out exactly as given, replies read as they come."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.pending = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def replies(self, n: int) -> list[bytes]:
        """The next n replies (a multi-line reply counts once), each as its final line."""
        out = []
        while len(out) < n:
            while b"\r\n" not in self.pending:
                chunk = self.sock.recv(65536)
                assert chunk, f"closed after {out}"
                self.pending += chunk
            line, self.pending = self.pending.split(b"\r\n", 1)
            if line[3:4] != b"-":
                out.append(line)
        return out

    def codes(self, n: int) -> list[int]:
        return [int(line[:3]) for line in self.replies(n)]


def test_pipelined_commands_in_one_packet(sink):
    raw = Raw(sink.port)
    assert raw.codes(1) == [220]
    raw.send(b"EHLO client.example\r\nMAIL FROM:<tobira@bench.example> BODY=8BITMIME SIZE=300\r\n"
             b"RCPT TO:<p@bench.example>\r\nRCPT TO:<q@bench.example>\r\nDATA\r\n")
    assert raw.codes(5) == [250, 250, 250, 250, 354]
    # The message, dot-stuffed, ends in the same packet as the next transaction's commands.
    raw.send(b"Subject: pipelined\r\n\r\n..\r\n..this line began with a dot\r\n222333\r\n.\r\n"
             b"MAIL FROM:<tobira@bench.example>\r\nRCPT TO:<r@bench.example>\r\nDATA\r\n")
    assert raw.codes(4) == [250, 250, 250, 354]
    # This one arrives in pieces, its end split between two of them.
    for piece in (b"Subject: in pieces\r\nContent-Transfer-Encoding: base64\r\n\r\n",
                  b"NDQ0NTU1Cg==\r\n", b".", b"\r\n"):
        raw.send(piece)
    assert raw.codes(1) == [250]
    # An empty message: the end comes at once.
    raw.send(b"MAIL FROM:<>\r\nRCPT TO:<s@bench.example>\r\nDATA\r\n")
    assert raw.codes(3) == [250, 250, 354]
    raw.send(b".\r\nRSET\r\nNOOP\r\nQUIT\r\n")
    assert raw.codes(4) == [250, 250, 250, 221]
    assert raw.sock.recv(100) == b""  # closed after QUIT
    assert sink.reports(4) == [("p@bench.example", "222333"), ("q@bench.example", "222333"),
                               ("r@bench.example", "444555"), ("s@bench.example", "-")]


def test_commands_out_of_order_are_refused(sink):
    raw = Raw(sink.port)
    assert raw.codes(1) == [220]
    raw.send(b"EHLO client.example\r\nRCPT TO:<a@bench.example>\r\nDATA\r\nFOO bar\r\n"
             b"MAIL FROM:<x@bench.example> SIZE=999999999999\r\nMAIL FROM:x@bench.example\r\n"
             b"MAIL FROM:<x@bench.example>\r\nMAIL FROM:<y@bench.example>\r\nRCPT TO:<>\r\nDATA\r\n")
    assert raw.codes(10) == [250, 503, 503, 500, 552, 501, 250, 503, 501, 503]
    raw.send(b"QUIT\r\n")
    assert raw.codes(1) == [221]


def test_unstuff_takes_one_dot_off_each_stuffed_line():
    assert unstuff(b"..a\r\n...b\r\n..\r\nc..\r\n") == b".a\r\n..b\r\n.\r\nc..\r\n"


@pytest.mark.parametrize("message, code", [
    (b"Content-Transfer-Encoding: base64\r\n\r\nMTIzNDU2Cg==\r\n", "123456"),  # "123456\n"
    (b"Content-Transfer-Encoding: BASE64\r\nSubject: x\r\n\r\nYWJjCjk5OTk5OQ==\r\n", "999999"),
    (b"Content-Transfer-Encoding: quoted-printable\r\n\r\ncode=3A\r\n=31=32=33=34=35=36\r\n", "123456"),
    (b"Subject: 8bit\r\n\r\n\xe3\x82\xb3\xe3\x83\xbc\xe3\x83\x89\r\n765432\r\n", "765432"),
    (b"Subject: 123456\r\n\r\nthe code is in the subject only\r\n", "-"),
    (b"Subject: x\r\n\r\n1234567\r\n12345\r\nabc123456\r\n", "-"),
    (b"Content-Transfer-Encoding: base64\r\n\r\n", "-"),
])
def test_find_code(message, code):
    assert find_code(message) == code
