"""Shared by tests/ and e2e/: the helpers in tests/ are importable, and a real SMTP sink per test."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "tests"))

from mailsink import MailSink  # noqa: E402


@pytest.fixture
def mailsink():
    sink = MailSink().start()
    yield sink
    sink.stop()
