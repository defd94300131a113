"""Work that need not delay anyone, run while the worker would otherwise wait: the access line.

When a response has sent its last byte, what is left (format and write its access line: about 0.1 ms
in `gate serve` here, bench/inproc.py) delays whatever the worker does next, often the same visitor's
next request, already on its way. Held here instead, it runs the next time gate waits for an origin
(gate.netio: a read that finds nothing yet, while the origin works on another core), and at the latest
MAX_DELAY seconds after it was held, as soon as MAX_HELD are held, and when the app shuts down (the
lifespan runs what is held before it reports its shutdown complete). Held work runs in the order it
came; one that raises is logged and the rest still run.

One queue per process (``LATER``): gate.netio has no app to ask. Work held on one event loop is run
before work from another is held (tests run a loop each).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

log = logging.getLogger("gate.later")

MAX_DELAY = 0.05  # seconds: an access line is written at most this much after its response ended
MAX_HELD = 64


class Later:
    def __init__(self) -> None:
        self._held: list[Callable[[], None]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def hold(self, work: Callable[[], None]) -> None:
        """Run ``work`` when the worker next waits (or MAX_DELAY from now); at once outside a loop."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.run()
            work()
            return
        if loop is not self._loop:
            self.run()
            self._loop = loop
        self._held.append(work)
        if len(self._held) >= MAX_HELD:
            self.run()
        elif self._timer is None:
            self._timer = loop.call_later(MAX_DELAY, self.run)

    def __bool__(self) -> bool:
        return bool(self._held)

    def run(self) -> None:
        """Run everything held, oldest first."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._held:
            held, self._held = self._held, []
            for work in held:
                try:
                    work()
                except Exception:
                    log.exception("held work failed")


LATER = Later()
