"""The runtime backstops in a real browser (Debian's Chromium via Playwright): the inline guard and the
consent-derived CSP, against a first-party "tag manager" script that injects the Meta pixel after the
server has gated the HTML; and the vendor cookies a refusal expires. Every request to a host other than
the gate's is answered by an empty 200 and recorded (browser_support.Traffic), so "nothing went to
facebook.net" is observed, not inferred."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from gate import csp, urls
from gate.app import create_app
from gate.settings import Site

from .browser_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    Traffic,
    chromium_missing,
    launch,
    new_context,
    page_errors,
)
from .conftest import gate_settings, serve
from .test_guard import CONSENTS, URLS, server_refuses

if (_reason := chromium_missing()) is not None:
    pytest.skip(_reason, allow_module_level=True)

from playwright.sync_api import Browser, Page, Playwright, sync_playwright

FB_JS = "https://connect.facebook.net/en_US/fbevents.js"
FB_PX = "https://www.facebook.com/tr?id=100000000000001&ev=PageView&noscript=1"
# A tag manager's container, in the shape GTM runs a Custom HTML tag: beyond the server's reach,
# because it is a first-party file that the rewriter never reads.
GTM_LIKE = f"""(function (w, d) {{
  var s = d.createElement('script'); s.async = true; s.src = '{FB_JS}';
  var f = d.getElementsByTagName('script')[0]; f.parentNode.insertBefore(s, f);
  var px = new Image(); px.src = '{FB_PX}';
  w.gtmLikeRan = true;
}})(window, document);
"""
PAGE = (
    "<!doctype html><html lang=ja><head><meta charset=utf-8><title>求人</title>"
    "<script src=/gtm-like.js></script></head>"
    "<body><h1>歯科衛生士</h1><div id=probe style='width:10px;height:10px'></div>{}</body></html>"
)
# Floodlight's way: document.write of an iframe while the page parses, from a first-party file.
WRITER = """document.write('<iframe src="https://ad.doubleclick.net/activityi;src=1;type=apply;cat=x;ord=1?" \
width=1 height=1></iframe>');
document.write('<p id=fine>ok</p>');
"""


def origin_app() -> Starlette:
    async def page(request: Request) -> Response:
        return HTMLResponse(PAGE.format(""))

    async def write_page(request: Request) -> Response:
        return HTMLResponse(PAGE.format("<script src=/writer.js></script>"))

    def script(text: str):
        async def endpoint(request: Request) -> Response:
            return Response(text, media_type="application/javascript")

        return endpoint

    return Starlette(
        routes=[
            Route("/", page),
            Route("/write", write_page),
            Route("/gtm-like.js", script(GTM_LIKE)),
            Route("/writer.js", script(WRITER)),
        ]
    )


class Stack:
    """An origin, gate in front of it (one site, ``csp`` mode), and the gate app for its counters."""

    def __init__(self, base: str, app: Any) -> None:
        self.base, self.app = base, app

    def attempts(self) -> dict[csp.Attempt, int]:
        return self.app.state.gate.attempts.attempted_counts()

    def wait_for_attempt(self, page: Page, match: Callable[[csp.Attempt], bool], timeout: float = 10.0) -> csp.Attempt:
        """The first counted attempt that ``match``es, waiting for its report to arrive."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [a for a in self.attempts() if match(a)]
            if found:
                return found[0]
            page.wait_for_timeout(50)  # not time.sleep: Playwright routes requests (the report too) meanwhile
        raise AssertionError(f"no such report arrived; counted: {self.attempts()}")


@contextmanager
def stack(mode: str) -> Iterator[Stack]:
    with serve(origin_app()) as origin:
        app = create_app(gate_settings(origin, sites=(Site(upstream=origin, csp=mode),)))
        with serve(app) as base:
            yield Stack(base, app)


@pytest.fixture(scope="module")
def report_only() -> Iterator[Stack]:
    with stack("report-only") as s:
        yield s


@pytest.fixture(scope="module")
def enforce() -> Iterator[Stack]:
    with stack("enforce") as s:
        yield s


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = launch(playwright)
    try:
        yield chromium
    finally:
        chromium.close()


@pytest.fixture
def visit(browser: Browser) -> Iterator[Callable[..., tuple[Page, Traffic, list[str]]]]:
    """visit(stack, choice=None) -> (page, traffic, errors): a fresh context; ``choice`` is posted to
    /_gate/consent first (as gate.js would), None leaves the visitor undecided."""
    contexts = []

    def go(s: Stack, choice: dict | None = None, path: str = "/") -> tuple[Page, Traffic, list[str]]:
        context, traffic = new_context(browser, s.base)
        contexts.append(context)
        page = context.new_page()
        errors = page_errors(page)
        if choice is not None:
            page.goto(s.base + "/_gate/healthz")
            status = page.evaluate(
                """c => fetch('/_gate/consent', {method: 'POST', body: JSON.stringify(c),
                                     headers: {'content-type': 'application/json'}}).then(r => r.status)""",
                choice,
            )
            assert status == 200
        traffic.clear()
        page.goto(s.base + path, wait_until="load")
        page.wait_for_function("window.gtmLikeRan === true")
        page.evaluate("new Promise(r => requestAnimationFrame(() => setTimeout(r, 100)))")
        return page, traffic, errors

    yield go
    for context in contexts:
        context.close()


def to_facebook(traffic: Traffic) -> list[str]:
    return [
        u
        for u in traffic.vendor_urls
        if urls.parse(u) and urls.parse(u).host.endswith(("facebook.net", "facebook.com"))
    ]


# -- the guard ----------------------------------------------------------------------------------
def test_a_tag_manager_injecting_the_meta_pixel_is_stopped_and_reported(report_only, visit):
    page, traffic, errors = visit(report_only)  # undecided: advertising refused
    assert to_facebook(traffic) == []
    guard = page.evaluate("window.__gateGuard")
    assert guard["stopped"] == 2 and sorted(guard["hosts"]) == ["connect.facebook.net", "www.facebook.com"]
    # Its report reaches /_gate/csp-report and counts as attempted for Meta, seen by the guard.
    report_only.wait_for_attempt(
        page, lambda a: a.vendor == "facebook" and a.source == "guard" and a.host == "connect.facebook.net"
    )
    assert errors == []


def test_with_advertising_accepted_the_same_injection_loads(report_only, visit):
    page, traffic, errors = visit(report_only, {"choice": "accept_all"})
    assert any(u.startswith(FB_JS) for u in traffic.vendor_urls)
    assert any(u.startswith("https://www.facebook.com/tr?") for u in traffic.vendor_urls)
    # Nothing refused; the guard is there for undeclared hosts only (opt-in strips them) and stops nothing.
    assert page.evaluate("window.__gateGuard")["stopped"] == 0
    assert errors == []


def test_every_runtime_path_to_a_refused_host_is_stopped(report_only, visit):
    page, traffic, errors = visit(report_only, {"choice": "reject_all"})
    traffic.clear()
    stopped_before = page.evaluate("window.__gateGuard.stopped")
    page.evaluate("""() => {
      const px = 'https://www.facebook.com/tr?id=1&ev=';
      const img = document.createElement('img'); img.setAttribute('src', px + 'setAttribute');
      document.body.append(img);
      const frame = document.createElement('iframe'); frame.src = px + 'iframe'; document.body.appendChild(frame);
      const link = document.createElement('link'); link.rel = 'preload'; link.as = 'script';
      link.href = 'https://connect.facebook.net/signals/config/1'; document.head.prepend(link);
      const holder = document.createElement('div'); document.body.appendChild(holder);
      holder.innerHTML = '<img src="' + px + 'innerHTML">';
      const tpl = document.createElement('template'); tpl.innerHTML = '<img src="' + px + 'template">';
      document.body.appendChild(tpl.content.cloneNode(true));
      navigator.sendBeacon(px + 'beacon', 'x');
      fetch(px + 'fetch').catch(() => 0);
      const xhr = new XMLHttpRequest(); xhr.open('GET', px + 'xhr'); xhr.send();
      new Image(1, 1).src = px + 'Image';
    }""")
    page.evaluate("new Promise(r => setTimeout(r, 300))")
    assert to_facebook(traffic) == []
    assert page.evaluate("window.__gateGuard.stopped") - stopped_before == 9  # one per path above
    assert errors == []


def test_document_write_of_a_refused_frame_is_dropped_and_the_rest_written(report_only, visit):
    page, traffic, errors = visit(report_only, path="/write")
    assert not [u for u in traffic.vendor_urls if "doubleclick" in u]
    assert page.locator("#fine").inner_text() == "ok"  # a write naming no refused host goes through
    assert "ad.doubleclick.net" in page.evaluate("window.__gateGuard.hosts")
    assert errors == []


def test_an_accepted_tag_on_a_shared_host_loads_while_a_refused_one_does_not(report_only, visit):
    page, traffic, errors = visit(report_only, {"purposes": {"improvement": True}})
    traffic.clear()
    page.evaluate("""() => ['G-DEMO12345', 'AW-100000001'].forEach(id => {
      const s = document.createElement('script'); s.src = 'https://www.googletagmanager.com/gtag/js?id=' + id;
      document.head.appendChild(s);
    })""")
    page.evaluate("new Promise(r => setTimeout(r, 300))")
    loaded = [u for u in traffic.vendor_urls if "googletagmanager" in u]
    assert loaded == ["https://www.googletagmanager.com/gtag/js?id=G-DEMO12345"]
    assert errors == []


def test_the_guard_agrees_with_the_server_on_every_vendor_url(report_only, visit):
    page, traffic, _ = visit(report_only, {"purposes": {"improvement": True}})
    allowed = CONSENTS["analytics"]
    for url in URLS:
        traffic.clear()
        page.evaluate("u => { new Image().src = u; }", url)
        page.evaluate("new Promise(r => setTimeout(r, 50))")
        requested = any(u.startswith(url.split("?")[0]) for u in traffic.vendor_urls)
        registry, parsed = report_only.app.state.gate.registries[None], urls.parse(url)
        undeclared = not registry.tags_for_url(parsed) and registry.is_undeclared(parsed, "127.0.0.1")
        assert requested is not (server_refuses(allowed, url) or undeclared), url


# -- the CSP ------------------------------------------------------------------------------------
def test_report_only_csp_reports_an_undeclared_host_the_guard_does_not_know(report_only, visit):
    page, traffic, errors = visit(report_only)
    page.evaluate("document.getElementById('probe').style.backgroundImage = 'url(https://tracker.example.org/p.gif)'")
    report_only.wait_for_attempt(
        page, lambda a: a.host == "tracker.example.org" and a.source == "csp" and a.vendor == ""
    )
    # Report-only observes: the image was still fetched.
    assert any(u.startswith("https://tracker.example.org/") for u in traffic.vendor_urls)
    assert errors == []


def test_enforced_csp_blocks_and_reports_what_the_guard_cannot_see(enforce, visit):
    page, traffic, errors = visit(enforce)
    traffic.clear()
    # A CSS url() is no element, no fetch(): only the CSP stands in its way.
    page.evaluate("document.getElementById('probe').style.backgroundImage = 'url(https://www.facebook.com/tr?id=css)'")
    enforce.wait_for_attempt(page, lambda a: a.vendor == "facebook" and a.source == "csp")
    assert to_facebook(traffic) == []
    assert errors == []


# -- cookies ------------------------------------------------------------------------------------
def test_refusing_expires_vendor_cookies_on_the_host_and_its_parent_domain_httponly_included(report_only, playwright):
    # A real host name (resolved to 127.0.0.1), so that cookies can live on the parent domain too.
    chromium = playwright.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=[*CHROMIUM_ARGS, "--host-resolver-rules=MAP jobs.example.jp 127.0.0.1"],
    )
    try:
        base = report_only.base.replace("127.0.0.1", "jobs.example.jp")
        context, _ = new_context(chromium, base)
        context.add_cookies(
            [
                {"name": "_ga", "value": "GA1.1.1.1", "domain": ".example.jp", "path": "/", "httpOnly": True},
                {"name": "_ga_DEMO12345", "value": "1", "domain": ".jobs.example.jp", "path": "/"},
                {"name": "_fbp", "value": "fb.1.1.1", "url": base + "/"},  # host-only
                {"name": "session", "value": "s", "url": base + "/", "httpOnly": True},
            ]
        )
        page = context.new_page()
        page.goto(base + "/_gate/healthz")
        status = page.evaluate("""() => fetch('/_gate/consent', {method: 'POST', body: '{"choice": "reject_all"}',
                                  headers: {'content-type': 'application/json'}}).then(r => r.status)""")
        assert status == 200
        assert sorted(c["name"] for c in context.cookies()) == ["gate_consent", "session"]
    finally:
        chromium.close()
