"""Shares of the upstream pool: how many origin requests one visitor address, and one site path, may
have under way at once, so that no visitor and no path can take every pooled connection.

Without them, 32 visitors who never read a large response, or 32 requests to one origin URL that
stalls, held all of ``upstream_max_connections`` and everyone else waited for a connection until the
504. A share is a fraction of the pool (``upstream_share_per_client``, ``upstream_share_per_path``),
at least one connection. A request over its share waits for a turn for up to
``upstream_connect_timeout`` seconds (the same wait the pool itself allows), then gets a 503 with
Retry-After. Shares count per worker process, as the pool does.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio

from .settings import Settings


class ShareExceeded(Exception):
    """Too many requests under way for one visitor or one path; ``what`` says which."""

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(what)


@dataclass
class _Slot:
    semaphore: anyio.Semaphore
    users: int = 0  # holders and waiters


class _Counter:
    """A semaphore per key, made on demand and dropped when nobody holds or waits for it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._slots: dict[str, _Slot] = {}

    def _slot(self, key: str) -> _Slot:
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot(anyio.Semaphore(self.size))
        return slot

    def take(self, key: str) -> bool:
        """Take a share of ``key`` if one is free, at once (no loop turn: anyio's acquire() gives the
        loop a turn even then, and a request waits behind every streaming page on each turn,
        bench/headofline.py)."""
        slot = self._slot(key)
        try:
            slot.semaphore.acquire_nowait()
        except anyio.WouldBlock:
            return False
        slot.users += 1
        return True

    async def acquire(self, key: str) -> None:
        """Wait for a share of ``key`` (after ``take`` found none free)."""
        slot = self._slot(key)
        slot.users += 1
        try:
            await slot.semaphore.acquire()
        except BaseException:
            self._leave(key)
            raise

    def release(self, key: str) -> None:
        self._slots[key].semaphore.release()
        self._leave(key)

    def _leave(self, key: str) -> None:
        slot = self._slots[key]
        slot.users -= 1
        if slot.users == 0:
            del self._slots[key]

    def __len__(self) -> int:
        return len(self._slots)


class Shares:
    def __init__(self, settings: Settings) -> None:
        pool = settings.upstream_max_connections
        self.per_client = max(1, math.floor(pool * settings.upstream_share_per_client))
        self.per_path = max(1, math.floor(pool * settings.upstream_share_per_path))
        self.wait = settings.upstream_connect_timeout
        self.clients = _Counter(self.per_client)
        self.paths = _Counter(self.per_path)

    @asynccontextmanager
    async def claim(self, client: str, path: str) -> AsyncIterator[None]:
        """Hold one request's share of the pool for ``client`` and ``path``; raises ShareExceeded when no
        turn came within the wait."""
        taken: list[tuple[_Counter, str]] = []
        deadline: float | None = None  # of the wait, from the first share that was not free
        try:
            for counter, key, what in ((self.clients, client, "visitor"), (self.paths, path, "path")):
                if not counter.take(key):
                    if deadline is None:
                        deadline = anyio.current_time() + self.wait
                    with anyio.CancelScope(deadline=deadline) as waiting:
                        await counter.acquire(key)
                    if waiting.cancelled_caught:
                        raise ShareExceeded(what)
                taken.append((counter, key))
            yield
        finally:
            for counter, key in reversed(taken):
                counter.release(key)
