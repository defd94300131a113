"""The pool of connections to origins: httpcore's, except that a connection which ended a response in a
doubtful state is closed, never reused.

httpcore puts an HTTP/1.1 connection back in the pool as soon as h11 says both sides are done. h11 stops
reading a response where the response's framing says it ends, so whatever an origin sent beyond that
(a Content-Length shorter than the body, say a site counting characters instead of bytes; a body after
a 204, a 304 or an answer to HEAD) waits in h11's buffer or on the socket, and was read as the next
visitor's response: a smuggled 200, or a 502. httpcore checks an idle connection's socket before reuse,
never h11's buffer. Here, when a response is closed with anything left over in either, the connection
is closed instead.

Bytes that arrive later still (an origin that pauses before its extra bytes) are caught by httpcore's
own check of the socket when it picks an idle connection, if they came by then; nothing can catch
bytes that an origin holds back longer than that, short of never reusing a connection.

Asking whether an idle connection's socket is readable is on every request's path: httpcore's pool
checks every pooled connection when a request arrives and again when a response closes, and its anyio
stream answers through anyio's typed attributes, which build a mapping of every attribute per question
(about 4 % of gate's CPU under load, bench/README.md). ``_Stream`` keeps the raw socket it was given
and answers from it.

Connections to http:// origins are gate.netio's (the event loop's own sockets: a read that finds its
bytes waiting costs no cancel scope and no loop turn); https:// and Unix-socket origins keep httpcore's
anyio backend, whose streams ``_Stream`` wraps.

This leans on httpcore 1.0's internals (``AsyncHTTP11Connection._response_closed``, its ``_h11_state``
and ``_network_stream``; how ``AsyncHTTPConnection`` makes its HTTP/1.1 connection):
tests/test_upstream_desync.py fails if a release moves them.
"""

from __future__ import annotations

import socket
import ssl
import typing

import httpcore
import httpx

from . import netio


class _Stream(httpcore.AsyncNetworkStream):
    """A network stream that answers "is_readable" from the raw socket it keeps (see the docstring)."""

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream
        self._socket: socket.socket | None = stream.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._stream.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "is_readable":
            return netio.readable(self._socket)
        if info == "socket":
            return self._socket
        return self._stream.get_extra_info(info)


class StrictHTTP11Connection(httpcore.AsyncHTTP11Connection):
    async def _response_closed(self) -> None:
        leftover, closed = self._h11_state.trailing_data
        if leftover or closed or self._network_stream.get_extra_info("is_readable"):
            await self.aclose()  # the pool drops closed connections
            return
        await super()._response_closed()


class _Connection(httpcore.AsyncHTTPConnection):
    """httpcore's connection to one origin, its HTTP/1.1 connection a strict one."""

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        async with self._request_lock:
            if self._connection is None:
                try:
                    stream = await self._connect(request)
                    if not isinstance(stream, netio.SocketStream):  # TLS: httpcore's anyio stream
                        stream = _Stream(stream)
                except BaseException:
                    self._connect_failed = True
                    raise
                self._connection = StrictHTTP11Connection(
                    origin=self._origin, stream=stream, keepalive_expiry=self._keepalive_expiry
                )
        return await super().handle_async_request(request)


class _Pool(httpcore.AsyncConnectionPool):
    def create_connection(self, origin: httpcore.Origin) -> httpcore.AsyncConnectionInterface:
        # Plain http on the loop's own sockets (gate.netio); https, and a Unix socket, through anyio.
        plain = origin.scheme == b"http" and self._uds is None
        return _Connection(
            origin=origin,
            ssl_context=self._ssl_context,
            keepalive_expiry=self._keepalive_expiry,
            http1=True,
            http2=False,
            retries=self._retries,
            local_address=self._local_address,
            uds=self._uds,
            network_backend=PLAIN_BACKEND if plain else self._network_backend,
            socket_options=self._socket_options,
        )


PLAIN_BACKEND: httpcore.AsyncNetworkBackend = netio.Backend()  # for http:// origins


def transport(limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """An HTTP/1.1 transport to origins whose pool never reuses a connection left in doubt."""
    made = httpx.AsyncHTTPTransport(limits=limits, http1=True, http2=False, trust_env=False)
    made._pool = _Pool(
        ssl_context=made._pool._ssl_context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        http1=True,
        http2=False,
    )
    return made
