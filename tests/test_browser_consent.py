"""Issue 11 as a visitor sees it, in Chromium: the banner that asks again names the recipients added
since the last choice while the tags it covered keep running; the settings layer has its own line per
recipient for personal data from forms; and what a refused vendor kept outside cookies is gone from
the browser on the next page."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from gate.app import create_app
from gate.consent import COOKIE_NAME
from gate.settings import Site

from .browser_support import chromium_missing, new_context, page_errors
from .conftest import gate_settings, serve

if (_reason := chromium_missing()) is not None:
    pytest.skip(_reason, allow_module_level=True)

from playwright.sync_api import expect


@contextmanager
def gate_for(*vendors: str) -> Iterator[str]:
    """gate in front of the demo site, carrying ``vendors``; every instance signs with the same key."""
    app = create_app(gate_settings("demo", sites=(Site(upstream="demo", vendors=vendors),)))
    with serve(app) as base:
        yield base


def decide(page, base: str, body: str) -> None:
    page.goto(base + "/_gate/healthz")
    status = page.evaluate(
        """b => fetch('/_gate/consent', {method: 'POST', body: b,
      headers: {'content-type': 'application/x-www-form-urlencoded'}}).then(r => r.status)""",
        body,
    )
    assert status == 200  # fetch follows the 303 to the site


def test_the_banner_asks_again_naming_the_new_recipients(browser):
    # The visitor accepted all while the site carried only Google; the same key signs on both gates.
    with gate_for("google") as before, gate_for("google", "criteo", "facebook") as after:
        r = httpx.post(
            before + "/_gate/consent",
            content="choice=accept_all",
            headers={"origin": before, "content-type": "application/x-www-form-urlencoded"},
        )
        context, traffic = new_context(browser, after)
        context.add_cookies([{"name": COOKIE_NAME, "value": r.cookies[COOKIE_NAME], "url": after}])
        page = context.new_page()
        errors = page_errors(page)
        page.goto(after + "/", wait_until="load")
        new = page.locator("#gate-banner .gate-new")
        expect(new).to_be_visible()
        expect(new).to_contain_text("Criteo SA")
        expect(new).to_contain_text("Meta Platforms, Inc.")
        expect(page.get_by_role("button", name="すべて同意")).to_be_visible()
        loaded = " ".join(traffic.vendor_urls)
        assert "criteo" not in loaded and "facebook" not in loaded  # undecided for them: not sent
        assert "googletagmanager.com/gtag/js?id=G-" in loaded  # what the first choice covered still runs
        page.get_by_role("button", name="設定").click()
        line = page.get_by_role("checkbox", name="Meta Platforms, Inc.（アメリカ合衆国）への提供に同意する")
        expect(line).to_be_visible()
        expect(line).not_to_be_checked()
        assert errors == []
        context.close()


def test_what_a_refused_vendor_kept_outside_cookies_is_cleared(browser):
    with gate_for("criteo", "adjust") as base:
        context, _ = new_context(browser, base)
        page = context.new_page()
        page.goto(base + "/_gate/healthz")
        page.evaluate("""() => new Promise(done => {
          localStorage.setItem('cto_bundle', 'x'); localStorage.setItem('adjust-sdk.activity', 'y');
          localStorage.setItem('site-own', 'z');
          const open = indexedDB.open('adjust-sdk', 1);
          open.onupgradeneeded = () => open.result.createObjectStore('s');
          open.onsuccess = () => { open.result.close(); done(); };
        })""")
        decide(page, base, "choice=reject_all")
        page.goto(base + "/", wait_until="load")
        left = page.evaluate("""async () => ({
          keys: Object.keys(localStorage).sort(),
          dbs: (await indexedDB.databases()).map(d => d.name),
        })""")
        assert left["keys"] == ["site-own"]
        assert "adjust-sdk" not in left["dbs"]
        context.close()
