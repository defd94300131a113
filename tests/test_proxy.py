"""gate/proxy.py, the request path, as a visitor meets it: the site by Host (421 for none, 400 for two),
pages gated as they stream (decoded, private, in their own charset, the visitor's decision in
Gate-Tags), everything else passed through untouched, unlabelled bodies sniffed as a browser would,
and an origin's failures as short bilingual pages. The origin is respx, or a real uvicorn where
timing is the point."""

from __future__ import annotations

import dataclasses
import gzip
import logging
import threading
import zlib
from collections.abc import AsyncIterator

import anyio
import brotli
import httpx
import pytest
import respx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from gate import app as gate_app
from gate.consent import COOKIE_NAME, ConsentCodec, decide
from gate.context import visit_of
from gate.settings import Site

from .conftest import KEY, asgi_client, gate_settings, http_scope, serve
from .mocked_origin import ORIGIN, PAGE, fetch, html

pytestmark = pytest.mark.anyio


# -- the site by Host ---------------------------------------------------------------------------
async def test_two_host_headers_are_a_400_and_reach_no_origin() -> None:
    """Which one names the site? A front proxy and gate could each believe another: gate believes none."""
    r, route = await fetch(html(), headers=[("host", "gate.test"), ("host", "other.test")])
    assert r.status_code == 400 and "more than one Host header" in r.text
    assert not route.called


# -- failures ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("error", "status"),
    [
        (httpx.ConnectError("Connection refused"), 502),
        (httpx.RemoteProtocolError("peer closed connection"), 502),
        (httpx.ReadError("reset by peer"), 502),
        (httpx.ConnectTimeout("connect timed out"), 504),
        (httpx.ReadTimeout("read timed out"), 504),
    ],
    ids=["refused", "protocol", "reset", "connect-timeout", "read-timeout"],
)
async def test_upstream_failure_is_a_short_bilingual_page(error, status, caplog) -> None:
    app = gate_app.create_app(gate_settings(ORIGIN))
    with respx.mock, caplog.at_level(logging.WARNING, "gate.proxy"):
        respx.route(host="origin.test").mock(side_effect=error)
        async with asgi_client(app) as client:
            r = await client.get("/jobs")
    assert r.status_code == status
    assert "もう一度お試しください" in r.text and "Please try again" in r.text
    assert "Traceback" not in r.text and str(error) not in r.text
    assert r.headers["cache-control"] == "no-store"
    assert any(str(error) in rec.getMessage() and "/jobs" in rec.getMessage() for rec in caplog.records)


async def test_unknown_host_is_421() -> None:
    conf = gate_settings(ORIGIN)
    conf = dataclasses.replace(conf, sites=(Site(upstream=ORIGIN, host="jobs.example.jp"),))
    r, route = await fetch(html(), conf=conf)
    assert r.status_code == 421 and not route.called


# -- pass-through -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "status", "extra"),
    [
        ("HEAD", 200, {}),
        ("GET", 204, {}),
        ("GET", 304, {}),
        ("GET", 206, {"content-range": "bytes 0-9/100"}),
    ],
    ids=["head", "204", "304", "range-206"],
)
async def test_not_a_page_passes_through_untouched(method: str, status: int, extra: dict) -> None:
    body = b"" if status in (204, 304) or method == "HEAD" else b"<html>0123"
    headers = {"content-type": "text/html", "etag": '"v1"', "cache-control": "public, max-age=60", **extra}
    if body:
        headers["content-length"] = str(len(body))
    r, _ = await fetch(
        httpx.Response(status, headers=headers, content=body), method=method, headers={"range": "bytes=0-9"}
    )
    assert r.status_code == status
    assert r.content == body
    assert "gate-tags" not in r.headers and r.headers["etag"] == '"v1"'
    assert r.headers["cache-control"] == "public, max-age=60" and "vary" not in r.headers
    for name, value in extra.items():
        assert r.headers[name] == value


async def test_an_empty_html_response_stays_empty() -> None:
    """A 200 text/html with Content-Length 0 (a form endpoint's answer, a health check) gets no banner."""
    r, _ = await fetch(html(b"", **{"content-length": "0"}))
    assert r.status_code == 200 and r.content == b""
    assert r.headers["content-length"] == "0"


async def test_an_empty_chunked_html_response_stays_empty() -> None:
    async def nothing():
        for _ in ():
            yield b""

    r, _ = await fetch(httpx.Response(200, headers={"content-type": "text/html"}, content=nothing()))
    assert r.status_code == 200 and r.content == b""


# -- pages ----------------------------------------------------------------------------------------
def _raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


ENCODERS = {"gzip": gzip.compress, "deflate": zlib.compress, "raw-deflate": _raw_deflate, "br": brotli.compress}


@pytest.mark.parametrize("coding", ["gzip", "deflate", "raw-deflate", "br", "gzip-then-br"])
async def test_compressed_page_is_decoded_and_sent_identity(coding: str) -> None:
    body = PAGE.encode()
    if coding == "gzip-then-br":
        wire, header = brotli.compress(gzip.compress(body)), "gzip, br"
    else:
        wire, header = ENCODERS[coding](body), coding.replace("raw-", "")
    r, _ = await fetch(
        html(wire, **{"content-encoding": header, "content-length": str(len(wire))}),
        headers={"accept-encoding": "identity"},  # a visitor asking for a coding gets one: tests/test_encoders.py
    )
    assert "content-encoding" not in r.headers and "content-length" not in r.headers
    assert "<h1>歯科衛生士</h1>" in r.text and "data-gate" in r.text


async def test_page_in_an_encoding_gate_cannot_decode_is_refused() -> None:
    r, _ = await fetch(html(b"\x1f\x9d\x90", **{"content-encoding": "compress"}))
    assert r.status_code == 502


async def test_page_is_private_and_varies_on_cookie() -> None:
    r, _ = await fetch(
        html(
            **{
                "cache-control": "public, max-age=600, s-maxage=3600",
                "vary": "Accept-Encoding",
                "etag": '"v1"',
                "last-modified": "Mon, 01 Jan 2024 00:00:00 GMT",
            }
        )
    )
    assert r.headers["cache-control"] == "private, max-age=600"
    assert r.headers["vary"] == "Accept-Encoding, Cookie, Accept-Language"
    assert "etag" not in r.headers and "last-modified" not in r.headers


async def test_shift_jis_page_stays_shift_jis() -> None:
    page = PAGE.replace("<head>", '<head><meta charset="Shift_JIS">')
    r, _ = await fetch(httpx.Response(200, headers={"content-type": "text/html"}, content=page.encode("cp932")))
    text = r.content.decode("cp932")  # strict: any UTF-8 in the output would fail here
    assert "<h1>歯科衛生士</h1>" in text and "data-gate" in text
    # gate's scripts come first in <head>, pushing <meta charset> past a browser's 1024-byte prescan:
    # the header must name the charset the page was read in.
    assert r.headers["content-type"] == "text/html; charset=Shift_JIS"
    assert text.index("data-gate") < text.index('<meta charset="Shift_JIS">')


async def test_utf16_page_stays_utf16() -> None:
    wire = "\ufeff".encode("utf-16-le") + PAGE.encode("utf-16-le")
    r, _ = await fetch(httpx.Response(200, headers={"content-type": "text/html"}, content=wire))
    assert r.content.startswith(b"\xff\xfe")
    assert "<h1>歯科衛生士</h1>" in r.content.decode("utf-16-le") and "data-gate" in r.content.decode("utf-16-le")


async def test_gate_tags_reports_the_visitors_decision() -> None:
    r, _ = await fetch(html())
    kept, stripped = r.headers["gate-tags"].split("; ")
    assert kept == "kept=" and "facebook.pixel" in stripped and "google.analytics" in stripped

    conf = gate_settings(ORIGIN)
    app = gate_app.create_app(conf)
    registry = app.state.gate.registries[None]
    cookie = ConsentCodec([KEY]).dumps(decide(registry, ["improvement"]))
    r, _ = await fetch(html(), conf=conf, headers={"cookie": f"{COOKIE_NAME}={cookie}"})
    assert r.headers["gate-tags"].startswith("kept=google.analytics; stripped=")


async def test_banner_script_carries_the_origins_csp_nonce() -> None:
    r, _ = await fetch(html(**{"content-security-policy": "default-src 'self'; script-src 'self' 'nonce-abc123'"}))
    assert 'nonce="abc123"' in r.text


async def test_gate_lang_and_accept_language_pick_the_banner_language() -> None:
    r, _ = await fetch(html(), "/?gate_lang=en")
    assert 'lang="en"' in r.text
    r, _ = await fetch(html(), headers={"accept-language": "en-US,en;q=0.9"})
    assert 'lang="en"' in r.text
    r, _ = await fetch(html(), headers={"accept-language": "fr"})
    assert 'lang="ja"' in r.text and 'lang="en"' not in r.text


async def test_opt_out_site_lets_tags_through_until_refused_and_honours_gpc() -> None:
    conf = gate_settings(ORIGIN)
    conf = dataclasses.replace(conf, sites=(Site(upstream=ORIGIN, mode="opt-out"),))
    r, _ = await fetch(html(), conf=conf)
    assert r.headers["gate-tags"].endswith("; stripped=")
    r, _ = await fetch(html(), conf=conf, headers={"sec-gpc": "1"})
    kept, stripped = r.headers["gate-tags"].split("; ")
    assert "google.analytics" in kept and "facebook.pixel" in stripped and "criteo.onetag" in stripped


async def test_page_outcome_is_left_on_the_visit_after_the_stream() -> None:
    app = gate_app.create_app(gate_settings(ORIGIN))
    seen = []

    async def ledger(scope, receive, send):
        await app(scope, receive, send)
        visit = visit_of(scope.get("state"))
        seen.append(visit.outcome if visit is not None else None)

    with respx.mock:
        respx.route(host="origin.test").mock(return_value=html())
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=ledger), base_url="http://gate.test") as client,
        ):
            await client.get("/")
    assert seen and seen[0] is not None and hasattr(seen[0], "header")


FB_SCRIPT = '<script src="https://connect.facebook.net/en_US/fbevents.js"></script>'


@pytest.mark.parametrize("start", ["<!doctype html>", "\n  <HTML>", "<p>", "<!-- x -->", "<script>var a = 1</script>"])
async def test_unlabelled_html_is_sniffed_and_gated_like_a_browser_would_render_it(start: str) -> None:
    page = f"{start}<body><p>求人</p>{FB_SCRIPT}</body>"
    r, _ = await fetch(httpx.Response(200, content=page.encode()))  # no Content-Type at all
    assert r.headers["content-type"].startswith("text/html")
    assert "connect.facebook.net/en_US" not in r.text and "求人" in r.text and "data-gate" in r.text


async def test_unlabelled_gzip_html_is_sniffed_after_decoding() -> None:
    page = ("<!DOCTYPE html><html><body>" + FB_SCRIPT + "x" * 2000 + "</body></html>").encode()
    r, _ = await fetch(httpx.Response(200, headers={"content-encoding": "gzip"}, content=gzip.compress(page)))
    assert r.headers["content-type"].startswith("text/html") and "connect.facebook.net/en_US" not in r.text


@pytest.mark.parametrize(
    "body",
    [b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, b"plain text <html> later", b"<htmlfoo>not a signature"],
    ids=["png", "text", "not-a-tag"],
)
async def test_unlabelled_non_html_passes_untouched(body: bytes) -> None:
    r, _ = await fetch(httpx.Response(200, content=body))
    assert r.content == body and "content-type" not in r.headers


# -- streaming: nothing waits for the whole body ------------------------------------------------------
FIRST = b"<!doctype html><html><head><title>x</title></head><body><p>the first part</p>" + b" " * 4096
REST = b"<p>the rest</p></body></html>"


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "application/octet-stream"])
def test_the_first_part_reaches_the_visitor_while_the_origin_is_still_sending(content_type: str) -> None:
    """A page is gated as it streams and a download is passed on as it comes: the visitor reads the
    first part while the origin still holds back the rest (it sends the rest once the visitor has the
    first part, or after 5 s, so a gate that waits for the whole body fails here instead of hanging)."""
    visitor_has_first = threading.Event()
    released_by_the_visitor: list[bool] = []

    async def slow(request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            yield FIRST
            for _ in range(50):  # at most 5 s
                if visitor_has_first.is_set():
                    break
                await anyio.sleep(0.1)
            released_by_the_visitor.append(visitor_has_first.is_set())
            yield REST

        return StreamingResponse(body(), media_type=content_type)

    origin = Starlette(routes=[Route("/slow", slow)])
    with serve(origin) as origin_url, serve(gate_app.create_app(gate_settings(origin_url))) as gate_url:
        with httpx.stream("GET", gate_url + "/slow", timeout=30) as r:
            received = b""
            for chunk in r.iter_bytes():  # decoded: httpx asks for (and gate sends) a compressed page
                received += chunk
                if b"the first part" in received:
                    visitor_has_first.set()
    assert r.status_code == 200
    assert released_by_the_visitor == [True], "the visitor got nothing before the origin had sent the whole body"
    assert b"the rest" in received


async def test_the_pages_last_byte_goes_out_before_its_ledger_and_log_work(monkeypatch) -> None:
    """What gate records about a page (the ledger, form pages, undeclared hosts, the debug line) is done
    once the visitor has the whole page, not while the visitor waits for its end."""
    from gate import proxy

    events: list[str] = []
    real_finished = proxy.page_finished
    monkeypatch.setattr(proxy, "page_finished", lambda *a: events.append("recorded") or real_finished(*a))
    app = gate_app.create_app(gate_settings(ORIGIN))
    scope = http_scope("/jobs", [(b"host", b"gate.test")])
    sent: list[bytes] = []

    async def receive() -> dict:
        await anyio.sleep_forever()
        raise AssertionError

    async def send(message: dict) -> None:
        if message["type"] == "http.response.body":
            sent.append(message.get("body", b""))
            if not message.get("more_body", False):
                events.append("last byte")

    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="origin.test").mock(return_value=html())
        async with app.router.lifespan_context(app):
            await app(scope, receive, send)
    assert b"".join(sent).startswith(b"<!doctype html>") and "歯科衛生士".encode() in b"".join(sent)
    assert events == ["last byte", "recorded"]


@pytest.mark.parametrize("coding", ["identity", "gzip", "br"])
async def test_a_pages_last_bytes_leave_with_the_end_of_the_response(coding) -> None:
    """The page's tail (what the rewriter held to its end, the encoder's end) goes in the message that
    ends the response: one write to the visitor and one wake-up of the visitor's reader, not two."""
    app = gate_app.create_app(gate_settings(ORIGIN))
    scope = http_scope("/jobs", [(b"host", b"gate.test"), (b"accept-encoding", coding.encode())])
    messages: list[tuple[bytes, bool]] = []

    async def receive() -> dict:
        await anyio.sleep_forever()
        raise AssertionError

    async def send(message: dict) -> None:
        if message["type"] == "http.response.body":
            messages.append((message.get("body", b""), message.get("more_body", False)))

    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="origin.test").mock(return_value=html())
        async with app.router.lifespan_context(app):
            await app(scope, receive, send)
    *before, (last, more) = messages
    assert not more and last, messages[-3:]  # the end carries bytes
    assert all(more for _, more in before)
    body = b"".join(b for b, _ in messages)
    page = {"identity": lambda b: b, "gzip": gzip.decompress, "br": brotli.decompress}[coding](body)
    assert page.rstrip().endswith(b"</html>") and "歯科衛生士".encode() in page
