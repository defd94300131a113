"""No visitor can hurt another: raw-socket visitors that never read an answer, hammer one stalling URL,
never finish their headers, send huge ones or nothing at all, against a real uvicorn with gate's
connection protocol (gate.server) in front of a raw-socket origin. Each test is bounded to a few
seconds by small pools and short timeouts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from gate import server
from gate.app import create_app

from .conftest import KEY, gate_settings, serve
from .hostile import drained, get, path_of, raw_origin, read_response, sleep_unless, visitor

BIG = 16 * 1024 * 1024


@contextmanager
def gate_served(origin_url: str, **overrides: Any) -> Iterator[str]:
    """gate in front of ``origin_url`` on a real uvicorn, with the options `gate serve` gives it."""
    conf = gate_settings(origin_url, **overrides)
    with serve(create_app(conf), **server.options(conf)) as url:
        yield url


@contextmanager
def origin() -> Iterator[str]:
    """/big…: 16 MB; /stall…: no answer until the test ends; anything else: a short 200 naming the path."""
    stopped = threading.Event()

    def answer(sock: socket.socket, head: bytes, n: int) -> bool:
        path = path_of(head)
        if path.startswith("/stall"):
            sleep_unless(stopped, 30)
            return False
        if path.startswith("/big"):
            sock.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % BIG
            )
            piece = b"x" * 65536
            for _ in range(BIG // len(piece)):
                sock.sendall(piece)  # blocks while gate holds back; fails once the test closes it
            return True
        body = path.encode("latin-1")
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        return True

    with raw_origin(answer, stopped) as served:
        yield served.url


def timed_get(url: str, path: str, source: str = "127.0.0.1") -> tuple[int | None, float, dict[str, str]]:
    started = time.monotonic()
    with visitor(url, source) as sock:
        sock.sendall(get(path))
        answer = read_response(sock)
    return (answer[0] if answer else None), time.monotonic() - started, (answer[1] if answer else {})


@contextmanager
def hostile(url: str, requests: list[tuple[str, str]]) -> Iterator[list[socket.socket]]:
    """Visitors (source address, path) that send their request and read nothing."""
    socks = []
    try:
        for source, path in requests:
            sock = visitor(url, source)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(get(path))
            socks.append(sock)
        yield socks
    finally:
        for sock in socks:
            sock.close()


# -- point 1: slow readers, a stalling URL, readiness --------------------------------------------------
def test_visitors_who_never_read_cannot_starve_the_others() -> None:
    """Four visitors from one address ask for 16 MB each and read nothing: another visitor is served at
    once, and the slow readers are dropped after client_write_timeout."""
    with (
        origin() as origin_url,
        gate_served(
            origin_url, upstream_max_connections=4, upstream_connect_timeout=1.0, client_write_timeout=1.0
        ) as url,
    ):
        with hostile(url, [("127.0.0.2", f"/big/{i}") for i in range(4)]) as slow:
            time.sleep(0.3)
            status, seconds, _ = timed_get(url, "/small")
            assert status == 200 and seconds < 0.9
            time.sleep(1.5)  # past client_write_timeout
            answers = []
            for sock in slow:
                sock.settimeout(2.0)
                answers.append(read_response(sock, limit=BIG))
            assert sorted(str(a[0]) if a else "cut" for a in answers) == ["503", "503", "503", "cut"]


def test_one_stalling_url_cannot_take_the_whole_pool() -> None:
    """Visitors from four addresses wait on one URL that never answers: other URLs still answer at once,
    and requests over the path's share get a 503 with Retry-After."""
    with (
        origin() as origin_url,
        gate_served(
            origin_url, upstream_max_connections=4, upstream_connect_timeout=1.0, upstream_read_timeout=1.5
        ) as url,
    ):
        with hostile(url, [(f"127.0.0.{2 + i}", "/stall") for i in range(4)]) as stalled:
            time.sleep(0.3)
            status, seconds, _ = timed_get(url, "/ok")
            assert status == 200 and seconds < 0.9
            answers = []
            for sock in stalled:
                sock.settimeout(3.0)
                answers.append(read_response(sock))
    # The path's share is half the pool: two wait for the origin until the read timeout (504), two
    # wait for a turn until the pool's wait (upstream_connect_timeout) and are told to come back.
    assert sorted(a[0] for a in answers if a) == [503, 503, 504, 504]
    assert all(a[1]["retry-after"] == "2" for a in answers if a and a[0] == 503)


def test_readiness_holds_while_visitors_fill_the_upstream_pool() -> None:
    """Visitors holding every pooled connection are no reason to leave the load balancer."""
    with (
        origin() as origin_url,
        gate_served(
            origin_url,
            upstream_max_connections=2,
            upstream_connect_timeout=1.0,
            upstream_read_timeout=1.5,
            upstream_share_per_client=0.5,
        ) as url,
    ):
        with hostile(url, [("127.0.0.2", "/stall/a"), ("127.0.0.3", "/stall/b")]):
            time.sleep(0.3)
            status, _, _ = timed_get(url, "/_gate/readyz")
            assert status == 200


# -- point 8: request headers and idle connections ----------------------------------------------------
def test_oversized_request_headers_get_431() -> None:
    with origin() as origin_url, gate_served(origin_url, max_request_header_bytes=8192) as url:
        with visitor(url, timeout=2.0) as sock:  # never finished: a header that keeps growing
            sock.sendall(b"GET / HTTP/1.1\r\nHost: gate.test\r\nX-Big: " + b"a" * 100_000)
            answer = read_response(sock)
        assert answer is not None and answer[0] == 431
        with visitor(url, timeout=2.0) as sock:  # complete, in one piece
            sock.sendall(get("/", extra="X-Big: " + "a" * 20_000 + "\r\n"))
            answer = read_response(sock)
        assert answer is not None and answer[0] == 431
        status, _, _ = timed_get(url, "/fine")
        assert status == 200


def test_request_headers_that_never_complete_are_cut() -> None:
    with origin() as origin_url, gate_served(origin_url, client_header_timeout=0.5) as url:
        with visitor(url, timeout=3.0) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: gate.test\r\nX-Slow: ")
            started = time.monotonic()
            answer = read_response(sock)
            assert answer is not None and answer[0] == 408
            assert time.monotonic() - started < 1.5


def test_silent_and_idle_connections_are_closed() -> None:
    with origin() as origin_url, gate_served(origin_url, client_header_timeout=0.5, keep_alive_timeout=0.5) as url:
        with visitor(url, timeout=3.0) as silent, visitor(url, timeout=3.0) as idle:
            idle.sendall(get("/one"))
            assert read_response(idle)[0] == 200  # type: ignore[index]
            started = time.monotonic()
            for sock in (silent, idle):
                received, ended = drained(sock, 2.0)
                assert (received, ended) == (0, True)
            assert time.monotonic() - started < 1.5


def test_gate_serve_lifts_the_open_files_limit() -> None:
    """Every connection is a file: with the usual soft limit (1,024), 1,100 slow connections locked
    everyone out. `gate serve` raises its soft limit to the hard one."""
    code = (
        "import resource, sys, uvicorn\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))\n"
        "uvicorn.run = lambda *a, **k: print('limits', *resource.getrlimit(resource.RLIMIT_NOFILE), hard)\n"
        "from gate import cli\n"
        "sys.exit(cli.main(['serve', '--port', '0']))\n"
    )
    env = {**os.environ, "GATE_SECRET_KEY": KEY, "GATE_STORE": "off"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=30).stdout
    [(soft, hard, was_hard)] = [line.split()[1:] for line in out.splitlines() if line.startswith("limits ")]
    assert soft == hard == was_hard


# -- point 10: duplicate Host, a newline in the path --------------------------------------------------
def test_duplicate_host_header_is_400() -> None:
    with origin() as origin_url, gate_served(origin_url) as url:
        with visitor(url) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: gate.test\r\nHost: evil.test\r\n\r\n")
            answer = read_response(sock)
    assert answer is not None and answer[0] == 400


@pytest.mark.parametrize("path", ["/jobs%0a1", "/jobs%0d%0a1"])
def test_path_with_an_encoded_newline_is_proxied(path: str) -> None:
    with origin() as origin_url, gate_served(origin_url) as url:
        with visitor(url) as sock:
            sock.sendall(get(path))
            answer = read_response(sock)
    assert answer is not None and (answer[0], answer[2]) == (200, path.encode())


def test_a_visitor_who_leaves_frees_its_pooled_connection() -> None:
    """Waiting for a stalling origin on behalf of a visitor who has gone would keep a pooled connection
    until the read timeout."""
    with (
        origin() as origin_url,
        gate_served(
            origin_url, upstream_max_connections=1, upstream_connect_timeout=1.0, upstream_read_timeout=10.0
        ) as url,
    ):
        with visitor(url, "127.0.0.2") as gone:
            gone.sendall(get("/stall"))
            time.sleep(0.3)
        time.sleep(0.3)
        status, seconds, _ = timed_get(url, "/ok")
    assert status == 200 and seconds < 0.9
