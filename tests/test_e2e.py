"""End to end over real sockets: uvicorn serving a small origin and gate in front of it, on 127.0.0.1.

What in-process clients cannot show lives here: bodies streamed both ways without sitting in memory,
compressed and Shift_JIS pages on the wire, redirects, 502/504, and the upstream response closed when
the visitor goes away mid-download.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qsl

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from gate.app import create_app

from .conftest import gate_settings, serve

MB = 1024 * 1024
CHUNK = b"\0" * (64 * 1024)
PAGE = "<!doctype html><html><head><title>求人</title></head><body><h1>歯科衛生士の求人</h1></body></html>"


class Origin:
    """A small origin that records what gate did to it."""

    def __init__(self) -> None:
        self.stream_closed = threading.Event()
        self.app = Starlette(
            routes=[
                Route("/upload", self.upload, methods=["POST"]),
                Route("/download", self.download),
                Route("/endless", self.endless),
                Route("/page.gz", self.gzip_page),
                Route("/sjis", self.sjis_page),
                Route("/cookies", self.cookies),
                Route("/old", self.old),
                Route("/slow", self.slow),
                Route("/dies", DiesMidBody()),
            ]
        )

    async def upload(self, request: Request) -> Response:
        n = 0
        async for chunk in request.stream():
            n += len(chunk)  # counted, never kept
        return JSONResponse({"bytes": n})

    async def download(self, request: Request) -> Response:
        size = int(request.query_params["mb"]) * MB

        async def body():
            for _ in range(size // len(CHUNK)):
                yield CHUNK

        return StreamingResponse(body(), media_type="application/octet-stream", headers={"content-length": str(size)})

    async def endless(self, request: Request) -> Response:
        async def body():
            try:
                while True:
                    yield CHUNK
                    await asyncio.sleep(0.001)
            finally:
                self.stream_closed.set()

        return StreamingResponse(body(), media_type="application/octet-stream")

    async def gzip_page(self, request: Request) -> Response:
        return Response(gzip.compress(PAGE.encode()), headers={"content-encoding": "gzip"}, media_type="text/html")

    async def sjis_page(self, request: Request) -> Response:
        return Response(PAGE.encode("cp932"), headers={"content-type": "text/html; charset=Shift_JIS"})

    async def cookies(self, request: Request) -> Response:
        r = Response("ok", media_type="text/plain")
        r.set_cookie("session", "s1", httponly=True)
        r.set_cookie("cart", "c2")
        return r

    async def old(self, request: Request) -> Response:
        return RedirectResponse(f"{request.url.scheme}://{request.url.netloc}/new?x=1", 301)

    async def slow(self, request: Request) -> Response:
        await asyncio.sleep(1.2)
        return Response("late")


class DiesMidBody:
    """Promises a 1 MB page, sends ``?sent=N`` bytes of it and returns: uvicorn then drops the connection."""

    async def __call__(self, scope, receive, send) -> None:
        sent = int(dict(parse_qsl(scope["query_string"].decode())).get("sent", "9"))
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/html"), (b"content-length", b"1048576")],
            }
        )
        body = (b"<html><p>" + b"x" * sent)[:sent]
        await send({"type": "http.response.body", "body": body, "more_body": True})


@contextmanager
def stack(read_timeout: float = 30.0) -> Iterator[tuple[Origin, str]]:
    origin = Origin()
    with (
        serve(origin.app) as origin_url,
        serve(create_app(gate_settings(origin_url, upstream_read_timeout=read_timeout))) as gate_url,
    ):
        yield origin, gate_url


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[Origin, str]]:
    with stack() as s:
        yield s


def rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


@contextmanager
def peak_rss_growth() -> Iterator[list[int]]:
    """Samples this process's RSS while the block runs; yields a list that ends up holding the peak growth."""
    base, peak, done = rss(), [0], threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            peak[0] = max(peak[0], rss() - base)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        yield peak
    finally:
        done.set()
        t.join()
        peak[0] = max(peak[0], rss() - base)


def test_50mb_upload_streams_through(running) -> None:
    _, gate = running

    def body():
        for _ in range(50 * MB // len(CHUNK)):
            yield CHUNK

    with peak_rss_growth() as growth:
        r = httpx.post(f"{gate}/upload", content=body(), headers={"content-length": str(50 * MB)}, timeout=60)
    assert r.status_code == 200 and r.json() == {"bytes": 50 * MB}
    assert growth[0] < 20 * MB, f"RSS grew {growth[0] / MB:.1f} MB"


def test_200mb_download_streams_through(running) -> None:
    _, gate = running
    started, n = time.monotonic(), 0
    with peak_rss_growth() as growth, httpx.stream("GET", f"{gate}/download?mb=200", timeout=60) as r:
        assert r.headers["content-length"] == str(200 * MB)
        for chunk in r.iter_raw():
            n += len(chunk)
    assert n == 200 * MB
    assert time.monotonic() - started < 60
    assert growth[0] < 30 * MB, f"RSS grew {growth[0] / MB:.1f} MB"


def test_gzip_page_arrives_decoded_and_gated(running) -> None:
    _, gate = running
    with httpx.stream("GET", f"{gate}/page.gz", headers={"accept-encoding": "gzip"}) as r:
        wire = b"".join(r.iter_raw())
    # Decoded to be gated, then compressed again for the visitor who asked for gzip (gate/encoders.py).
    assert r.headers.get("content-encoding") == "gzip" and r.headers.get("transfer-encoding") == "chunked"
    text = gzip.decompress(wire).decode()
    assert "<h1>歯科衛生士の求人</h1>" in text and "data-gate" in text
    assert r.headers["cache-control"].startswith("private") and "Cookie" in r.headers["vary"]


def test_shift_jis_page_stays_shift_jis(running) -> None:
    _, gate = running
    r = httpx.get(f"{gate}/sjis")
    assert r.headers["content-type"] == "text/html; charset=Shift_JIS"
    text = r.content.decode("cp932")
    assert "<h1>歯科衛生士の求人</h1>" in text and "data-gate" in text


def test_two_set_cookies_arrive(running) -> None:
    _, gate = running
    r = httpx.get(f"{gate}/cookies")
    names = sorted(c.split("=")[0] for c in r.headers.get_list("set-cookie"))
    assert names == ["cart", "session"]


def test_redirect_points_at_gate(running) -> None:
    _, gate = running
    r = httpx.get(f"{gate}/old")
    assert r.status_code == 301 and r.headers["location"] == f"{gate}/new?x=1"


def test_origin_down_is_502() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    with serve(create_app(gate_settings(f"http://127.0.0.1:{port}"))) as gate:
        r = httpx.get(f"{gate}/jobs")
    assert r.status_code == 502 and "Bad gateway" in r.text


def test_slow_origin_is_504() -> None:
    with stack(read_timeout=0.3) as (_, gate):
        started = time.monotonic()
        r = httpx.get(f"{gate}/slow", timeout=10)
        took = time.monotonic() - started
    assert r.status_code == 504 and took < 1.0


def test_origin_dying_before_the_page_starts_is_a_502(running) -> None:
    _, gate = running
    r = httpx.get(f"{gate}/dies?sent=9")  # gate still holds the first bytes (charset sniffing)
    assert r.status_code == 502 and "Bad gateway" in r.text


def test_origin_dying_mid_page_breaks_the_transfer(running) -> None:
    _, gate = running
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"{gate}/dies?sent=200000")  # a complete-looking, truncated page would be worse


def test_client_going_away_closes_the_upstream_response(running) -> None:
    origin, gate = running
    origin.stream_closed.clear()
    with httpx.stream("GET", f"{gate}/endless") as r:
        for i, _ in enumerate(r.iter_raw()):
            if i == 5:
                break
    assert origin.stream_closed.wait(5), "the origin kept streaming to nobody"
