"""In Chromium: whatever a page's ``<base href>`` says, gate's stylesheet, scripts, form posts and beacons
go to gate, and no refused vendor's host is contacted.

A real origin (uvicorn) serves one page per base case; gate (uvicorn, report store on, so beacon.js is
injected too) stands in front of it. Chromium records every request the page makes (anything not
for gate gets an empty 200, see browser_support.Traffic), and gate records every request that reached
it, for the beacons Chromium sends outside Playwright's view. tests/test_inject_base.py checks the
markup itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from gate import urls, vendors
from gate.app import create_app

from .browser_support import chromium_missing, new_context, page_errors
from .conftest import gate_settings, serve
from .store_support import TOKEN

if (_reason := chromium_missing()) is not None:
    pytest.skip(_reason, allow_module_level=True)


REGISTRY = vendors.load()
# {site} is gate's own origin, filled in per request (the page is served before the test knows it).
BASES = {
    "site-host": '<base href="{site}/assets/">',
    "other-host": '<base href="https://cdn.example.org/static/">',
    "vendor-host": '<base href="https://connect.facebook.net/">',
    "relative": '<base href="../sub/dir/">',
    "several": '<base href="https://cdn.example.org/"><base href="https://connect.facebook.net/">',
    "vendor-then-other": '<base href="https://connect.facebook.net/"><base href="https://cdn.example.org/">',
    "target-blank": '<base href="https://cdn.example.org/" target="_blank">',
}


def origin_page(request: Request) -> HTMLResponse:
    site = request.headers["x-forwarded-proto"] + "://" + request.headers["x-forwarded-host"]
    base = BASES[request.path_params["case"]].format(site=site)
    return HTMLResponse(
        "<!doctype html><html><head><meta charset=utf-8>" + base + "<title>Jobs</title></head>"
        "<body><h1>求人</h1><p>Engineers wanted.</p></body></html>"
    )


class Landed:
    """ASGI middleware: (method, path, media type) of every request that reached gate."""

    def __init__(self, app: Any) -> None:
        self.app, self.seen = app, []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            media = dict(scope["headers"]).get(b"content-type", b"").split(b";")[0].decode("latin-1")
            self.seen.append((scope["method"], scope["path"], media))
        await self.app(scope, receive, send)

    @property
    def state(self):
        return self.app.state


@pytest.fixture(scope="module")
def gate(tmp_path_factory) -> Iterator[tuple[str, Landed]]:
    origin = Starlette(routes=[Route("/page/{case}", origin_page)])
    store = str(tmp_path_factory.mktemp("inject") / "gate.sqlite3")
    with serve(origin) as origin_url:
        app = Landed(create_app(gate_settings(origin_url, store=store, report_token=TOKEN, flush_interval=3600.0)))
        with serve(app) as base:
            yield base, app


def off_gate(requested: list[str], base: str) -> list[str]:
    """Requests that went anywhere but gate."""
    own = urlsplit(base).netloc
    return [u for u in requested if not u.startswith("data:") and urlsplit(u).netloc != own]


def vendor_hits(requested: list[str]) -> list[str]:
    return [u for u in requested if (p := urls.parse(u)) is not None and REGISTRY.tags_for_url(p)]


def wait_landed(app: Landed, method: str, path: str, media: str, page) -> None:
    for _ in range(50):  # beacons leave on their own schedule: up to 5 s
        if (method, path, media) in app.seen:
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"{method} {path} ({media}) never reached gate; it saw {app.seen[-8:]}")


@pytest.mark.parametrize("case", list(BASES))
def test_banner_assets_form_post_and_beacons_go_to_gate_whatever_the_base(browser, gate, case):
    base, app = gate
    context, traffic = new_context(browser, base)
    try:
        page = context.new_page()
        errors = page_errors(page)
        page.goto(f"{base}/page/{case}", wait_until="load")
        # gate.css applied and gate.js ran: both came from gate.
        assert page.evaluate("getComputedStyle(document.getElementById('gate-banner')).position") == "fixed"
        assert page.get_attribute("#gate-settings", "aria-controls") == "gate-panel"
        # A refused host touched after load: the guard stops it and reports it, to gate (its own
        # report is application/reports+json; the CSP's report-uri sends application/csp-report).
        app.seen.clear()
        page.evaluate(
            "var s = document.createElement('script');"
            "s.src = 'https://connect.facebook.net/en_US/fbevents.js'; document.head.appendChild(s)"
        )
        wait_landed(app, "POST", "/_gate/csp-report", "application/reports+json", page)
        # beacon.js reports the page view when the page is hidden: to gate.
        page.evaluate("dispatchEvent(new Event('pagehide'))")
        wait_landed(app, "POST", "/_gate/beacon", "text/plain", page)
        # The consent form (gate.js posts it in place, then the page reloads with the settings link).
        with page.expect_navigation(wait_until="load"):
            page.get_by_role("button", name="すべて拒否", exact=True).click()
        assert ("POST", "/_gate/consent", "application/x-www-form-urlencoded") in app.seen
        assert len(context.pages) == 1 and page.url == f"{base}/page/{case}"
        assert page.locator("a.gate-set").count() == 1
        assert (
            page.evaluate("getComputedStyle(document.querySelector('a.gate-set').closest('.gate-dock')).position")
            == "fixed"
        )
        assert off_gate(traffic.urls, base) == [] and vendor_hits(traffic.urls) == []
        assert errors == []
    finally:
        context.close()


@pytest.mark.parametrize("case", ["other-host", "vendor-host", "target-blank"])
def test_without_javascript_the_consent_form_posts_to_gate(browser, gate, case):
    base, app = gate
    context, traffic = new_context(browser, base, java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(f"{base}/page/{case}", wait_until="load")
        app.seen.clear()
        with page.expect_navigation(wait_until="load"):
            page.get_by_role("button", name="すべて拒否", exact=True).click()
        assert app.seen[:1] == [("POST", "/_gate/consent", "application/x-www-form-urlencoded")]
        assert len(context.pages) == 1 and page.url == f"{base}/page/{case}"  # the 303 back to the page
        # The settings button opens the preferences page on gate, the notice link too.
        page.goto(f"{base}/page/{case}", wait_until="load")
        with page.expect_navigation(wait_until="load"):
            page.get_by_role("link", name="外部送信について").first.click()
        assert urlsplit(page.url).netloc == urlsplit(base).netloc and urlsplit(page.url).path == "/_gate/notice"
        assert off_gate(traffic.urls, base) == [] and vendor_hits(traffic.urls) == []
    finally:
        context.close()
