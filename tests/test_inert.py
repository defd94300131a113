"""Inert start tags (gate/inert.py): the scan passes a tag that can reach no host but the page's own
without reading it. Three claims: the C scan answers what the regex answers; wherever the fast path
is taken, a page comes out exactly as the full reading gives it (bytes and outcome), with undeclared
hosts stripped, allow lists, forms and <base>; and the tags that could reach another host are read."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gate import decisions, inert, rewrite, urls
from gate.rewrite import PagePlan, PageRewriter

from .conftest import policy_registry
from .corpus import CASES, SCRIPT_CASES
from .corpus import page as corpus_page

fastscan = pytest.importorskip("gate._fastscan", reason="the C extension is not built (no compiler at install)")
EXAMPLES = int(os.environ.get("GATE_HYPOTHESIS_EXAMPLES", "1500"))

# undeclared = "strip", with the site's CDN allowed: any third-party load but the CDN's is refused
REGISTRY = policy_registry().with_undeclared(["cdn.example.net"], strip=True)
ALL = frozenset(REGISTRY.tags)
BASE = urls.parse("https://jobs.example.jp/search?q=1")
EVIL = "evil.example"


# -- the scan in C equals its definition -----------------------------------------------------------

SCAN_PIECES = [
    "<img",
    "<IMG",
    "<source",
    "<video",
    "<audio",
    "<track",
    "<imgx",
    "<input",
    "<div",
    "<a",
    "</img",
    "<script",
    "<!--",
    "-->",
    "<",
    ">",
    "/",
    "/>",
    "=",
    '"',
    "'",
    " ",
    "\t",
    "\n",
    "\x00",
    "é",
    " src",
    " SRC",
    " srcset",
    " srcs",
    " poster",
    " href",
    " data",
    " data-src",
    " xlink:href",
    " action",
    " formaction",
    " background",
    " codebase",
    ' codebase="//',
    " onload",
    " on",
    " one",
    " style",
    " ping",
    " srcdoc",
    " content",
    " alt",
    " =x",
    "/photos/1.jpg",
    "photos/1.jpg",
    "//",
    "/",
    ":",
    "https:",
    "\\",
    "&#47;",
    "&",
    "%2F",
    " 1x,",
    "?q=1#f",
    "写真",
    "\x7f",
    "\x80",
]


@settings(max_examples=EXAMPLES * 2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(SCAN_PIECES), max_size=40), st.integers(min_value=0, max_value=5))
def test_c_inert_scan_equals_the_regex(parts, start):
    buf = "".join(parts).encode("utf-8")
    pos = min(start, len(buf))
    assert fastscan.inert_html(buf, pos) == inert.html_end_py(buf, pos)


BYTES = [bytes([c]) for c in b"/\"'> =:\\&%a1?#,\t\n"] + [b"\x00", b"\x80", b"\xff"]


@settings(max_examples=EXAMPLES * 2, deadline=None)
@given(
    st.sampled_from([b"<img src=", b'<img srcset="', b"<video poster='", b"<img alt=", b"<source src=/"]),
    st.lists(st.sampled_from(BYTES), max_size=60),
    st.binary(max_size=20),
)
def test_c_inert_scan_equals_the_regex_on_any_bytes_after_a_tag(tag, parts, tail):
    buf = tag + b"".join(parts) + tail
    assert fastscan.inert_html(buf, 0) == inert.html_end_py(buf, 0)


def test_c_inert_scan_equals_the_regex_at_every_stop_of_a_list_page():
    page = list_page(300)
    pos = stops = 0
    while pos < len(page):
        end = inert.html_end_py(page, pos)
        assert fastscan.inert_html(page, pos) == end
        pos, stops = end + 1, stops + 1
    assert stops < 40  # the 300 photos are not stops


# -- the fast path changes nothing ---------------------------------------------------------------


@contextmanager
def slow_path() -> Iterator[None]:
    """The rewriter as it was: every tag read, attributes parsed, URLs resolved, decided."""
    saved = inert.first_party
    inert.first_party = lambda *args: False
    try:
        yield
    finally:
        inert.first_party = saved


@contextmanager
def python_scan() -> Iterator[None]:
    saved = inert.html_end
    inert.html_end = inert.html_end_py
    try:
        yield
    finally:
        inert.html_end = saved


def run(page: bytes, plan: PagePlan, encoding: str = "utf-8", cuts: list[int] | None = None):
    rw = PageRewriter(plan, encoding)
    out, last = [], 0
    for cut in sorted(set(cuts or [])) + [len(page)]:
        out.append(rw.feed(page[last:cut]))
        last = cut
    out.append(rw.close())
    o = rw.outcome
    return b"".join(out), (o.kept, o.stripped, o.uncertain, o.personal_data, o.form_page, o.undeclared)


def same_both_ways(page: bytes, plan: PagePlan, encoding: str = "utf-8", cuts: list[int] | None = None) -> bytes:
    decisions.forget(REGISTRY)
    with slow_path():
        slow = run(page, plan, encoding)
    decisions.forget(REGISTRY)
    fast = run(page, plan, encoding, cuts)
    assert fast == slow
    with python_scan():
        assert run(page, plan, encoding, cuts) == slow
    return fast[0]


PLANS = {
    "refused": PagePlan(REGISTRY, frozenset(), BASE),
    "accepted": PagePlan(REGISTRY, ALL, BASE),
    "form readers": PagePlan(REGISTRY, ALL, BASE, form_readers=ALL),
    "personal data allowed": PagePlan(REGISTRY, frozenset({"facebook.pixel"}), BASE, personal_data_allowed=True),
}

HEAD = '<!doctype html><html><head><meta charset="utf-8"><title>求人</title></head><body>'
TAGS = [
    '<img src="/photos/1.jpg" alt="写真" width="240" loading="lazy">',
    '<img src="photos/2.jpg">',
    '<img src="?p=3#top">',
    "<img src=/photos/4.jpg>",
    '<img srcset="/a.jpg 1x, /a@2x.jpg 2x" src="/a.jpg">',
    '<picture><source srcset="/a.webp" type="image/webp"><img src="/a.jpg"></picture>',
    '<video poster="/p.jpg" src="/v.mp4"><track src="/t.vtt"></video>',
    '<audio src="/a.mp3"></audio>',
    f'<img src="//{EVIL}/x.gif">',
    f'<img src="https:{EVIL}/x.gif">',
    f'<img src="https://{EVIL}/x.gif">',
    f'<img src="/\\{EVIL}/x.gif">',
    f'<img src="\\\\{EVIL}/x.gif">',
    f'<img src="&#47;&#47;{EVIL}/x.gif">',
    f'<img src="/&#x2f;{EVIL}/x.gif">',
    f'<img src=" //{EVIL}/x.gif">',
    f'<img src="/\t/{EVIL}/x.gif">',
    f'<img src="/\n/{EVIL}/x.gif">',
    f'<img srcset="/a.jpg 1x, //{EVIL}/b.jpg 2x">',
    f'<img srcset="/a.jpg 1x,\n//{EVIL}/b.jpg 2x">',
    f'<img src="/a.jpg" src="//{EVIL}/b.gif">',
    f'<img data="//{EVIL}/d">',
    f'<video poster="//{EVIL}/p.jpg"></video>',
    f'<source src="//{EVIL}/s.mp4">',
    f'<track src="https://{EVIL}/t.vtt">',
    f'<audio src="//{EVIL}/a.mp3"></audio>',
    "<img src=\"/a.jpg\" onload=\"fbq('track','PageView')\">",
    "<img src=/a.jpg onerror=fbq('init','1')>",
    f'<img src="/a.jpg" style="background:url(//{EVIL}/bg.gif)">',
    f'<img src="/a.jpg" ping="//{EVIL}/p">',
    '<img src="/a.jpg" style="background:url(https://www.facebook.com/tr?id=1)">',
    '<img srcdoc="&lt;script src=//connect.facebook.net/x.js&gt;&lt;/script&gt;">',
    '<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">',
    "<img src=\"javascript:fbq('track','Lead')\">",
    '<img src="https://www.facebook.com/tr?id=1&amp;ev=PageView">',
    '<img src="//www.facebook.com/tr?id=1">',
    '<img src="https://cdn.example.net/a.jpg">',
    '<img src="https://img.jobs.example.jp/a.jpg">',
    '<input type="email" name="email">',
    '<input type="image" src="/go.png">',
    '<input name="applicant_phone">',
    "<form action=/apply>",
    '<button formaction="/x">送信</button>',
    '<textarea name="note">',
    "</textarea>",
    "<select>",
    "</select>",
    "<svg>",
    "</svg>",
    "<math><mi>",
    "</mi></math>",
    "<noscript>",
    "</noscript>",
    f'<base href="https://{EVIL}/">',
    f'<base href="//{EVIL}/">',
    '<base href="/sub/">',
    '<base href="https://jobs.example.jp/other/">',
    '<base href="http://jobs.example.jp/">',
    '<link rel="preconnect" href="/x">',
    '<meta http-equiv="refresh" content="0;url=/x">',
    '<script async src="https://www.googletagmanager.com/gtag/js?id=G-DEMO12345"></script>',
    "<script>fbq('init','100000000000001');</script>",
    '<iframe src="/frame.html"></iframe>',
    '<a href="/jobs/1">求人</a>',
    "<p>歯科衛生士</p>",
    "<!-- c -->",
    "<",
    '"',
    "'",
    "<a title='",
    "<template>",
    "</template>",
    "<style>",
    "</style>",
]


@pytest.mark.parametrize("plan", list(PLANS), ids=list(PLANS))
@pytest.mark.parametrize("tag", TAGS)
def test_each_tag_comes_out_as_the_full_reading_gives_it(tag, plan):
    page = (HEAD + f"<p>前</p>{tag}<p>後</p></body></html>").encode()
    same_both_ways(page, PLANS[plan])


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from(TAGS), min_size=1, max_size=12),
    st.sampled_from(list(PLANS)),
    st.lists(st.integers(min_value=0, max_value=2000), max_size=4),
)
def test_generated_pages_come_out_as_the_full_reading_gives_them(parts, plan, cuts):
    page = (HEAD + "".join(parts) + "</body></html>").encode()
    same_both_ways(page, PLANS[plan], cuts=[c for c in cuts if c < len(page)])


NAMES = ["img", "IMG", "source", "video", "audio", "track", "input", "iframe", "embed", "link", "image", "div"]
ATTR_NAMES = [
    "src",
    "SRC",
    "srcset",
    "poster",
    "href",
    "data",
    "background",
    "xlink:href",
    "action",
    "formaction",
    "codebase",
    "alt",
    "class",
    "data-src",
    "onload",
    "style",
    "ping",
    "srcdoc",
    "content",
    "type",
    "name",
]
VALUES = [
    "/p/1.jpg",
    "p/1.jpg",
    "/a b.jpg",
    "?q=a,b",
    "",
    f"//{EVIL}/x",
    f"/\\{EVIL}",
    f"https:{EVIL}",
    f"&#47;/{EVIL}",
    f" //{EVIL}",
    f"/\t/{EVIL}",
    f"\x01//{EVIL}",
    f"/a 1x, //{EVIL} 2x",
    "/a 1x, /b 2x",
    "javascript:fbq()",
    "fbq('track')",
    f"url(//{EVIL}/x)",
    "https://www.facebook.com/tr?id=1",
    "/tr?id=1&ev=PageView",
    "email",
    "写真",
    "%2F%2Fx",
]


@st.composite
def tags(draw) -> str:
    name = draw(st.sampled_from(NAMES))
    attrs = []
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        key, value = draw(st.sampled_from(ATTR_NAMES)), draw(st.sampled_from(VALUES))
        quote = draw(st.sampled_from(['"', "'", ""]))
        if not quote and any(c in value for c in " \t\n\"'>"):
            quote = '"'
        attrs.append(f" {key}={quote}{value.replace(quote, '') if quote else value}{quote}")
    return f"<{name}{''.join(attrs)}{draw(st.sampled_from(['', '/', ' /']))}>"


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(tags(), min_size=1, max_size=6), st.sampled_from(list(PLANS)), st.sampled_from(["utf-8", "cp932"]))
def test_generated_tags_come_out_as_the_full_reading_gives_them(parts, plan, encoding):
    page = (HEAD + "<div>" + "".join(parts) + "</div></body></html>").encode(encoding, "xmlcharrefreplace")
    same_both_ways(page, PLANS[plan], encoding)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tags())
def test_a_tag_the_scan_passes_is_one_the_full_reading_sends_unchanged(tag):
    """Every tag the fast path calls inert: read in full, under undeclared = "strip" with nothing
    allowed, it is sent byte for byte and counts for nothing (no tag, no undeclared host)."""
    raw = tag.encode()
    if inert.html_end(raw, 0) != len(raw):
        return
    page = HEAD.encode() + raw + b"<p>x</p>"
    with slow_path():
        decisions.forget(REGISTRY)
        out, outcome = run(page, PLANS["refused"])
    assert out == page
    assert outcome == (set(), set(), 0, set(), False, set())


CORPUS = {c.id: c.html for c in CASES} | {
    c.id: corpus_page(f'<img src="/photos/1.jpg"><script>{c.script}</script><img src="/photos/2.jpg">')
    for c in SCRIPT_CASES
}


@pytest.mark.parametrize("case", list(CORPUS))
@pytest.mark.parametrize("plan", ["refused", "accepted"])
def test_corpus_comes_out_as_the_full_reading_gives_it(case, plan):
    same_both_ways(CORPUS[case].encode(), PLANS[plan])


# -- what the fast path must never pass ------------------------------------------------------------

NOT_INERT = [
    f'<img src="//{EVIL}/x">',
    f'<img src="https:{EVIL}">',
    f'<img src="https://{EVIL}/x">',
    f'<img src="/\\{EVIL}">',
    f'<img src="&#47;&#47;{EVIL}/x">',
    f'<img src="/&sol;{EVIL}/x">',
    f'<img src=" //{EVIL}/x">',
    f'<img src="/\t/{EVIL}/x">',
    f'<img src="/\n/{EVIL}/x">',
    f'<img src="/\r/{EVIL}/x">',
    f'<img srcset="/a 1x, //{EVIL}/b 2x">',
    f'<img src="/a" src="//{EVIL}/b">',
    f'<img SRC="//{EVIL}/x">',
    f"<img src=//{EVIL}/x>",
    f'<video poster="//{EVIL}/p.jpg">',
    f'<source srcset="//{EVIL}/s.webp">',
    f'<img data="//{EVIL}/d">',
    f'<img src="/a" xlink:href="//{EVIL}/x">',
    "<img src=/a.jpg onload=\"fbq('init','1')\">",
    f'<img style="background:url(//{EVIL}/x)">',
    f'<img src="/a" ping="//{EVIL}/p">',
    '<img srcdoc="&lt;img src=//evil.example/x&gt;">',
    '<img src="javascript:fbq()">',
    '<img src="data:text/html,x">',
    '<input type="email" name="email">',
    '<input type="image" src="/go.png">',
    '<iframe src="/frame.html"></iframe>',
    '<link rel="preconnect" href="/x">',
    '<base href="/x/">',
    '<meta http-equiv="refresh" content="0;url=/x">',
    '<script src="/app.js"></script>',
    '<embed src="/x.swf">',
    '<object data="/x.swf"></object>',
    '<img src="/é.jpg">',
]


@pytest.mark.parametrize("tag", NOT_INERT)
def test_the_scan_stops_at_a_tag_that_could_reach_another_host(tag):
    raw = tag.encode()
    assert inert.html_end(raw, 0) == 0
    assert inert.html_end_py(raw, 0) == 0


# the <img> loads from the undeclared host (a duplicate src is not one: the first wins)
# ("https:evil.example" is not one: under an https base it is the relative path "evil.example")
STRIPPED = [t for t in NOT_INERT[:18] if t.startswith("<img") and 'src="/a"' not in t and "https:e" not in t]


@pytest.mark.parametrize("tag", STRIPPED)
def test_a_photo_on_another_host_is_stripped_between_first_party_photos(tag):
    """What a visitor gets: among a list page's own photos, one that loads from an undeclared host is
    gone (undeclared = "strip"), and every own photo is still there."""
    photos = "".join(f'<img src="/photos/{i}.jpg" alt="写真{i}">' for i in range(20))
    page = (HEAD + photos + tag + photos + "</body></html>").encode()
    decisions.forget(REGISTRY)
    out, outcome = run(page, PLANS["refused"])
    assert EVIL.encode() not in out
    assert out.count(b'<img src="/photos/') == 40
    assert outcome[5] == {EVIL}


def test_after_a_third_party_base_relative_photos_are_read_and_stripped():
    """<base href> on another host sends every relative photo there: none may pass unread."""
    page = (HEAD + f'<base href="https://{EVIL}/"><img src="/photos/1.jpg"><img src="photos/2.jpg"><p>x</p>').encode()
    decisions.forget(REGISTRY)
    out, outcome = run(page, PLANS["refused"])
    assert b"photos" not in out
    assert outcome[5] == {EVIL}
    assert out == same_both_ways(page, PLANS["refused"])


def test_after_a_first_party_base_photos_still_pass(monkeypatch):
    decided = count_decisions(monkeypatch)
    page = (HEAD + '<base href="https://jobs.example.jp/area/"><img src="photos/1.jpg"><p>x</p>').encode()
    decisions.forget(REGISTRY)
    out, _ = run(page, PLANS["refused"])
    assert b'<img src="photos/1.jpg">' in out
    assert not [raw for raw in decided if b"photos" in raw]
    assert out == same_both_ways(page, PLANS["refused"])


def test_on_a_vendors_own_host_relative_urls_are_read():
    """A page served on a host a vendor declares: its relative URLs are that vendor's."""
    plan = PagePlan(REGISTRY, frozenset(), urls.parse("https://www.facebook.com/careers"))
    page = (HEAD + '<img src="/tr?id=1" alt="x"><img src="/photos/1.jpg"><p>x</p>').encode()
    out = same_both_ways(page, plan)
    assert b"/tr?id=1" not in out
    assert b"/photos/1.jpg" not in out  # the whole host is the vendor's


def test_inside_svg_and_inside_a_frame_document_tags_are_read():
    """Foreign content and nested documents (srcdoc, noscript's other reading) never take the fast
    path: there an element's tags change the reading, or a remembered decision must know the base."""
    page = (
        HEAD + f'<svg><video src="/a"></video><image href="//{EVIL}/x"/></svg>'
        f'<iframe srcdoc="&lt;base href=https://{EVIL}/&gt;&lt;img src=/photos/1.jpg&gt;"></iframe>'
        f'<noscript><img src="/photos/2.jpg"></noscript><p>x</p>'
    ).encode()
    out = same_both_ways(page, PLANS["refused"])
    assert f"//{EVIL}/x".encode() not in out
    assert b"photos/1.jpg" not in out
    assert b'<noscript><img src="/photos/2.jpg"></noscript>' in out


# -- what the fast path is for ---------------------------------------------------------------------


def list_page(cards: int) -> bytes:
    body = "".join(
        f'<li><a href="/jobs/{n}"><img src="/photos/{n}.jpg" srcset="/photos/{n}.jpg 1x, /photos/{n}@2x.jpg 2x" '
        f'alt="医院の写真" width="240" height="160" loading="lazy"></a><h2>歯科衛生士 {n}</h2></li>\n'
        for n in range(cards)
    )
    head = (
        '<!doctype html><html><head><meta charset="utf-8">'
        '<script async src="https://www.googletagmanager.com/gtag/js?id=G-DEMO12345"></script></head><body><ul>'
    )
    return (head + body + "</ul></body></html>").encode()


def count_decisions(monkeypatch) -> list[bytes]:
    """The tags the rewriter decides one by one, from now on."""
    decided: list[bytes] = []
    real = rewrite.PageRewriter._decide_tag

    def counting(self, buf, tag, attrs):
        decided.append(bytes(buf[tag.start : tag.end]))
        return real(self, buf, tag, attrs)

    monkeypatch.setattr(rewrite.PageRewriter, "_decide_tag", counting)
    return decided


def test_a_list_pages_own_photos_are_not_decided_one_by_one(monkeypatch):
    """300 distinct first-party photos: none is parsed or decided (each used to cost an attribute
    parse, URL parses and a decision); the page is sent as the full reading sends it."""
    decided = count_decisions(monkeypatch)
    page = list_page(300)
    decisions.forget(REGISTRY)
    out, outcome = run(page, PLANS["refused"])
    assert outcome[1] == {"google.analytics"}
    assert not [raw for raw in decided if b"/photos/" in raw]
    assert out == page.replace(
        b'<script async src="https://www.googletagmanager.com/gtag/js?id=G-DEMO12345"></script>', b""
    )


def test_a_remembered_decision_inside_an_element_knows_it_read_the_base():
    """A worker remembers a srcdoc's decision across pages. Read first on a page without
    <base>, the same element after a third-party <base> must still send its photo nowhere: the
    remembered decision is keyed by the base it resolved against (the fast path never reads inside)."""
    element = '<iframe srcdoc="&lt;img src=/photos/1.jpg&gt;"></iframe>'
    decisions.forget(REGISTRY)
    first = (HEAD + element + "<p>x</p>").encode()
    out, _ = run(first, PLANS["refused"])
    assert b"photos/1.jpg" in out
    second = (HEAD + f'<base href="https://{EVIL}/">' + element + "<p>x</p>").encode()
    out, outcome = run(second, PLANS["refused"])  # the caches as the first page left them
    assert b"photos/1.jpg" not in out
    assert EVIL in outcome[5]
