"""The type checker (mypy, set up in pyproject.toml) over server/: nothing found, and every place
it is told to look away says why."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_mypy_finds_nothing_in_server():
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout


def test_every_type_ignore_says_why():
    """A reason after it on its line (`# type: ignore[code]  # why`), or in the comment just above."""
    unexplained = []
    for path in sorted((ROOT / "server").rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, 1):
            if "type: ignore" not in line:
                continue
            after = line.split("type: ignore", 1)[1]
            reason_beside = re.match(r"\[[\w-]+(, *[\w-]+)*\] +# +\S", after)
            reason_above = number > 1 and lines[number - 2].strip().startswith("#")
            if not re.match(r"\[[\w-]+", after) or not (reason_beside or reason_above):
                unexplained.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not unexplained, "\n".join(unexplained)
