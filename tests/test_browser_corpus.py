"""The adversarial corpus in a real browser: Debian's Chromium, with scripting on and with it off.

html5lib is the judge of tests/test_corpus.py, and it shares gate's URL reader. Here nothing of gate's
decides: each case's page is rewritten with its tag refused, served to Chromium as the page
https://jobs.example.jp/jobs/1, and every request the browser then makes is recorded (and answered with
an empty 200, so nothing leaves this machine). The refused vendor's hosts must never be asked for.
The same harness loading the unrewritten pages must see those requests, or it proves nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from gate import urls, vendors
from gate.rewrite import PagePlan, PageRewriter

from .browser_support import chromium_missing, launch
from .corpus import CASES, SCRIPT_CASES

if (_reason := chromium_missing()) is not None:
    pytest.skip(_reason, allow_module_level=True)

from playwright.sync_api import Browser, sync_playwright

REGISTRY = vendors.load()
ALL = frozenset(REGISTRY.tags)
PAGE_URL = "https://jobs.example.jp/jobs/1"
STRIP = [c for c in CASES if c.expect == "strip"]


class Tab:
    """One browser context (scripting on or off) that serves any page as PAGE_URL and records every
    other request, answering it with an empty 200. Routing turns Chromium's HTTP cache off, so a URL
    asked for by an earlier page is asked for again."""

    def __init__(self, browser: Browser, scripting: bool) -> None:
        self.context = browser.new_context(java_script_enabled=scripting)
        self.context.route("**/*", self._handle)
        self.html = b""
        self.seen: list[str] = []
        self.page = self.context.new_page()

    def _handle(self, route) -> None:
        url = route.request.url
        if url == PAGE_URL:
            route.fulfill(status=200, body=self.html, headers={"content-type": "text/html; charset=utf-8"})
            return
        self.seen.append(url)
        route.fulfill(status=200, body="", content_type="text/plain")

    def requested_tags(self, html: bytes) -> tuple[set[str], list[str]]:
        """Load ``html`` as PAGE_URL; the vendor tags of every request made, and the requests."""
        self.html, self.seen = html, []
        self.page.goto("about:blank")
        self.page.goto(PAGE_URL, wait_until="load", timeout=15_000)
        self.page.wait_for_timeout(100)  # timers of zero, frames that load late, refreshes of 0 s
        self.page.goto("about:blank")  # what is still pending is asked for before the next page
        tags: set[str] = set()
        for url in self.seen:
            if urlsplit(url).scheme in ("http", "https"):
                parsed = urls.parse(url)  # Chromium's own, canonical form: nothing left to read into it
                if parsed is not None:
                    tags |= REGISTRY.tags_for_url(parsed)
        return tags, list(self.seen)


@pytest.fixture(scope="module")
def tabs() -> Iterator[dict[bool, Tab]]:
    with sync_playwright() as p:
        browser = launch(p)
        yield {scripting: Tab(browser, scripting) for scripting in (True, False)}
        browser.close()


def rewritten(html: bytes, allowed: frozenset[str]) -> bytes:
    rw = PageRewriter(PagePlan(REGISTRY, allowed, urls.parse(PAGE_URL)))
    return rw.feed(html) + rw.close()


@pytest.fixture(scope="module")
def input_loads(tabs) -> dict[str, bool]:
    """Per case: does Chromium, loading the upstream's page, ask the case's vendor for its tag?"""
    return {
        case.id: any(case.tag in tab.requested_tags(case.html.encode())[0] for tab in tabs.values()) for case in STRIP
    }


@pytest.mark.parametrize("scripting", [True, False], ids=["scripting-on", "scripting-off"])
@pytest.mark.parametrize("case", STRIP, ids=[c.id for c in STRIP])
def test_chromium_never_asks_a_refused_vendor(tabs, case, scripting):
    out = rewritten(case.html.encode(), ALL - {case.tag})
    tags, seen = tabs[scripting].requested_tags(out)
    assert case.tag not in tags, seen


def test_the_harness_sees_the_upstreams_pages_load_their_tags(input_loads):
    """Most cases load their tag in Chromium before gate: the harness is watching the right thing.
    Some need what a page load does not do (a click for <a ping>, a script to clone a <template>),
    and some name elements Chromium does not ship (<portal>). The inline-call cases (`fbq('track', …)`,
    `Adjust.trackEvent(…)` with no loader on the page) make no request of their own: Chromium with
    recorder globals judges those (test_chromium_runs_no_call_of_a_refused_vendor below)."""
    loaded = [case_id for case_id, hit in input_loads.items() if hit]
    assert len(loaded) >= 0.65 * len(STRIP), sorted(set(input_loads) - set(loaded))  # 67 of 97 here


# -- the script corpus: which vendor a script calls, as Chromium runs it -----------------------------
# Every vendor global is a recorder here (defined before any of the page's scripts), playing the part
# of a vendor SDK that a site bundles itself; Chromium runs the page and we read what was called, with
# which arguments (as JSON: variables are their values by then). gate's reading decides nothing here.
RECORDERS = """
window.__gate_calls = [];
(function () {
  function rec(name) { return function () {
    var args; try { args = JSON.stringify(Array.prototype.slice.call(arguments)); } catch (e) { args = "[]"; }
    window.__gate_calls.push([name, args]); }; }
  window.fbq = rec("fbq"); window._fbq = rec("fbq");
  window.gtag = rec("gtag"); window.dataLayer = {push: rec("gtag")};
  window.ytag = rec("ytag"); window.yjDataLayer = {push: rec("ytag")};
  window.criteo_q = {push: rec("criteo_q")};
  window.Adjust = new Proxy({}, {get: function (t, k) { return rec("Adjust"); }});
})();
"""
VENDOR_OF_GLOBAL = {"fbq": "facebook", "gtag": "google", "ytag": "yahoo", "criteo_q": "criteo", "Adjust": "adjust"}
PERSONAL_KEYS = {"em", "ph", "fn", "ln", "ge", "db", "ct", "st", "zp", "external_id", "user_id", "user_data"}
CRITEO_PERSONAL = {"setEmail": "email", "setHashedEmail": "email", "setCustomerId": "id"}


def _empty(value) -> bool:
    return (
        value in (None, False, "", [], {})
        or (isinstance(value, str) and not value.strip())
        or (isinstance(value, list) and all(_empty(v) for v in value))
    )


def carries_personal_data(value) -> bool:
    """Whether a recorded argument holds personal data: Meta's advanced matching keys, Google's
    user_data and user_id, Criteo's e-mail and customer id events, with a value that is not empty."""
    if isinstance(value, list):
        return any(carries_personal_data(v) for v in value) or any(
            isinstance(k, str) and k in PERSONAL_KEYS and not _empty(v) for k, v in zip(value, value[1:], strict=False)
        )
    if isinstance(value, dict):
        key = CRITEO_PERSONAL.get(value.get("event"))
        if key and not _empty(value.get(key)):
            return True
        return any((k in PERSONAL_KEYS and not _empty(v)) or carries_personal_data(v) for k, v in value.items())
    return False


@pytest.fixture(scope="module")
def recorder(tabs):
    """calls(html): the vendor calls Chromium makes loading ``html`` as PAGE_URL, as (vendor, args)."""
    browser = tabs[True].context.browser
    context = browser.new_context()
    context.add_init_script(RECORDERS)
    served = {"html": b""}
    context.route(
        "**/*",
        lambda route: route.fulfill(
            status=200,
            body=served["html"] if route.request.url == PAGE_URL else b"",
            headers={"content-type": "text/html; charset=utf-8" if route.request.url == PAGE_URL else "text/plain"},
        ),
    )
    page = context.new_page()

    def calls(html: bytes) -> list[tuple[str, object]]:
        served["html"] = html
        page.goto(PAGE_URL, wait_until="load", timeout=15_000)
        return [(VENDOR_OF_GLOBAL[name], json.loads(args)) for name, args in page.evaluate("window.__gate_calls")]

    yield calls
    context.close()


def script_page(case) -> bytes:
    return (
        "<!DOCTYPE html><html><head><meta charset=utf-8></head><body><p>求人</p>"
        "<script>var h = '5f1d7a', uid = 'u-1001';</script>"
        "<script>" + case.script + "</script></body></html>"
    ).encode()


def vendor_of(case) -> str:
    return case.tag.split(".")[0]


# gtag() calls that name no tag ("js", an event without send_to) are nobody's in particular: they only
# reach what a gtag('config') call (judged on its own) set up, so they are not in the refusal check.
CALLING = [c for c in SCRIPT_CASES if c.tag]
QUIET = [c for c in SCRIPT_CASES if c.tag is None and "gtag" not in c.script]


@pytest.mark.parametrize("case", CALLING, ids=[c.id for c in CALLING])
def test_chromium_runs_no_call_of_a_refused_vendor(recorder, case):
    html = script_page(case)
    before = recorder(html)
    assert vendor_of(case) in {v for v, _ in before}, "the case does not call its vendor in Chromium"
    assert any(carries_personal_data(args) for _, args in before) is case.sends, "the case's personal data claim"
    vendor_tags = REGISTRY.vendors[vendor_of(case)].tags
    after = recorder(rewritten(html, ALL - set(vendor_tags)))
    assert vendor_of(case) not in {v for v, _ in after}, after


@pytest.mark.parametrize("case", CALLING, ids=[c.id for c in CALLING])
def test_chromium_after_accept_all_runs_every_call_without_personal_data(recorder, case):
    """Every tag accepted, personal data not allowed (the default): scripts that send none still run
    (Criteo's published OneTag among them); those that send some do not run at all."""
    html = script_page(case)
    after = recorder(rewritten(html, ALL))
    assert not any(carries_personal_data(args) for _, args in after), after
    assert (vendor_of(case) in {v for v, _ in after}) is not case.sends


@pytest.mark.parametrize("case", QUIET, ids=[c.id for c in QUIET])
def test_chromium_confirms_mentions_call_nothing(recorder, case):
    html = script_page(case)
    assert recorder(html) == []
    assert rewritten(html, frozenset()) == html
