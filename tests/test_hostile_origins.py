"""Origins that answer too slowly: a trickle that never trips the read timeout is cut at the response
deadline (upstream_response_timeout), and a page that stalls after its headers is a 504, as a timeout
should be. The origin is a raw socket server (tests/hostile.py); gate runs on a real uvicorn."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from .hostile import drained, get, path_of, raw_origin, read_response, sleep_unless, visitor
from .test_hostile_clients import gate_served


@contextmanager
def slow_origin() -> Iterator[str]:
    """/trickle: 1,000 bytes announced, one sent every 0.1 s; /stalled-page: HTML headers, then nothing."""
    stopped = threading.Event()

    def answer(sock: socket.socket, head: bytes, n: int) -> bool:
        if path_of(head) == "/trickle":
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n")
            for _ in range(1000):
                if not sleep_unless(stopped, 0.1):
                    return False
                sock.sendall(b"x")
            return True
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: 100\r\n\r\n")
        sleep_unless(stopped, 30)
        return False

    with raw_origin(answer, stopped) as origin:
        yield origin.url


def test_a_trickling_origin_is_cut_at_the_response_deadline() -> None:
    with (
        slow_origin() as origin_url,
        gate_served(origin_url, upstream_response_timeout=1.0, upstream_read_timeout=5.0) as url,
    ):
        with visitor(url) as sock:
            started = time.monotonic()
            sock.sendall(get("/trickle"))
            received, ended = drained(sock, 3.0)
            assert ended and time.monotonic() - started < 2.0
            assert received < 1000  # the headers and a few bytes: never a complete-looking body


def test_a_page_that_stalls_after_its_headers_is_a_504() -> None:
    with slow_origin() as origin_url, gate_served(origin_url, upstream_read_timeout=0.5) as url:
        with visitor(url) as sock:
            sock.sendall(get("/stalled-page"))
            answer = read_response(sock)
    assert answer is not None and answer[0] == 504
    assert b"Gateway timeout" in answer[2]


def test_a_page_that_stalls_past_the_response_deadline_is_a_504() -> None:
    with (
        slow_origin() as origin_url,
        gate_served(origin_url, upstream_response_timeout=0.5, upstream_read_timeout=5.0) as url,
    ):
        with visitor(url) as sock:
            started = time.monotonic()
            sock.sendall(get("/stalled-page"))
            answer = read_response(sock)
    assert answer is not None and answer[0] == 504 and time.monotonic() - started < 1.5


def test_a_page_whose_length_the_origin_gave_ends_whole_for_a_raw_client() -> None:
    """Once the origin has sent its Content-Length, gate sends the page's last bytes with the end of
    the chunked response: a client of our own (tests/hostile.py, no HTTP library) reads it to its final
    chunk, decoded by Python's gzip for the compressed one."""
    import gzip

    page = b"<!doctype html><html><head><title>t</title></head><body>" + "歯科衛生士".encode() * 3000
    page += b"</body></html>\n"

    def answer(sock: socket.socket, head: bytes, n: int) -> bool:
        head_line = b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: %d\r\n\r\n"
        sock.sendall(head_line % len(page) + page)
        return True

    with raw_origin(answer) as origin, gate_served(origin.url) as url:
        for coding, decode in (("identity", lambda b: b), ("gzip", gzip.decompress)):
            with visitor(url) as sock:
                sock.sendall(get("/jobs", extra=f"Accept-Encoding: {coding}\r\n"))
                answer_ = read_response(sock)
            assert answer_ is not None, coding  # the final chunk came
            status, headers, body = answer_
            assert status == 200 and headers.get("transfer-encoding") == "chunked"
            got = decode(body)
            assert got.endswith(b"</body></html>\n") and got.count("歯科衛生士".encode()) == 3000, coding
