"""The HTTP server: uvicorn's options for gate, and the connection protocol that bounds what a visitor's
connection can hold.

uvicorn's httptools protocol reads a request's headers for as long as they keep coming, in memory; it
waits without end for headers that never complete, and for a visitor who stops reading an answer (its
close() waits for the unread buffer to drain). GateProtocol adds, per connection:

- request headers (request line included) larger than ``max_request_header_bytes``: 431, then closed;
- headers not complete ``client_header_timeout`` seconds after the connection opened or the previous
  response ended: 408 when part of a request came, and the connection closed either way;
- a write to the visitor blocked for ``client_write_timeout`` seconds (the visitor's buffers are full:
  it reads nothing): the connection is aborted, and the response behind it is cancelled with it.

An idle kept-alive connection is closed after ``keep_alive_timeout`` seconds (uvicorn's own timer).
The limits live on the class: ``protocol(conf)`` makes a subclass for one Settings (a server in this
process), ``configure(conf)`` sets them in a worker process (uvicorn imports the class there by name).
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
import struct
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .settings import Settings

log = logging.getLogger("gate.server")
_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class GateProtocol(HttpToolsProtocol):
    max_header_bytes = Settings.max_request_header_bytes
    header_timeout = Settings.client_header_timeout
    write_timeout = Settings.client_write_timeout

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._waiting = True  # for a request's headers
        self._received = 0  # bytes of the request under way, while its headers are incomplete
        self._header_size = 0  # request line and headers as parsed
        self._refused = False
        self._header_timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._header_timer, self._write_timer):
            if timer is not None:
                timer.cancel()
        super().connection_lost(exc)

    # -- headers: size and time -----------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        if self._waiting:
            self._received += len(data)
        if self._refused or (self._waiting and max(self._received, self._header_size) > self.max_header_bytes):
            self._refuse(431)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._waiting, self._received, self._header_size = True, 0, 0
        if self._header_timer is None:
            self._arm_header_timer()

    def on_url(self, url: bytes) -> None:
        self._header_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_size += len(name) + len(value) + 4
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._waiting = False
        self._cancel_header_timer()
        if self._header_size > self.max_header_bytes:
            self._refused = True  # data_received answers once the parser returns
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)
        super().on_response_complete()
        if not pipelined and self._header_timer is None and not self.transport.is_closing():
            self._waiting, self._received = True, 0
            self._arm_header_timer()

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout, self._header_timed_out)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if not self._waiting or self.transport.is_closing():
            return
        if self._received:
            self._refuse(408)
        else:
            self.transport.close()

    def _refuse(self, status: int) -> None:
        """Answer ``status`` and close: the request is not read further."""
        self._refused = True
        self._cancel_header_timer()
        if self.transport.is_closing():
            return
        reason = _REASONS[status]
        log.info("%s %s from %s", status, reason.decode(), self.client[0] if self.client else "?")
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s\n" % (status, reason, len(reason) + 1, reason)
        )
        self.transport.close()

    # -- writes: a visitor who stopped reading ---------------------------------------------------
    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_timer is None:
            self._write_timer = self.loop.call_later(self.write_timeout, self._write_timed_out)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def _write_timed_out(self) -> None:
        self._write_timer = None
        log.info("dropped %s: read nothing for %.0f s", self.client[0] if self.client else "?", self.write_timeout)
        sock = self.transport.get_extra_info("socket")
        if sock is not None:  # a reset: the kernel would otherwise keep trying to deliver what is unread
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()  # close() would wait for the visitor to read the buffer


def protocol(conf: Settings) -> type[GateProtocol]:
    """GateProtocol with the limits of ``conf``, for a server in this process."""
    return type("GateProtocol", (GateProtocol,), _limits(conf))


def configure(conf: Settings) -> None:
    """Set the limits of ``conf`` on GateProtocol itself (in a worker process, which imports it by name)."""
    for name, value in _limits(conf).items():
        setattr(GateProtocol, name, value)


def _limits(conf: Settings) -> dict[str, Any]:
    return {
        "max_header_bytes": conf.max_request_header_bytes,
        "header_timeout": conf.client_header_timeout,
        "write_timeout": conf.client_write_timeout,
    }


def options(conf: Settings) -> dict[str, Any]:
    """uvicorn's options for ``conf`` that bound connections (the caller adds the rest)."""
    return {
        "http": "gate.server:GateProtocol" if conf.workers > 1 else protocol(conf),
        "timeout_keep_alive": conf.keep_alive_timeout,
    }


def raise_open_files_limit() -> tuple[int, int]:
    """Lift the soft limit on open files to the hard one: each connection is a file, and the usual soft
    limit (1,024) let 1,100 slow connections lock every visitor out. Returns (soft, hard) after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as e:  # a sandbox may refuse: keep going with what we have
            log.warning("could not raise the open files limit from %d to %d: %s", soft, target, e)
    return resource.getrlimit(resource.RLIMIT_NOFILE)
