"""Logs as one JSON object per line, each with the request id it belongs to.

Nothing secret is ever handed to a logger: passwords, codes, cookie values and tokens stay out of
`extra` by construction (see tests/test_logs.py, which scans a whole login for them).
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import threading
import time
from datetime import datetime, timezone

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

# Attributes every LogRecord has; anything else was passed in `extra` and belongs in the line.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


# json.dumps with options builds a new encoder for every call: one, made once.
_encode = json.JSONEncoder(ensure_ascii=False, default=str).encode


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id.get(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in line and key != "color_message":
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return _encode(line)


class BatchingHandler(logging.StreamHandler):
    """Writes log lines in batches: at most every `every` seconds, at once from WARNING up.

    Each write to the stream is a system call, and on the virtual machines Tobira runs on a system
    call costs as much as formatting the line (about 20 microseconds measured here); under load a
    login made four of them. A flusher thread writes what is waiting when the server goes quiet,
    and logging.shutdown (at exit) the rest: only a process killed outright (SIGKILL) loses up to
    `every` seconds of lines, which for security events are in the database anyway.
    """

    def __init__(self, stream, *, every: float = 0.2) -> None:
        super().__init__(stream)
        self.every = every
        self._lines: list[str] = []
        self._due = 0.0
        self._closed = False
        threading.Thread(target=self._flush_when_quiet, name="tobira-log", daemon=True).start()

    def emit(self, record: logging.LogRecord) -> None:  # called with self.lock held
        try:
            self._lines.append(self.format(record))
            if record.levelno >= logging.WARNING or time.monotonic() >= self._due or len(self._lines) >= 500:
                self.flush()
        except Exception:  # noqa: BLE001 -- logging's own convention: never raise from a handler
            self.handleError(record)

    def flush(self) -> None:
        assert self.lock is not None  # made by logging.Handler.__init__ (createLock); typeshed allows None
        with self.lock:
            if self._lines:
                self.stream.write("\n".join(self._lines) + "\n")
                self._lines.clear()
                self._due = time.monotonic() + self.every
            super().flush()

    def close(self) -> None:
        self._closed = True  # ends the flusher thread (logging.shutdown, or configure() again)
        self.flush()
        super().close()

    def _flush_when_quiet(self) -> None:
        while not self._closed:
            time.sleep(self.every)
            if self._lines:
                try:
                    self.flush()
                except Exception:  # noqa: BLE001 -- a closed stream at exit: nothing left to do
                    return


def configure(level: int = logging.INFO) -> None:
    handler = BatchingHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in root.handlers:
        if isinstance(old, BatchingHandler):
            old.close()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The log's lines never name the thread, process or source line: not looking them up saves a
    # sizeable part of every line's cost (the logging HOWTO, "Optimization").
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging._srcfile = None
    # Uvicorn's own lines go through the same JSON handler; its access log is replaced by ours.
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("alembic").setLevel(logging.WARNING)
