"""Logs: configured by `gate serve` (uvicorn applies ``config()`` in every process). JSON lines when
stderr is not a terminal (a log collector reads them), one compact human line when it is. uvicorn's own
messages go through the same handler; its access log is off, because ``AccessLog`` writes ours: one
line per request with

    site, method, path, status, bytes, duration_ms, upstream_ms, rewrite_ms, tags {kept, stripped, uncertain}

``path`` is the path's template as the ledger reads it (``path_templates``, else id-like segments,
e-mail addresses included, as ``{id}``), never the query string (where personal data travels: search
words, e-mail addresses, tokens). No line carries a cookie, a consent id or a query string. httpx's
per-request lines (which name the full upstream URL) are held back to warnings.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import time
from datetime import UTC, datetime
from typing import IO, Any, Self

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .context import visit_of
from .later import LATER
from .recording.ledger import PathTemplates
from .settings import Settings

TRACE = 5  # uvicorn's extra level below debug
ACCESS = logging.getLogger("gate.access")
_QUIET = ("httpx", "httpcore", "hpack")  # their info lines name full upstream URLs, query strings included


class Stopwatch:
    """Adds up the seconds spent inside ``with stopwatch:`` blocks (the rewriter's share of a response)."""

    __slots__ = ("_started", "seconds")

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def __enter__(self) -> Self:
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds += time.perf_counter() - self._started


# -- formatting -------------------------------------------------------------------------------
class JSONFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, and an access line's fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(getattr(record, "access", None) or {})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, separators=(",", ":"))


class HumanFormatter(logging.Formatter):
    """``12:00:01 info  GET /jobs 200 15.2kB 12ms up=10ms rw=1.2ms kept=2 stripped=8 site=jobs.example.jp``"""

    def format(self, record: logging.LogRecord) -> str:
        when = time.strftime("%H:%M:%S", time.localtime(record.created))
        fields = getattr(record, "access", None)
        text = human_access(fields) if fields else f"{record.name}: {record.getMessage()}"
        line = f"{when} {record.levelname.lower():<5} {text}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def human_access(f: dict[str, Any]) -> str:
    parts = [f["method"], f["path"], str(f["status"]), _size(f["bytes"]), f"{f['duration_ms']:g}ms"]
    if f.get("upstream_ms") is not None:
        parts.append(f"up={f['upstream_ms']:g}ms")
    if f.get("rewrite_ms") is not None:
        parts.append(f"rw={f['rewrite_ms']:g}ms")
    parts += [f"{k}={v}" for k, v in (f.get("tags") or {}).items()]
    parts.append(f"site={f['site']}")
    return " ".join(parts)


def _size(n: int) -> str:
    return f"{n}B" if n < 1024 else f"{n / 1024:.1f}kB" if n < 1024 * 1024 else f"{n / 1048576:.1f}MB"


def level_number(name: str) -> int:
    return TRACE if name.lower() == "trace" else logging.getLevelName(name.upper())


def config(level: str, stderr: IO[str] | None = None) -> dict[str, Any]:
    """The logging configuration (``logging.config.dictConfig``) `gate serve` hands uvicorn, which
    applies it in every process: every line, gate's and uvicorn's, to stderr; JSON unless stderr is a
    terminal; uvicorn's access log off (``AccessLog`` writes ours). Plain data: uvicorn pickles it for
    its worker processes."""
    stderr = stderr if stderr is not None else sys.stderr
    is_tty = getattr(stderr, "isatty", lambda: False)()
    quiet = {"level": max(logging.WARNING, level_number(level))}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "gate.logs.JSONFormatter"}, "human": {"()": "gate.logs.HumanFormatter"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "human" if is_tty else "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": level_number(level)},
        "loggers": {"uvicorn.access": {"handlers": [], "propagate": False}, **{name: quiet for name in _QUIET}},
    }


# -- the access line --------------------------------------------------------------------------
def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


class AccessLog:
    """ASGI middleware: one ``gate.access`` line per HTTP request, for when the response ended
    (streamed pages included) or failed, written soon after (gate.later: when the worker next waits).
    The proxy leaves its Visit (gate.context: the origin's time, the PageBody) in the request's state;
    it is read after the last byte."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app, self.settings = app, settings
        self.path_template = PathTemplates(settings.path_templates)  # the ledger's reading of a path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not ACCESS.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state = scope.setdefault("state", {})
        method, path = scope["method"], scope["path"]
        response = {"status": 0, "bytes": 0}

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                response["status"] = message["status"]
            elif message["type"] == "http.response.body":
                response["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        except BaseException:
            response["status"] = response["status"] or 500
            raise
        finally:
            # Written while the worker would otherwise wait, not before it serves the next request.
            LATER.hold(
                functools.partial(self._write, scope, state, method, path, response, time.perf_counter() - started)
            )

    def _write(
        self, scope: Scope, state: Any, method: str, path: str, response: dict[str, int], seconds: float
    ) -> None:
        host = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"host"), None)
        site = self.settings.site_for(host)
        visit = visit_of(state)
        page = visit.page if visit is not None else None
        outcome = page.outcome if page is not None else None
        fields: dict[str, Any] = {
            "site": "-" if site is None else site.host or "default",
            "method": method,
            "path": self.path_template(path),
            "status": response["status"],
            "bytes": response["bytes"],
            "duration_ms": _ms(seconds),
            "upstream_ms": _ms(visit.upstream_seconds if visit is not None else None),
            "rewrite_ms": _ms(page.stopwatch.seconds) if page is not None else None,
        }
        if outcome is not None:
            fields["tags"] = {
                "kept": len(outcome.kept),
                "stripped": len(outcome.stripped),
                "uncertain": outcome.uncertain,
            }
        ACCESS.info("%s %s %s", method, fields["path"], response["status"], extra={"access": fields})
