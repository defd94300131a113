"""A search-results page through gate, in Chromium: the photos gate passes without reading them one by one
(gate/inert.py) are the photos the browser fetches, and nothing reaches a refused recipient.

The origin is a real app on uvicorn serving a list page of job cards, each with its own photo, with vendor
pixels hidden among the cards (protocol-relative, entity-encoded, in a srcset, behind a third-party
``<base>``). gate runs in front of it as `gate serve` builds it. Chromium loads the page twice, straight
from the origin and through gate; every request it makes is recorded (anything off loopback is answered
with an empty 200, so nothing leaves this machine). Nothing of gate's decides what counts as a request.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from .browser_support import chromium_missing, launch, new_context
from .conftest import serve

if (_reason := chromium_missing()) is not None:
    pytest.skip(_reason, allow_module_level=True)

from playwright.sync_api import sync_playwright
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

CARDS = 400
PIXEL = "https://www.facebook.com/tr?id=100000000000001&ev=PageView&noscript=1"
VENDOR_HOSTS = ("facebook.com", "facebook.net", "googletagmanager.com", "google-analytics.com")


def card(n: int) -> str:
    photo = f"/photos/{n}.jpg"
    return (
        f'<li class="card"><a href="/jobs/{n}"><img src="{photo}" srcset="{photo} 1x, /photos/{n}@2x.jpg 2x" '
        f'alt="医院の写真 {n}" width="24" height="16"></a><h2>歯科衛生士 {n}</h2>'
        f'<p class="clinic">さくら歯科 {n}</p></li>'
    )


def list_page() -> bytes:
    cards = [card(n) for n in range(CARDS)]
    # Recipients hidden among the photos: each must be stripped although it sits between inert cards.
    cards[50] += f'<img src="{PIXEL.replace("https:", "")}" width="1" height="1" alt="">'
    cards[120] += '<img src="https:&#x2F;&#x2F;www.facebook.com/tr?id=100000000000002" width="1" height="1" alt="">'
    cards[200] += '<img src="/photos/extra.jpg" srcset="https://www.facebook.com/tr?id=100000000000003 2x" alt="">'
    cards[250] += '<img src="/photos/lazy.jpg" alt="" style="background:url(//www.google-analytics.com/g/collect)">'
    # From here on, relative photos resolve against Meta's host: they are Meta's pixels, not photos.
    cards[300] += '<base href="https://www.facebook.com/">'
    head = (
        '<!doctype html><html lang="ja"><head><meta charset="utf-8"><title>歯科の求人 検索結果</title>'
        '<script async src="https://www.googletagmanager.com/gtag/js?id=G-DEMO12345"></script>'
        "<script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments)}"
        "gtag('js',new Date());gtag('config','G-DEMO12345');</script>"
        '</head><body><h1>検索結果</h1><ul class="results">'
    )
    return (head + "\n".join(cards) + "</ul></body></html>").encode()


def origin_app() -> Starlette:
    page = list_page()
    photo = b"\xff\xd8\xff\xd9"  # an empty JPEG: the browser asks, whatever it gets

    async def endpoint(request: Request) -> Response:
        if request.url.path == "/search":
            return Response(page, media_type="text/html; charset=utf-8")
        return Response(photo, media_type="image/jpeg")

    return Starlette(routes=[Route("/{path:path}", endpoint)])


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[str, str]]:
    from gate import settings
    from gate.app import create_app

    with serve(origin_app()) as origin:
        keys = "list-page-test-key-0123456789abcdef"
        conf = settings.load({"upstream": origin}, {"GATE_SECRET_KEY": keys, "GATE_STORE": "off"})
        with serve(create_app(conf)) as gate:
            yield origin, gate


def requests_of(base: str) -> tuple[set[str], list[str], int]:
    """Load base/search in Chromium: the first-party paths requested (gate's own /_gate/ files
    aside), the requests that left the site, and how many <img> the page holds."""
    with sync_playwright() as p:
        browser = launch(p)
        try:
            context, traffic = new_context(browser, base)
            page = context.new_page()
            page.goto(base + "/search", wait_until="load", timeout=30_000)
            page.wait_for_timeout(200)
            images = int(page.evaluate("document.images.length"))
            context.close()
        finally:
            browser.close()
    own = {urlsplit(u).path for u in traffic.urls if urlsplit(u).netloc == urlsplit(base).netloc}
    return {p for p in own if not p.startswith("/_gate/")}, traffic.vendor_urls, images


def test_through_gate_every_own_photo_loads_and_no_recipient_is_reached(servers):
    origin, gate = servers
    direct_paths, direct_vendor, direct_images = requests_of(origin)
    # The harness sees the recipients on the page as the origin sends it, or it proves nothing.
    for seen in ("facebook.com/tr", "googletagmanager.com/gtag/js", "google-analytics.com/g/collect"):
        assert any(seen in u for u in direct_vendor), (seen, direct_vendor)
    # Photos after Meta's <base> resolve against it (earlier ones may too: a browser resolves an image
    # again when the document's base changes while it loads).
    behind_base = {u for u in direct_vendor if "www.facebook.com/photos/" in u}
    assert {f"https://www.facebook.com/photos/{n}.jpg" for n in range(301, CARDS)} <= behind_base

    gated_paths, gated_vendor, gated_images = requests_of(gate)
    assert gated_vendor == []  # an undecided visitor: nothing leaves for any recipient
    photos = {f"/photos/{n}.jpg" for n in range(301)}
    assert photos <= direct_paths
    assert photos <= gated_paths, sorted(photos - gated_paths)[:5]  # the photos passed unread still load
    # Every page element but the three recipient pixels is still there (the one with a recipient in its
    # style keeps its photo; the photos behind Meta's <base> load from the site itself).
    assert gated_images == direct_images - 3
