"""A queue that a background task drains: the mail outbox (mail.OutboxWorker) and the apps'
back-channel logouts (oidc_logout.LogoutSender). Rows wait in the database, written in the
transaction that made them; the task polls, and is woken at once when something was queued."""

from __future__ import annotations

import asyncio
import logging

from .errors import Unavailable

log = logging.getLogger("tobira.queue")


class QueueWorker:
    """Runs `deliver_due` until it finds nothing, then waits for `wake()` or `idle_seconds`."""

    name = "queue"

    def __init__(self, *, idle_seconds: float, gather_seconds: float = 0.0) -> None:
        self.idle_seconds, self.gather_seconds = idle_seconds, gather_seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False

    async def deliver_due(self) -> int:
        """One pass over what is due; how many were delivered."""
        raise NotImplementedError

    def wake(self) -> None:
        """Something was queued: deliver it now rather than at the next poll (safe from any thread)."""
        loop, event = self._loop, self._wake
        if loop is None or event is None or loop.is_closed():
            return  # not running: the next start delivers it
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            event.set()
        else:
            loop.call_soon_threadsafe(event.set)

    async def run(self) -> None:
        """Deliver until stop(). Stops on a flag, not by cancellation: a cancel that lands while a
        database call runs in its worker thread can be lost, and shutdown would then hang."""
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        self._stopping = False
        wake = self._wake
        while not self._stopping:
            try:
                while await self.deliver_due() and not self._stopping:
                    pass
            except Unavailable:
                log.warning(f"{self.name}: database unavailable, will retry")
            except Exception:  # never let a bad row or a database blip stop the queue for good
                log.exception(f"{self.name} pass failed")
            if self._stopping:
                break
            try:
                async with asyncio.timeout(self.idle_seconds):
                    await wake.wait()
                # Let a rush of logins fill one batch (one SMTP connection) instead of one each.
                await asyncio.sleep(self.gather_seconds)
            except TimeoutError:
                pass
            wake.clear()

    def stop(self) -> None:
        self._stopping = True
        self.wake()
