"""An origin that frames its responses wrongly must never hand one visitor's leftover bytes to the next:
a pooled connection that ended a response with bytes still unread (a Content-Length shorter than the
body, a body after a 204, a 304 or a HEAD answer) is closed, never reused. The origin is a raw socket
server (tests/hostile.py): a real server framework would not misbehave like this."""

from __future__ import annotations

import socket

import pytest

from gate import app as gate_app

from .conftest import asgi_client, gate_settings
from .hostile import method_of, path_of, raw_origin

pytestmark = pytest.mark.anyio

SMUGGLED = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 8\r\n\r\nSMUGGLED"
FRESH = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nfresh"

# (the first visitor's method, what the origin sends back to it, what that visitor gets)
DOUBTFUL = [
    pytest.param(
        "GET",
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello" + SMUGGLED,
        (200, b"hello"),
        id="content-length-shorter-than-body",
    ),
    pytest.param(
        "GET",
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\n" + "歯科".encode(),
        (200, "歯科".encode()[:4]),
        id="content-length-counting-characters",
    ),
    pytest.param("GET", b"HTTP/1.1 204 No Content\r\n\r\n" + SMUGGLED, (204, b""), id="body-after-204"),
    pytest.param("GET", b'HTTP/1.1 304 Not Modified\r\nETag: "1"\r\n\r\nnot a body', (304, b""), id="body-after-304"),
    pytest.param(
        "HEAD",
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
        (200, b""),
        id="body-after-head",
    ),
]


@pytest.mark.parametrize(("method", "first", "first_seen"), DOUBTFUL)
async def test_leftover_bytes_never_reach_the_next_visitor(method: str, first: bytes, first_seen) -> None:
    def answer(sock: socket.socket, head: bytes, n: int) -> bool:
        sock.sendall(first if path_of(head) == "/first" else FRESH)
        return True

    with raw_origin(answer) as origin:
        app = gate_app.create_app(gate_settings(origin.url, upstream_max_connections=1))
        async with asgi_client(app) as client:
            r1 = await client.request(method, "/first")
            r2 = await client.get("/second")
    assert (r1.status_code, r1.content) == first_seen
    assert (r2.status_code, r2.content) == (200, b"fresh")
    assert [method_of(h) + " " + path_of(h) for h in origin.heads] == [f"{method} /first", "GET /second"]
    assert origin.connections == 2  # the doubtful connection was closed, not reused


async def test_a_clean_connection_is_still_reused() -> None:
    def answer(sock: socket.socket, head: bytes, n: int) -> bool:
        sock.sendall(FRESH)
        return True

    with raw_origin(answer) as origin:
        app = gate_app.create_app(gate_settings(origin.url, upstream_max_connections=1))
        async with asgi_client(app) as client:
            statuses = [(await client.get(f"/{i}")).status_code for i in range(3)]
    assert statuses == [200, 200, 200]
    assert origin.connections == 1
