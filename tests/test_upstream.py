"""gate/upstream.py with respx as the origin: the request headers the origin sees, the response
headers the visitor gets (hop-by-hop dropped, Set-Cookie kept, Location pointing at gate), the origin's
bytes passed on as sent. The request path around it (pages, pass-through, failures) is in
tests/test_proxy.py; the page header rules in tests/test_headers.py."""

from __future__ import annotations

import dataclasses
import gzip
import os

import httpx
import pytest
import respx

from gate import app as gate_app
from gate import upstream
from gate.settings import Site

from .conftest import CLIENT_IP, asgi_client, gate_settings, serve
from .mocked_origin import ORIGIN, PAGE, fetch

pytestmark = pytest.mark.anyio


# -- request headers ----------------------------------------------------------------------------
async def test_request_headers_as_the_origin_should_see_them() -> None:
    _, route = await fetch(
        httpx.Response(204),
        headers={
            "connection": "keep-alive, x-private",
            "x-private": "1",
            "keep-alive": "timeout=5",
            "te": "trailers",
            "proxy-authorization": "Basic eA==",
            "x-forwarded-for": "198.51.100.1",
            "x-forwarded-host": "evil.test",
            "accept-encoding": "gzip, zstd, br;q=0.9, *;q=0.1",
            "cookie": "a=1",
            "user-agent": "ua/1",
        },
    )
    sent = route.calls.last.request.headers
    for name in ("connection", "x-private", "keep-alive", "te", "proxy-authorization"):
        assert name not in sent, name
    assert sent["host"] == "gate.test"  # the visitor's, as nginx's proxy_set_header Host $host
    assert sent["x-forwarded-for"] == CLIENT_IP  # not a trusted proxy: its claim is dropped (test_forwarded.py)
    assert sent["x-forwarded-proto"] == "http" and sent["x-forwarded-host"] == "gate.test"
    assert sent["accept-encoding"] == "gzip, br;q=0.9"  # only codings gate can decode
    assert sent["cookie"] == "a=1" and sent["user-agent"] == "ua/1"


async def test_configured_upstream_host_is_sent() -> None:
    conf = gate_settings(ORIGIN)
    conf = dataclasses.replace(conf, sites=(Site(upstream=ORIGIN, upstream_host="jobs.internal"),))
    _, route = await fetch(httpx.Response(204), conf=conf)
    assert route.calls.last.request.headers["host"] == "jobs.internal"


async def test_request_body_and_query_reach_the_origin() -> None:
    _, route = await fetch(httpx.Response(204), "/apply?job=42&q=%E6%AD%AF", method="POST", content=b"x" * 70000)
    sent = route.calls.last.request
    assert sent.url.raw_path == b"/apply?job=42&q=%E6%AD%AF"
    assert sent.content == b"x" * 70000


# -- response headers ---------------------------------------------------------------------------
async def test_response_hop_by_hop_dropped_and_every_set_cookie_kept() -> None:
    r, _ = await fetch(
        httpx.Response(
            200,
            headers=[
                ("content-type", "image/png"),
                ("connection", "x-hop"),
                ("x-hop", "1"),
                ("keep-alive", "timeout=5"),
                ("set-cookie", "a=1; Path=/"),
                ("set-cookie", "b=2; Path=/; HttpOnly"),
            ],
            content=b"png",
        )
    )
    assert "x-hop" not in r.headers and "keep-alive" not in r.headers
    assert r.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; Path=/; HttpOnly"]


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("http://origin.test/login?next=/", "http://gate.test/login?next=/"),
        ("http://origin.test:80/x", "http://gate.test/x"),
        ("HTTP://ORIGIN.TEST/x", "http://gate.test/x"),
        ("//origin.test/x", "http://gate.test/x"),
        ("/relative", "/relative"),
        ("https://origin.test/x", "https://origin.test/x"),  # another origin: the scheme differs
        ("https://elsewhere.example/x", "https://elsewhere.example/x"),
    ],
    ids=["same-origin", "default-port", "case", "protocol-relative", "relative", "other-scheme", "other-site"],
)
async def test_location_on_the_upstream_origin_points_at_gate(location: str, expected: str) -> None:
    r, _ = await fetch(httpx.Response(302, headers={"location": location, "content-location": location}))
    assert r.status_code == 302
    assert r.headers["location"] == r.headers["content-location"] == expected


def test_location_as_the_origin_knows_itself_is_rewritten() -> None:
    site = Site(upstream="http://10.0.0.5:8000", upstream_host="jobs.example.jp")
    origins = upstream.OriginMap(site, "https://jobs.example.jp")
    assert origins.rewrite("http://jobs.example.jp/a") == "https://jobs.example.jp/a"
    assert origins.rewrite("http://10.0.0.5:8000/a") == "https://jobs.example.jp/a"


def test_location_the_origin_built_from_the_visitors_host_gets_the_public_scheme() -> None:
    """Sent the visitor's Host over plain http behind gate's TLS, an origin names itself http://public."""
    origins = upstream.OriginMap(Site(upstream="http://10.0.0.5:8000"), "https://jobs.example.jp")
    assert origins.rewrite("http://jobs.example.jp/login") == "https://jobs.example.jp/login"
    assert origins.rewrite("http://elsewhere.example/x") == "http://elsewhere.example/x"


def test_a_proxied_response_has_one_date_header() -> None:
    """uvicorn dates gate's answer; the origin's Date is not passed on beside it (as nginx does)."""
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse, PlainTextResponse
    from starlette.routing import Route

    origin_app = Starlette(
        routes=[Route("/page", lambda r: HTMLResponse(PAGE)), Route("/file", lambda r: PlainTextResponse("x"))]
    )
    with serve(origin_app) as origin, serve(gate_app.create_app(gate_settings(origin))) as public:
        for path in ("/page", "/file"):
            r = httpx.get(public + path)
            assert r.status_code == 200 and len(r.headers.get_list("date")) == 1, (path, r.headers)


async def test_non_html_bytes_are_identical_even_when_compressed() -> None:
    payload = gzip.compress(os.urandom(50_000))
    app = gate_app.create_app(gate_settings(ORIGIN))
    with respx.mock:
        respx.route(host="origin.test").mock(
            return_value=httpx.Response(
                200,
                content=payload,
                headers={
                    "content-type": "application/octet-stream",
                    "content-encoding": "gzip",
                    "content-length": str(len(payload)),
                },
            )
        )
        async with asgi_client(app) as client, client.stream("GET", "/cv.bin") as r:
            wire = b"".join([chunk async for chunk in r.aiter_raw()])
    assert wire == payload
    assert r.headers["content-encoding"] == "gzip" and r.headers["content-length"] == str(len(payload))
