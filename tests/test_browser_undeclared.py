"""Issue 11.2 in a real browser: code running after the server gated the page (a tag manager) injects
a script, a pixel and a beacon to a host no vendor and no allow_hosts entry names: the guard stops them
all, even with everything accepted, and lets the site's allow_hosts through."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from gate.app import create_app
from gate.settings import Site

from .browser_support import chromium_missing, launch, new_context, page_errors
from .conftest import gate_settings, serve

if (_reason := chromium_missing()) is not None:
    pytest.skip(_reason, allow_module_level=True)

from playwright.sync_api import sync_playwright

INJECTOR = """(function (d) {
  var s = d.createElement('script'); s.src = 'https://tracker.example-ads.net/t.js'; d.head.appendChild(s);
  new Image().src = 'https://px.example-ads.net/p.gif';
  navigator.sendBeacon('https://beacon.example-ads.net/b', 'x');
  var ok = d.createElement('script'); ok.src = 'https://cdn.example-own.jp/app.js'; d.head.appendChild(ok);
  window.injected = true;
})(document);
"""


def origin_app() -> Starlette:
    async def page(request: Request) -> Response:
        return HTMLResponse(
            "<!doctype html><html lang=ja><head><meta charset=utf-8><title>求人</title>"
            "<script src=/tm.js></script></head><body><h1>求人</h1></body></html>"
        )

    async def script(request: Request) -> Response:
        return Response(INJECTOR, media_type="application/javascript")

    async def noscript(request: Request) -> Response:
        # What a browser without JavaScript loads: <noscript> is markup then. One pixel to an undeclared
        # host, one relative image behind a third-party <base>, one to the site's own CDN.
        base = '<base href="https://cdn.example-ads.net/">' if request.url.path == "/behind-base" else ""
        return HTMLResponse(
            f"<!doctype html><html lang=ja><head><meta charset=utf-8><title>求人</title>{base}</head><body>"
            '<noscript><img src="https://px.example-ads.net/ns.gif" alt=""></noscript>'
            '<noscript><img src="/photo.jpg" alt=""></noscript>'
            '<noscript><img src="https://cdn.example-own.jp/logo.png" alt=""></noscript>'
            "<h1>求人</h1></body></html>"
        )

    return Starlette(
        routes=[Route("/", page), Route("/tm.js", script), Route("/plain", noscript), Route("/behind-base", noscript)]
    )


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with serve(origin_app()) as origin:
        site = Site(upstream=origin, allow_hosts={"cdn.example-own.jp": "our CDN"})
        with serve(create_app(gate_settings(origin, sites=(site,)))) as url:
            yield url


def test_injected_loads_to_undeclared_hosts_are_stopped_and_allow_hosts_pass(base):
    with sync_playwright() as p:
        browser = launch(p)
        try:
            context, traffic = new_context(browser, base)
            page = context.new_page()
            errors = page_errors(page)
            page.goto(base + "/_gate/healthz")
            assert (
                page.evaluate("""() => fetch('/_gate/consent', {method: 'POST', body: '{"choice": "accept_all"}',
                                    headers: {'content-type': 'application/json'}}).then(r => r.status)""")
                == 200
            )
            traffic.clear()
            page.goto(base + "/", wait_until="load")
            page.wait_for_function("window.injected === true")
            page.evaluate("new Promise(r => requestAnimationFrame(() => setTimeout(r, 100)))")
            left = traffic.vendor_urls
            assert not [u for u in left if "example-ads.net" in u]
            assert "https://cdn.example-own.jp/app.js" in left
            guard = page.evaluate("window.__gateGuard")
            assert guard["stopped"] == 3
            assert sorted(guard["hosts"]) == ["beacon.example-ads.net", "px.example-ads.net", "tracker.example-ads.net"]
            assert errors == []
            context.close()
        finally:
            browser.close()


@pytest.mark.parametrize("path", ["/plain", "/behind-base"])
def test_without_javascript_noscript_loads_to_undeclared_hosts_are_stripped_too(base, path):
    """With scripting off a <noscript>'s content is markup, and its pixel would load: gate reads it that
    way too. The site's allow_hosts still pass, and the page's own images stay."""
    with sync_playwright() as p:
        browser = launch(p)
        try:
            context, traffic = new_context(browser, base, java_script_enabled=False)
            page = context.new_page()
            page.goto(base + path, wait_until="load")
            page.wait_for_timeout(100)
            left = traffic.vendor_urls
            assert not [u for u in left if "example-ads.net" in u], left
            assert "https://cdn.example-own.jp/logo.png" in left
            if path == "/plain":
                assert any(u.endswith("/photo.jpg") for u in traffic.urls)
            context.close()
        finally:
            browser.close()
