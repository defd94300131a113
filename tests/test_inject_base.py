"""Whatever a page's ``<base href>`` says, everything gate injects resolves to gate itself, and a
``<base>`` on a refused vendor's host is a tag like any other: stripped.

The pages go through the whole app (in-process, the origin mocked with respx); html5lib reads the
result as a browser would and urllib's urljoin resolves each injected URL against the base that
browser would use (the first ``<base>`` with an href, resolved against the page's URL). Neither
shares code with gate's own URL reader. tests/test_browser_inject.py checks the same in Chromium.
"""

from __future__ import annotations

import dataclasses
from urllib.parse import urljoin, urlsplit

import html5lib
import httpx
import pytest
import respx

from gate import app as gate_app
from gate import urls, vendors
from gate.consent import COOKIE_NAME, ConsentCodec, decide
from gate.rewrite import PagePlan, PageRewriter
from gate.settings import Site

from .conftest import KEY, asgi_client, gate_settings
from .store_support import TOKEN

pytestmark = pytest.mark.anyio
HTML = "{http://www.w3.org/1999/xhtml}"
REGISTRY = vendors.load()
ORIGIN = "http://origin.test"

# The bases a page may carry, by case id: what goes into its <head>.
BASES = {
    "no-base": "",
    "same-host": '<base href="http://gate.test/assets/">',
    "other-host": '<base href="https://cdn.example.org/static/">',
    "other-host-scheme-relative": '<base href="//cdn.example.org/">',
    "vendor-host": '<base href="https://connect.facebook.net/">',
    "vendor-host-with-path": '<base href="https://www.googletagmanager.com/gtag/">',
    "relative": '<base href="../sub/dir/">',
    "several": '<base href="https://cdn.example.org/"><base href="https://connect.facebook.net/">',
    "vendor-then-other": '<base href="https://connect.facebook.net/"><base href="https://cdn.example.org/">',
    "in-body": "",  # see page(): a <base> late in the body still rules every URL of the document
    "target-blank": '<base href="https://cdn.example.org/" target="_blank">',
}
# gate's own URLs: the attributes by which an injected element makes the browser fetch or go somewhere.
URL_ATTRIBUTES = ("href", "src", "action", "formaction")


def page(case: str) -> bytes:
    body = '<base href="https://connect.facebook.net/">' if case == "in-body" else ""
    return (
        "<!doctype html><html><head><meta charset=utf-8>" + BASES[case] + "<title>t</title></head>"
        '<body><h1>Jobs</h1><p><a href="/jobs">jobs</a></p>' + body + "</body></html>"
    ).encode()


def browser_base(doc, page_url: str) -> str:
    """The document's base URL as HTML defines it: the first <base> with an href, else the page's URL."""
    for el in doc.iter(HTML + "base"):
        if el.get("href") is not None:
            return urljoin(page_url, el.get("href").strip())
    return page_url


def injected_urls(html: bytes, page_url: str) -> list[tuple[str, str, str]]:
    """(element, attribute, resolved URL) for every URL on an element gate injected (data-gate)."""
    doc = html5lib.parse(html, treebuilder="etree")
    base = browser_base(doc, page_url)
    found = []
    for el in doc.iter():
        if not isinstance(el.tag, str) or el.get("data-gate") is None:
            continue
        for attr in URL_ATTRIBUTES:
            if el.get(attr) is not None:
                found.append((el.tag.removeprefix(HTML), attr, urljoin(base, el.get(attr).strip())))
    return found


def cookie(app, purposes: list[str], vendors_refused: tuple[str, ...] = ()) -> dict[str, str]:
    consent = decide(app.state.gate.registries[None], purposes, vendors_refused=vendors_refused)
    return {"cookie": f"{COOKIE_NAME}={ConsentCodec([KEY]).dumps(consent)}"}


def recording_app(store: str):
    """gate in front of ORIGIN with the report store on, so the beacon's script is injected too."""
    return gate_app.create_app(gate_settings(ORIGIN, store=store, report_token=TOKEN, flush_interval=3600.0))


async def gated(
    app,
    body: bytes,
    path: str = "/jobs/a?x=1",
    headers: dict[str, str] | None = None,
    base_url: str = "http://gate.test",
) -> httpx.Response:
    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="origin.test").mock(
            return_value=httpx.Response(200, headers={"content-type": "text/html; charset=utf-8"}, content=body)
        )
        async with asgi_client(app, base_url=base_url) as client:
            return await client.get(path, headers=headers or {})


# -- everything gate injects resolves to gate --------------------------------------------------------
@pytest.mark.parametrize("decided", [False, True], ids=["banner", "settings-link"])
@pytest.mark.parametrize("case", list(BASES))
async def test_every_injected_url_resolves_to_gate_whatever_the_base(tmp_path, case, decided):
    app = recording_app(str(tmp_path / "gate.sqlite3"))
    r = await gated(app, page(case), headers=cookie(app, []) if decided else None)
    found = injected_urls(r.content, "http://gate.test/jobs/a?x=1")
    kinds = {(el, attr) for el, attr, _ in found}
    expected = {("link", "href"), ("a", "href"), ("script", "src")}
    if not decided:
        expected |= {("form", "action"), ("button", "formaction")}
    assert expected <= kinds, f"injected elements missing: {expected - kinds}"
    # The privacy policy link included: it is the site's own page, so it stays on the site too.
    elsewhere = [(el, attr, u) for el, attr, u in found if urlsplit(u)[:2] != ("http", "gate.test")]
    assert elsewhere == [], f"gate's markup resolves away from gate under {BASES[case]!r}"


@pytest.mark.parametrize(
    "conf,headers,origin",
    [
        ({"public_scheme": "https"}, {}, "https://gate.test"),
        (
            {"trusted": True},
            {"x-forwarded-proto": "https", "x-forwarded-host": "jobs.example.jp"},
            "https://jobs.example.jp",
        ),
        ({}, {"x-forwarded-proto": "https"}, "http://gate.test"),  # an untrusted peer's claim is not believed
    ],
    ids=["public_scheme", "trusted-forwarded", "untrusted-forwarded"],
)
async def test_injected_urls_carry_the_public_origin(conf, headers, origin):
    settings = gate_settings(ORIGIN)
    if conf.get("public_scheme"):
        settings = dataclasses.replace(settings, sites=(Site(upstream=ORIGIN, public_scheme="https"),))
    if conf.get("trusted"):
        settings = dataclasses.replace(settings, trusted_proxies=("203.0.113.0/24",))
    r = await gated(gate_app.create_app(settings), page("vendor-host"), headers=headers)
    found = injected_urls(r.content, origin + "/jobs/a?x=1")
    assert found and {urlsplit(u).scheme + "://" + urlsplit(u).netloc for _, _, u in found} == {origin}


async def test_the_banner_and_links_never_follow_a_base_target():
    r = await gated(gate_app.create_app(gate_settings(ORIGIN)), page("target-blank"))
    doc = html5lib.parse(r.content, treebuilder="etree")
    targets = {
        el.tag.removeprefix(HTML): el.get("target")
        for el in doc.iter()
        if isinstance(el.tag, str) and el.get("data-gate") is not None and el.tag.removeprefix(HTML) in ("form", "a")
    }
    assert targets == {"form": "_self", "a": "_self"}


# -- a <base> is a tag to judge ----------------------------------------------------------------------------
def bases_left(html: bytes) -> list[str]:
    doc = html5lib.parse(html, treebuilder="etree")
    return [el.get("href") for el in doc.iter(HTML + "base")]


EVERY_PURPOSE = sorted(REGISTRY.refusable)


@pytest.mark.parametrize(
    "decision,kept",
    [
        (None, False),
        (([], ()), False),
        ((EVERY_PURPOSE, ("facebook",)), False),
        ((EVERY_PURPOSE, ()), True),
    ],
    ids=["undecided", "reject-all", "all-but-meta", "accept-all"],
)
async def test_a_base_on_a_vendor_host_stays_only_while_that_vendor_is_accepted(decision, kept):
    app = gate_app.create_app(gate_settings(ORIGIN))
    r = await gated(app, page("vendor-host"), headers=cookie(app, *decision) if decision else None)
    assert bases_left(r.content) == (["https://connect.facebook.net/"] if kept else [])


def rewrite(html: str, allowed: frozenset[str]) -> tuple[bytes, PageRewriter]:
    rw = PageRewriter(PagePlan(REGISTRY, allowed, urls.parse("https://jobs.example.jp/jobs/1")))
    return rw.feed(html.encode()) + rw.close(), rw


def test_after_a_stripped_base_later_urls_resolve_against_the_base_the_browser_uses():
    # Meta's base goes; the browser then takes the next <base>, so the script is the CDN's own file.
    html = (
        '<html><head><base href="https://connect.facebook.net/"><base href="https://cdn.example.org/">'
        '<script src="en_US/fbevents.js"></script></head><body></body></html>'
    )
    out, rw = rewrite(html, frozenset())
    assert bases_left(out) == ["https://cdn.example.org/"]
    assert b'<script src="en_US/fbevents.js"></script>' in out and "facebook.pixel" in rw.outcome.stripped


def test_a_base_that_names_no_vendor_is_kept_byte_for_byte():
    html = '<html><head><base href="https://cdn.example.org/" target="_top"><title>t</title></head><body></body></html>'
    out, _ = rewrite(html, frozenset())
    assert b'<base href="https://cdn.example.org/" target="_top">' in out


def test_a_srcdoc_documents_own_base_is_read():
    # Inside an iframe's srcdoc, its own <base> rules its URLs. GA4 and Tag Manager accepted (so the
    # base on their host stays), Google Ads refused: its gtag.js is served from the same place.
    doc = "<base href='https://www.googletagmanager.com/gtag/'><script src='js?id=AW-123456'></script>"
    html = f'<html><head></head><body><iframe srcdoc="{doc}"></iframe></body></html>'
    out, rw = rewrite(html, frozenset({"google.analytics", "google.tag_manager"}))
    assert "google.ads" in rw.outcome.stripped
    assert b"AW-123456" not in out
