"""gate's UI in real layouts, in Chromium: nothing injected into the page's flow (a flex body keeps its
width), the settings button where the site wants it (a corner and offset, or the site's own
[data-gate-settings] element), the notice link optional, the site's font, a phone's settings layer with
its save button in sight, and a notice table that does not break words."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from gate import vendors
from gate.app import create_app
from gate.consent import COOKIE_NAME, ConsentCodec, decide
from gate.settings import Site

from .browser_support import chromium_missing, demo_gate, new_context
from .conftest import KEY, gate_settings, serve

if (_reason := chromium_missing()) is not None:
    pytest.skip(_reason, allow_module_level=True)

from playwright.sync_api import Browser, Page

REGISTRY = vendors.load()
GA = '<script async src="https://www.googletagmanager.com/gtag/js?id=G-DEMO12345"></script>'
SIDEBAR = "".join(f'<li><a href="/ch{i}">Chapter {i}</a></li>' for i in range(1, 40))
PAGES = {
    # rustdoc: the body is a flex row; one more child would be one more column
    "/row": (
        "<body style=\"margin:0;display:flex;font-family:'DejaVu Serif',serif\">"
        '<nav style="flex:none;width:200px">items</nav><main id="content" style="flex:1 1 auto">'
        "<p>本文</p></main></body>"
    ),
    # mdBook: a fixed sidebar down the left edge, entries to its bottom
    "/book": (
        f'<body style="margin:0"><nav id="side" style="position:fixed;left:0;top:0;bottom:0;width:300px;'
        f'overflow:auto"><ol>{SIDEBAR}</ol></nav><main style="margin-left:300px"><p>本文</p></main></body>'
    ),
    # a site whose footer has a place for the settings link
    "/hosted": (
        '<body><main><p>本文</p></main><footer id="foot"><a href="/privacy">プライバシーポリシー</a> '
        "<span data-gate-settings></span></footer></body>"
    ),
}


def origin_app() -> Starlette:
    async def page(request: Request) -> Response:
        body = PAGES.get(request.url.path, "<body><p>x</p></body>")
        return HTMLResponse(f"<!doctype html><html lang=ja><head><title>t</title>{GA}</head>{body}</html>")

    return Starlette(routes=[Route("/{path:path}", page)])


@pytest.fixture(scope="module")
def origin() -> Iterator[str]:
    with serve(origin_app()) as url:
        yield url


@pytest.fixture
def open_page(browser: Browser, origin: str):
    """open_page(path, decided=..., **site options) -> the page as a visitor sees it through gate."""
    contexts: list[Any] = []
    servers: list[Any] = []

    def open_page(path: str, decided: bool = True, **site: Any) -> Page:
        conf = dataclasses.replace(gate_settings(origin), sites=(Site(upstream=origin, **site),))
        server = serve(create_app(conf))
        base = server.__enter__()
        servers.append(server)
        context, _ = new_context(browser, base)
        contexts.append(context)
        if decided:
            value = ConsentCodec((KEY,)).dumps(decide(REGISTRY, ["improvement"], method="banner"))
            context.add_cookies([{"name": COOKIE_NAME, "value": value, "url": base}])
        page = context.new_page()
        page.goto(base + path, wait_until="load")
        return page

    yield open_page
    for context in contexts:
        context.close()
    for server in servers:
        server.__exit__(None, None, None)


def box(page: Page, selector: str) -> dict[str, float]:
    b = page.locator(selector).first.bounding_box()
    assert b is not None, selector
    return b


def overlaps(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and b["y"] < a["y"] + a["height"]
    )


# -- nothing in the page's flow ------------------------------------------------------------------------
@pytest.mark.parametrize("decided", [True, False], ids=["decided", "banner"])
def test_a_flex_body_keeps_its_width(browser, origin, open_page, decided):
    """rustdoc's body is a flex row: gate's footer paragraph was an extra column, content 88 px narrower."""
    context, _ = new_context(browser, origin)
    try:
        direct = context.new_page()
        direct.goto(origin + "/row", wait_until="load")
        expected = box(direct, "#content")["width"]
    finally:
        context.close()
    page = open_page("/row", decided=decided)
    assert page.locator("[data-gate]").count() > 0  # gate is there
    assert box(page, "#content")["width"] == expected == 1080


# -- the settings button ----------------------------------------------------------------------------------
def test_the_settings_button_can_leave_a_left_sidebar_alone(open_page):
    page = open_page("/book")
    assert overlaps(box(page, ".gate-dock"), box(page, "#side"))  # the default corner: over the sidebar
    page = open_page("/book", settings_button="bottom-right", settings_button_offset=24)
    dock = box(page, ".gate-dock")
    assert not overlaps(dock, box(page, "#side"))
    assert dock["x"] + dock["width"] == 1280 - 24 and dock["y"] + dock["height"] == 800 - 24
    page.locator(".gate-set").click()
    assert "/_gate/preferences" in page.url


def test_the_site_can_host_the_settings_link_in_its_own_markup(open_page):
    page = open_page("/hosted")
    assert page.locator("#foot .gate-set").count() == 1 and page.locator(".gate-dock").count() == 0
    # absolute on gate's own origin, whatever the page's <base> says
    origin = page.url.split("/hosted")[0]
    assert page.locator("#foot .gate-foot a").get_attribute("href") == origin + "/_gate/notice"


def test_notice_link_can_be_turned_off(open_page):
    assert open_page("/book").locator(".gate-foot a").count() == 1
    page = open_page("/book", notice_link=False)
    assert page.locator(".gate-foot").count() == 0 and page.locator(".gate-set").is_visible()


# -- typography and the phone ------------------------------------------------------------------------------
def test_the_banner_uses_the_sites_font(open_page):
    page = open_page("/row", decided=False)
    body, banner = page.evaluate("""() => [getComputedStyle(document.body).fontFamily,
        getComputedStyle(document.querySelector('#gate-banner h2')).fontFamily]""")
    assert "DejaVu Serif" in body and banner == body


def test_the_save_button_is_in_sight_on_a_phone(browser):
    with demo_gate() as base:
        context, _ = new_context(browser, base, viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
        try:
            page = context.new_page()
            page.goto(base + "/", wait_until="load")
            page.get_by_role("button", name="設定", exact=True).click()
            save = page.get_by_role("button", name="選択を保存").bounding_box()
            assert save is not None and 0 <= save["y"] and save["y"] + save["height"] <= 740, save
            # and it is the button there, not something covering it
            hit = page.evaluate(
                "([x, y]) => document.elementFromPoint(x, y).textContent",
                [save["x"] + save["width"] / 2, save["y"] + save["height"] / 2],
            )
            assert hit == "選択を保存"
        finally:
            context.close()


LINES = """() => {
  // Every line start in the cells matching the selector: the text of each line, as laid out.
  const out = [];
  for (const cell of document.querySelectorAll(arguments_selector)) {
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    let lines = [], top = null;
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      for (let i = 0; i < n.data.length; i++) {
        if (!n.data[i].trim()) continue;
        const r = document.createRange(); r.setStart(n, i); r.setEnd(n, i + 1);
        const rect = r.getClientRects()[0];
        if (!rect) continue;
        if (top === null || rect.top > top + 2) { lines.push(""); top = rect.top; }
        lines[lines.length - 1] += n.data[i];
      }
    }
    out.push(lines);
  }
  return out;
}"""


def cell_lines(page: Page, selector: str) -> list[list[str]]:
    return page.evaluate(LINES.replace("arguments_selector", repr(selector)))


def test_the_notice_table_does_not_break_words_at_1280px(browser):
    with demo_gate() as base:
        context, _ = new_context(browser, base)
        try:
            page = context.new_page()
            page.goto(base + "/_gate/notice", wait_until="load")
            links = cell_lines(page, "td a")
            settings = cell_lines(page, "tbody td:last-child")
            headers = cell_lines(page, "thead th")
            every = cell_lines(page, "th, td")
        finally:
            context.close()
    assert links and all(len(lines) == 1 for lines in links), links  # プライバシーポリシー on one line
    assert all(len(lines) == 1 for lines in settings), settings  # 送信しない, not 送信/しな/い
    assert all(not line.startswith(("ー", "ル", "ィ")) for lines in headers for line in lines), headers
    assert not [line for lines in every for line in lines if line.startswith("ー")]  # no lone ー
