"""gate.netio, gate's own path to http origins (the loop's sockets, not anyio's streams), against origins
written here with raw sockets and Python's ssl module: bodies arrive byte for byte both ways, a stalled
origin ends in httpcore's own timeout, a refused connection in its ConnectError, a waiting read ends at
once when its task is cancelled, a fast origin does not keep the loop to itself, and https origins still
go through httpcore's anyio backend. Each test runs on asyncio's loop and on uvloop's (`gate serve`'s)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import httpx
import pytest

from gate import netio, pool

from .hostile import path_of, raw_origin, sleep_unless

pytestmark = pytest.mark.anyio
KB, MB = 1024, 1024 * 1024


@pytest.fixture(params=["asyncio", "uvloop"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, bool]]:
    return "asyncio", {"use_uvloop": request.param == "uvloop"}


def client(**timeouts: float) -> httpx.AsyncClient:
    """An httpx client on gate's upstream transport (gate.pool), as gate.upstream makes it."""
    limits = httpx.Limits(max_connections=4, max_keepalive_connections=4)
    timeout = httpx.Timeout(5.0, **timeouts)
    return httpx.AsyncClient(transport=pool.transport(limits), timeout=timeout, trust_env=False)


BIG = os.urandom(6 * MB)


@contextmanager
def origin() -> Iterator[str]:
    """/big: 6 MB of random bytes at once; /stall: headers and 10 of 100 bytes, then nothing;
    /small: 5 bytes."""
    stopped = threading.Event()

    def answer(sock: socket.socket, head: bytes, n: int) -> bool:
        path = path_of(head)
        if path == "/big":
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BIG) + BIG)
            return True
        if path == "/stall":
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
            sleep_unless(stopped, 30)
            return False
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nsmall")
        return True

    with raw_origin(answer, stopped) as o:
        yield o.url


async def test_a_large_body_arrives_byte_for_byte() -> None:
    with origin() as url:
        async with client() as c:
            response = await c.get(url + "/big")
            assert response.status_code == 200
            assert hashlib.sha256(response.content).digest() == hashlib.sha256(BIG).digest()
            assert (await c.get(url + "/small")).content == b"small"  # the connection was reused whole


@contextmanager
def slow_reader() -> Iterator[tuple[str, list[bytes]]]:
    """An origin that reads a request body 64 KB at a time, 2 ms apart (gate's writes fill the socket
    and must wait), and answers with the body's SHA-256."""
    listener = socket.create_server(("127.0.0.1", 0))
    digests: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, body = data.split(b"\r\n\r\n", 1)
            length = next(
                int(v)
                for k, v in (ln.split(b":", 1) for ln in head.split(b"\r\n")[1:])
                if k.lower() == b"content-length"
            )
            while len(body) < length:
                time.sleep(0.002)
                chunk = conn.recv(65536)
                if not chunk:
                    return
                body += chunk
            digest = hashlib.sha256(body).hexdigest().encode()
            digests.append(digest)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(digest) + digest)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", digests
    finally:
        listener.close()
        thread.join(timeout=10)


async def test_a_large_upload_reaches_a_slow_origin_whole() -> None:
    upload = os.urandom(5 * MB)  # a CV with its photos
    with slow_reader() as (url, _):
        async with client() as c:
            response = await c.post(url + "/apply", content=upload)
    assert response.content == hashlib.sha256(upload).hexdigest().encode()


async def test_a_stalled_origin_ends_in_a_read_timeout() -> None:
    with origin() as url:
        async with client(read=0.3) as c:
            started = time.monotonic()
            with pytest.raises(httpx.ReadTimeout):
                await c.get(url + "/stall")
            assert time.monotonic() - started < 3


async def test_a_refused_connection_is_a_connect_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    async with client() as c:
        with pytest.raises(httpx.ConnectError):
            await c.get(f"http://127.0.0.1:{port}/")


async def test_a_waiting_read_ends_at_once_when_cancelled_and_the_pool_goes_on() -> None:
    with origin() as url:
        async with client() as c:
            started = time.monotonic()
            with anyio.move_on_after(0.2) as scope:  # the visitor went away, the response is overdue
                async with c.stream("GET", url + "/stall") as response:
                    async for _ in response.aiter_raw():
                        pass
            assert scope.cancelled_caught and time.monotonic() - started < 2
            assert (await c.get(url + "/small")).content == b"small"


async def test_a_fast_origin_lets_other_tasks_run_while_its_body_streams() -> None:
    turns = 0
    reading = True

    async def ticker() -> None:
        nonlocal turns
        while reading:
            turns += 1
            await anyio.sleep(0)

    with origin() as url:
        async with client() as c, anyio.create_task_group() as tg:
            async with c.stream("GET", url + "/big") as response:
                await anyio.sleep(0.1)  # the origin has written what the sockets hold: reads find it waiting
                tg.start_soon(ticker)
                await anyio.sleep(0)
                before, size = turns, 0
                async for chunk in response.aiter_raw():
                    size += len(chunk)
                reading = False
    assert size == len(BIG)
    # at least one turn for the others every READY_TURN reads of 64 KiB
    assert turns - before >= len(BIG) // (netio.READY_TURN * 64 * KB) - 1, turns - before


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    assert openssl, "openssl is needed (tests/run installs it)"
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_an_https_origin_goes_through_httpcore_s_own_backend(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    body = os.urandom(300 * KB)

    def serve() -> None:
        raw, _ = listener.accept()
        with context.wrap_socket(raw, server_side=True) as conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        async with client() as c:
            c._transport._pool._ssl_context = ssl.create_default_context(cafile=str(cert))  # type: ignore[attr-defined]
            async with c.stream("GET", f"https://127.0.0.1:{listener.getsockname()[1]}/") as response:
                connection = c._transport._pool.connections[0]._connection  # type: ignore[attr-defined]
                assert not isinstance(connection._network_stream, netio.SocketStream)
                assert await response.aread() == body
    finally:
        listener.close()
        thread.join(timeout=10)


async def test_a_host_name_is_resolved_and_each_address_tried_in_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    # A name with two addresses, the first of them dead (as ::1 can be for "localhost"): the second is used.
    with socket.create_server(("127.0.0.1", 0)) as s:
        dead = s.getsockname()
    with origin() as url:
        live = ("127.0.0.1", int(url.rsplit(":", 1)[1]))
        loop = asyncio.get_running_loop()
        answers = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", dead), (socket.AF_INET, socket.SOCK_STREAM, 6, "", live)]
        resolve = loop.getaddrinfo  # uvloop's sock_connect asks it too, for the numeric addresses

        async def getaddrinfo(host: str, port: int, **kwargs: object) -> list:
            return answers if host == "origin.example" else await resolve(host, port, **kwargs)

        monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
        async with client() as c:
            assert (await c.get(f"http://origin.example:{live[1]}/small")).content == b"small"
