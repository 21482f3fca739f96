"""Micro-benchmark: the CPU one login notification costs to render, messages.login_mail(...).as_string(),
which the server does on every login (notices.login_notice).

    python -m bench.mail_micro [-n 5000] [--repeat 7]

Prints µs per render, best and median of --repeat runs of -n renders (the best is the one least
disturbed by other processes on the machine), for a Japanese and an English notice, and for a code
mail flattened as aiosmtplib's send_message flattens it.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import datetime, timezone

from aiosmtplib.email import flatten_message

from server import messages

UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
      "Safari/537.36")
SITE = {"sender": "no-reply@tobira.example.jp", "to": "taro.yamada@example.com", "rp_name": "とびら証券"}


def login(lang: str):
    when = datetime.now(timezone.utc)
    return lambda: messages.login_mail(**SITE, lang=lang, when=when, method="passkey", ip="203.0.113.5",
                                       browser=UA).as_string()


def code():
    return lambda: flatten_message(messages.code_mail(**SITE, lang="ja", code="123456", ttl=600, purpose="login"))


def measure(render, n: int, repeat: int) -> tuple[float, float]:
    render()  # the first of a kind fills the caches
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(n):
            render()
        runs.append((time.perf_counter() - start) / n * 1e6)
    return min(runs), statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.mail_micro", description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=5000, help="renders per run")
    parser.add_argument("--repeat", type=int, default=7, help="runs")
    args = parser.parse_args()
    for name, render in (("login_mail ja  .as_string()", login("ja")), ("login_mail en  .as_string()", login("en")),
                         ("code_mail ja   aiosmtplib flatten", code())):
        best, median = measure(render, args.n, args.repeat)
        print(f"{name:36} {best:7.1f} µs per render (median {median:.1f})")


if __name__ == "__main__":
    main()
