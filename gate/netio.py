"""Plain-TCP connections to origins on the event loop's own sockets, for httpcore.

httpcore's default network backend goes through anyio: every read and every write of a response opens a
cancel scope with its timeout (``anyio.fail_after``, about 12 us here) and passes anyio's stream, its
checkpoints and its task lookups (with gate's own, a 100 KB page opened 17 cancel scopes, counted with
cProfile). An origin answering on loopback or a private network has its bytes ready by the time gate
asks, so most reads need no wait at all. ``SocketStream`` asks the socket first (``recv``/``send`` on a
non-blocking socket) and waits only when the socket has nothing (``loop.sock_recv``/``sock_sendall``,
under ``asyncio.timeout``).

Only plain http origins take this path: TLS and Unix sockets stay on httpcore's anyio backend
(``gate.pool`` picks per origin). Errors and timeouts are httpcore's own (ConnectError, ReadTimeout,
...), as from its backend, so httpx maps them as before. Cancellation (the visitor went away, the
response is overdue) reaches the awaited socket operation as a task cancellation, as it does through
anyio.
"""

from __future__ import annotations

import asyncio
import select
import socket
import ssl
import typing

import httpcore
from httpcore._backends.base import SOCKET_OPTION

from .later import LATER

# Reads that found their bytes waiting do not give the loop up; every READY_TURN-th in a row does
# (asyncio.sleep(0)), so that a fast origin streaming a large file through gate lets other requests
# run (and a cancellation in) at least every READY_TURN reads of httpcore's 64 KiB.
READY_TURN = 4
HELD_WHILE_WAITING = True  # a read that would wait for the origin first runs what gate.later holds


class SocketStream(httpcore.AsyncNetworkStream):
    """One connection to an origin, on a non-blocking socket this stream owns."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._loop = asyncio.get_running_loop()
        self._ready = 0  # reads in a row that did not wait

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = self._ready_bytes(max_bytes)
        if data is None and LATER and HELD_WHILE_WAITING:  # gate would wait: held work runs now (gate.later)
            LATER.run()
            data = self._ready_bytes(max_bytes)
        if data is not None:
            self._ready += 1
            if self._ready >= READY_TURN:
                self._ready = 0
                await asyncio.sleep(0)
            return data
        self._ready = 0
        try:
            async with asyncio.timeout(timeout):
                return await self._loop.sock_recv(self._sock, max_bytes)
        except TimeoutError:
            raise httpcore.ReadTimeout("timed out reading from the origin") from None
        except OSError as e:
            raise httpcore.ReadError(str(e) or type(e).__name__) from None

    def _ready_bytes(self, max_bytes: int) -> bytes | None:
        """What the socket holds now (b"": the origin closed), or None when it holds nothing yet."""
        try:
            return self._sock.recv(max_bytes)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as e:
            raise httpcore.ReadError(str(e) or type(e).__name__) from None

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            sent = self._sock.send(buffer)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as e:
            raise httpcore.WriteError(str(e) or type(e).__name__) from None
        if sent == len(buffer):
            return
        try:
            async with asyncio.timeout(timeout):
                await self._loop.sock_sendall(self._sock, memoryview(buffer)[sent:])
        except TimeoutError:
            raise httpcore.WriteTimeout("timed out writing to the origin") from None
        except OSError as e:
            raise httpcore.WriteError(str(e) or type(e).__name__) from None

    async def aclose(self) -> None:
        self._sock.close()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("gate.netio carries plain TCP only: TLS origins use httpcore's backend")

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "socket":
            return self._sock
        if info == "is_readable":
            return readable(self._sock)
        if info == "client_addr":
            return self._sock.getsockname()
        if info == "server_addr":
            return self._sock.getpeername()
        return None


def readable(sock: socket.socket | None) -> bool:
    """httpcore's "is_readable" of an idle connection, from its socket: True when it has bytes (or the
    end) waiting, or is closed, so that the pool does not reuse it."""
    fd = sock.fileno() if sock is not None else -1
    if fd < 0:  # closed: as httpcore does, "readable" (the next read ends the stream)
        return True
    poll = select.poll()
    poll.register(fd, select.POLLIN)
    return bool(poll.poll(0))


class Backend(httpcore.AsyncNetworkBackend):
    """Connects plain TCP on the running loop's sockets (``SocketStream``)."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
                error: OSError | None = None
                for family, kind, proto, _, address in infos:
                    sock = socket.socket(family, kind, proto)
                    try:
                        sock.setblocking(False)
                        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                        for option in socket_options or ():
                            sock.setsockopt(*option)
                        if local_address:
                            sock.bind((local_address, 0))
                        await loop.sock_connect(sock, address)
                    except OSError as e:
                        sock.close()
                        error = e
                        continue
                    except BaseException:
                        sock.close()
                        raise
                    return SocketStream(sock)
                raise error or OSError(f"no address for {host}")
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"timed out connecting to {host}:{port}") from None
        except OSError as e:
            raise httpcore.ConnectError(str(e) or type(e).__name__) from None

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("gate.netio carries TCP only")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
