"""SQLite's single writer: one thread that runs the transactions handed to it, in order.

(db.Database uses it for SQLite; PostgreSQL runs transactions side by side on a thread pool.)
"""

from __future__ import annotations

import asyncio
import queue
import threading
import weakref
from typing import Any, Callable, TypeVar

T = TypeVar("T")


class DatabaseThread:
    """One thread that runs the callables handed to it, in order (SQLite's single writer).

    What `loop.run_in_executor` does, for less: no concurrent.futures.Future chained to an asyncio
    one, and the thread hands back everything it finished since it last woke the loop in one call,
    so a busy thread wakes the event loop once per batch of transactions instead of once per
    transaction. The thread ends when the Database that made it is gone.
    """

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=_work, args=(self._jobs,), name=name, daemon=True).start()
        weakref.finalize(self, self._jobs.put, None)

    def submit(self, fn: Callable[[], T]) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._jobs.put((loop, future, fn))
        return future


def _work(jobs: queue.SimpleQueue) -> None:
    while True:
        finished: dict = {}  # loop -> [(future, result, exception)]
        job = jobs.get()
        while job is not None:  # None: the Database is gone
            loop, future, fn = job
            outcome: tuple[asyncio.Future, Any, BaseException | None]
            try:
                outcome = (future, fn(), None)
            except BaseException as exc:  # handed to the awaiting task, as run_in_executor does
                outcome = (future, None, exc)
            finished.setdefault(loop, []).append(outcome)
            try:
                job = jobs.get_nowait()
            except queue.Empty:
                break
        for loop, outcomes in finished.items():
            try:
                loop.call_soon_threadsafe(_settle, outcomes)
            except RuntimeError:  # that loop is closed: nobody is waiting any more
                pass
        if job is None:
            return


def _settle(outcomes: list) -> None:
    for future, result, exc in outcomes:
        if future.cancelled():
            continue
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)
