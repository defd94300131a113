"""The visitor's response, streamed: headers (for a page, once its charset is known), the body as it
comes, the upstream response closed whatever happens, and the whole response cut at the deadline."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import httpx
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from . import charset
from .errorpages import OVERDUE, cut_reason, error_page, reason_of
from .errors import PageTooLarge, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from .pagebody import Last, PageBody
from .recording import metrics
from .settings import Site

log = logging.getLogger("gate.proxy")  # the request path's logger, as before the split


class Streamed:
    """Streams ``body`` to the visitor and closes the upstream response whatever happens: at the end,
    on a failure mid-body, and when the visitor goes away (uvicorn's send() just returns then, so a
    watcher on receive() is what notices)."""

    def __init__(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        body: AsyncIterator[bytes],
        upstream: httpx.Response,
        site: Site,
        *,
        presence: Presence,
        page: PageBody | None = None,
        after: Callable[[], None] | None = None,
    ) -> None:
        self.status, self.headers, self.body, self.upstream, self.site = status, headers, body, upstream, site
        self.page = page
        self.presence = presence  # the request's watcher of the visitor's connection (its owner closes it)
        self.after = after  # run once the last byte went out (the page's ledger and log work: off its time)
        self.deadline = math.inf  # upstream_response_timeout: when the whole response must be over
        self.started = False  # whether the headers went out

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            # One scope: cut at the deadline, or when the visitor goes away (the watcher cancels it).
            with anyio.CancelScope(deadline=self.deadline) as cut, self.presence.cancelling(cut):
                await self._send(send, scope)
            if cut.cancelled_caught and self.presence.gone:
                log.debug("client went away mid-stream")
            elif cut.cancelled_caught:
                # A trickle (a byte now and then) never trips the read timeout; this ends it.
                log.warning("upstream response overdue for %s %s: cut", scope["method"], scope["path"])
                if not self.started:
                    page = error_page(UpstreamTimeout(OVERDUE), Request(scope), self.site)
                    await page(scope, _no_receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self.body.aclose()  # type: ignore[attr-defined]
                await self.upstream.aclose()

    async def _send(self, send: Send, scope: Scope) -> None:
        if self.page is None:
            self.started = True
            await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        end = b""  # what goes with the response's end: a page's Last bytes
        try:
            async for chunk in self.body:
                if not self.started:  # a page: its first bytes are out of the sniffer, so its charset is known
                    self.started = True
                    await send({"type": "http.response.start", "status": self.status, "headers": self._page_headers()})
                if type(chunk) is Last:
                    end = bytes(chunk)
                    break
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except UpstreamError as e:
            reason = cut_reason(e)
            metrics.INCOMPLETE.labels(reason).inc()
            log.warning(
                "response cut (%s) for %s %s, %s: %s",
                reason,
                scope["method"],
                scope["path"],
                "after its first bytes" if self.started else "before any byte",
                reason_of(e),
            )
            if not self.started:  # nothing sent yet: the visitor can still get a proper error page
                shown = e if isinstance(e, (PageTooLarge, UpstreamTimeout)) else UpstreamUnavailable(reason_of(e))
                await error_page(shown, Request(scope), self.site)(scope, _no_receive, send)
            # Otherwise headers are gone: ending the body normally would hand the visitor a
            # complete-looking, truncated page. Returning without the last message drops the connection
            # (no final chunk), and nothing more is added to the page.
            return
        await send({"type": "http.response.body", "body": end, "more_body": False})
        if self.after is not None:
            self.after()

    def _page_headers(self) -> list[tuple[bytes, bytes]]:
        """The page's headers, its Content-Type naming the charset it was read in: gate injects its
        scripts first in <head>, which can push a <meta charset> past the 1024 bytes a browser
        prescans, so the header must say it."""
        sniffed = self.page.sniffed if self.page is not None else None
        label = charset.label_for(sniffed.codec) if sniffed is not None else None
        if label is None:
            return self.headers
        out = []
        for k, v in self.headers:
            if k.lower() == b"content-type":
                media = v.split(b";")[0].strip()
                v = media + b"; charset=" + label.encode()
            out.append((k, v))
        return out


async def _no_receive() -> dict[str, Any]:
    return {"type": "http.disconnect"}


class Presence:
    """Whether the visitor is still there: one plain task per request reads ``receive`` until
    ``http.disconnect`` and cancels the scopes open in ``cancelling`` (the wait for the origin, then the
    stream). One task serves both: an anyio task group per watcher cost about 0.1 ms (bench/README.md),
    and a second task another start, turn and cancel. It must not start before the request's body has
    been read (it reads the same channel): ``cancelling`` starts it, ``close`` ends it."""

    def __init__(self, receive: Receive) -> None:
        self.receive = receive
        self.gone = False
        self._scopes: list[anyio.CancelScope] = []
        self._task: asyncio.Task[None] | None = None

    async def _watch(self) -> None:
        while (await self.receive())["type"] != "http.disconnect":
            pass
        self.gone = True
        for scope in self._scopes:
            scope.cancel()

    @contextmanager
    def cancelling(self, scope: anyio.CancelScope) -> Iterator[None]:
        """Cancels ``scope`` if the visitor goes away while it is open (at once if already gone)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._watch())
        if self.gone:
            scope.cancel()
        self._scopes.append(scope)
        try:
            yield
        finally:
            self._scopes.remove(scope)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
