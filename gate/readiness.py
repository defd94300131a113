"""/_gate/readyz: should this instance get new traffic? (/_gate/healthz only says the process answers.)

Not ready, 503 with the reasons in the body, when
- it is draining: SIGTERM (or SIGINT) has arrived, or the app's shutdown has begun. uvicorn stops
  accepting at once and gives in-flight responses ``shutdown_timeout`` seconds to finish;
- no origin answers: each non-demo upstream gets a HEAD / with a short timeout, on connections of its
  own (visitors who fill the upstream pool must not make the instance look down), remembered for
  ``CACHE_SECONDS`` so that probes from many places cost one request. Any HTTP answer counts (a 404 or
  a 500 still proves the way there works). With several origins, one that is down does not take the
  instance out: every replica shares it, and gate already answers its visitors with a 502 page;
- a check registered in ``Readiness.checks`` fails (name -> async callable that raises when not ready;
  meant for the report store).

The body names the reason but not the details (an origin's internal address, a database's error
text): /_gate/ answers the public. The details go to the log, once each time a state changes.

The draining flag is set from the signal: in the lifespan, ``draining_on_signals`` puts a handler in
front of the one the server (uvicorn) installed, which still runs after it.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import httpx
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from .settings import Settings
from .upstream import Upstream, origin_name

log = logging.getLogger("gate.readiness")
CACHE_SECONDS = 2.0
PROBE_TIMEOUT = 2.0
_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Readiness:
    """Whether this instance should get traffic; one per app (``app.state.gate.readiness``)."""

    def __init__(self, settings: Settings) -> None:
        self.draining = False
        # upstream URL -> the Host header to probe it with (the first site's that names it)
        self.origins: dict[str, str] = {}
        self.labels: dict[str, str] = {}  # upstream URL -> the public names of the sites behind it
        for site in settings.sites:
            if not site.is_demo:
                self.origins.setdefault(site.upstream, origin_name(site))
                name = site.host or "the default site"
                self.labels[site.upstream] = (
                    f"{self.labels[site.upstream]}, {name}" if site.upstream in self.labels else name
                )
        self.timeout = min(PROBE_TIMEOUT, settings.upstream_connect_timeout)
        self.checks: dict[str, Callable[[], Awaitable[Any]]] = {}
        self._seen: dict[str, tuple[float, str | None]] = {}  # upstream -> (when, problem or None)
        self.clock = time.monotonic
        self._lock: anyio.Lock | None = None  # made on first use, inside the running event loop
        self._logged: dict[str, str | None] = {}

    def drain(self) -> None:
        self.draining = True

    async def problems(self, upstream: Upstream | None) -> list[str]:
        """Why this instance is not ready; empty when it is. ``upstream``: None before the lifespan ran."""
        if self.draining:
            return ["draining (shutting down)"]
        found = []
        if self.origins and upstream is None:
            found.append("starting (no upstream client yet)")
        elif self.origins and upstream is not None:
            down = [
                f"upstream of {self.labels[url]} unreachable ({problem})"
                for url in self.origins
                if (problem := await self._origin(upstream.probe, url)) is not None
            ]
            if len(down) == len(self.origins):
                found += down
        for name, check in self.checks.items():
            try:
                await check()
            except Exception as e:
                self._changed(name, f"{type(e).__name__}: {e}")
                found.append(f"{name}: {type(e).__name__}")
            else:
                self._changed(name, None)
        return found

    def _changed(self, name: str, problem: str | None) -> None:
        """Log a check's state when it changes (not at every probe)."""
        if self._logged.get(name) != problem:
            self._logged[name] = problem
            if problem is None:
                log.warning("readiness: %s is back", name)
            else:
                log.warning("readiness: %s failed: %s", name, problem)

    async def _origin(self, client: httpx.AsyncClient, url: str) -> str | None:
        self._lock = self._lock or anyio.Lock()
        async with self._lock:  # one probe at a time: concurrent probes wait for its answer
            when, problem = self._seen.get(url, (float("-inf"), None))
            if self.clock() - when < CACHE_SECONDS:
                return problem
            try:
                response = await client.head(
                    url + "/", headers={"host": self.origins[url]}, timeout=httpx.Timeout(self.timeout)
                )
                await response.aclose()
                problem = detail = None
            except httpx.HTTPError as e:
                problem = type(e).__name__
                detail = f"{problem}: {e}" if str(e) else problem
            self._seen[url] = (self.clock(), problem)
            self._changed(f"upstream {url}", detail)
            return problem


async def readyz(request: Request) -> Response:
    """GET /_gate/readyz: 200 ``ready``, or 503 ``not ready: <reasons>``."""
    from .context import gate_of  # context names Readiness: imported here, when a request asks

    gate = gate_of(request)
    problems = await gate.readiness.problems(gate.upstream)
    headers = {"cache-control": "no-store"}
    if problems:
        return PlainTextResponse("not ready: " + "; ".join(problems), 503, headers=headers)
    return PlainTextResponse("ready", headers=headers)


@contextmanager
def draining_on_signals(readiness: Readiness) -> Iterator[None]:
    """While the app runs, SIGTERM and SIGINT first mark it draining, then reach the server's handler.

    Only a handler a server installed is chained (a Python function other than Python's own SIGINT
    default): under a test client there is nothing to chain, and signals can only be handled in the
    main thread. The server's handler is put back when the app stops."""
    chained: dict[signal.Signals, tuple[Any, Any]] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in _SIGNALS:
            server_handler = signal.getsignal(sig)
            if not callable(server_handler) or server_handler is signal.default_int_handler:
                continue

            def handler(signum: int, frame: Any, server_handler: Any = server_handler) -> None:
                readiness.drain()
                server_handler(signum, frame)

            signal.signal(sig, handler)
            chained[sig] = (server_handler, handler)
    try:
        yield
    finally:
        for sig, (server_handler, handler) in chained.items():
            if signal.getsignal(sig) is handler:
                signal.signal(sig, server_handler)
