"""Differential property tests: generated pages mixing vendor tags, first-party tags and the tricky
constructs, judged by html5lib. Run a long campaign with:
    GATE_HYPOTHESIS_EXAMPLES=200000 python -m pytest tests/test_properties.py -p no:cacheprovider
"""

from __future__ import annotations

import contextlib
import os

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gate import urls
from gate.rewrite import PagePlan, PageRewriter

from . import scans
from .conftest import policy_registry
from .judge import live_tags

REGISTRY = policy_registry()
ALL = frozenset(REGISTRY.tags)
BASE = urls.parse("https://jobs.example.jp/")
EXAMPLES = int(os.environ.get("GATE_HYPOTHESIS_EXAMPLES", "1500"))

VENDOR = [
    '<script async src="https://www.googletagmanager.com/gtag/js?id=G-DEMO12345"></script>',
    "<script>gtag('config','G-DEMO12345');</script>",
    "<script>gtag('event','conversion',{'send_to':'AW-100000001/x'});</script>",
    '<script src="https://www.googletagmanager.com/gtm.js?id=GTM-DEMO123"></script>',
    '<noscript><iframe src="https://www.googletagmanager.com/ns.html?id=GTM-DEMO123"></iframe></noscript>',
    '<script async src="https://s.yimg.jp/images/listing/tool/cv/ytag.js"></script>',
    '<script src="//dynamic.criteo.com/js/ld/ld.js?a=10001"></script>',
    "<script>Adjust.initSdk({appToken:'demo00000001'});</script>",
    "<script>!function(f){if(f.fbq)return;}(window);fbq('init','100000000000001');</script>",
    '<img src="https://www.facebook.com/tr?id=1&amp;ev=PageView&amp;noscript=1">',
    '<noscript><img src="https://www.facebook.com/tr?id=1&ev=PageView&noscript=1"></noscript>',
    '<link rel=preload as=script href="https://connect.facebook.net/en_US/fbevents.js">',
    "<div onclick=\"fbq('init','1')\">x</div>",
    '<iframe srcdoc="&lt;script src=//connect.facebook.net/x.js&gt;&lt;/script&gt;"></iframe>',
    '<svg><script href="https://connect.facebook.net/en_US/fbevents.js"/></svg>',
    '<img srcset="/a.png 1x, //www.facebook.com/tr?x 2x" src="/a.png">',
    '<div style="background:url(//www.facebook.com/tr?y)">y</div>',
    '<a href="/x" ping="https://www.facebook.com/tr?p">x</a>',
    "<script><!--\nfbq('track','Lead');\n//--></script>",
    "<script>window.Adjust.trackEvent({eventToken:'abc123'});</script>",
    '<script>criteo_q.push({event:"viewItem",item:"1"});</script>',
    "<script>var AW='AW-100000001';gtag('config',AW);</script>",
]
FIRST_PARTY = [
    '<script src="/app.js"></script>',
    "<script>var x = 1 < 2 && '</div>';</script>",
    '<img src="/logo.png" alt="ロゴ">',
    '<a href="/jobs/1">求人 1</a>',
    '<link rel=stylesheet href="/site.css">',
    "<p>歯科衛生士の求人</p>",
    '<div class="card" data-x="a>b">カード</div>',
    "<style>p{color:#333}</style>",
    '<a href="https://www.facebook.com/dentalcareer">Facebook</a>',
    "<br/>",
    "text & more < less",
]
TRICKY = [
    "<!--",
    "-->",
    "<!-->",
    "--!>",
    "<textarea>",
    "</textarea>",
    "<title>",
    "</title>",
    "<style>",
    "</style>",
    "<script>",
    "</script>",
    "<!--<script>",
    "<svg>",
    "</svg>",
    "<math><mi>",
    "</mi></math>",
    "<template>",
    "</template>",
    "<noscript>",
    "</noscript>",
    "<select>",
    "</select>",
    "<![CDATA[",
    "]]>",
    "<xmp>",
    "</xmp>",
    "<iframe>",
    "</iframe>",
    "</p>",
    "<p>",
    "'",
    '"',
    ">",
    "<",
    "<a title='",
    "<!x",
    "<?",
    "</ x>",
    "&amp;",
    "<base href=/x/>",
]
pieces = st.lists(
    st.one_of(st.sampled_from(VENDOR), st.sampled_from(FIRST_PARTY), st.sampled_from(TRICKY)), min_size=1, max_size=14
)
consents = st.frozensets(st.sampled_from(sorted(ALL)))


def scanning(kind: str) -> contextlib.AbstractContextManager[None]:
    return scans.scanning(kind, REGISTRY)


SCANS = scans.SCANS


def foreign_inside_select(parts: list[str]) -> bool:
    """Does an <svg> or <math> open inside an open <select>? There the judge is wrong, not gate: html5lib
    follows the older select parsing (foreign elements dropped, a <script href/> in them becomes an HTML
    script whose text runs to the end of the page), where Chromium 156 keeps the SVG and loads nothing
    (checked in Chromium; see the closing note of 2026-12-04). Until tests/judge.py parses <select> as
    Chromium does, these pages are left out of the judge's property test only; the others still run."""
    open_select = False
    for part in parts:
        if open_select and ("<svg" in part or "<math" in part):
            return True
        if "<select>" in part:
            open_select = True
        if "</select>" in part:
            open_select = False
    return False


def rewrite(html: bytes, allowed: frozenset[str], cuts: list[int] | None = None) -> bytes:
    rw = PageRewriter(PagePlan(REGISTRY, allowed, BASE))
    if not cuts:
        return rw.feed(html) + rw.close()
    out, last = [], 0
    for c in sorted(set(cuts)) + [len(html)]:
        out.append(rw.feed(html[last:c]))
        last = c
    return b"".join(out) + rw.close()


def build(parts: list[str]) -> bytes:
    return ("<!DOCTYPE html><html><head><meta charset=utf-8></head><body>" + "".join(parts) + "</body></html>").encode()


common = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SCANS
@common
@given(parts=pieces, allowed=consents)
def test_no_refused_tag_is_live_in_the_output(scan, parts, allowed):
    assume(not foreign_inside_select(parts))
    html = build(parts)
    refused = ALL - allowed
    with scanning(scan):
        leaked = live_tags(rewrite(html, allowed), REGISTRY) & refused
    assert not leaked, (html, leaked)


@SCANS
@common
@given(parts=pieces)
def test_everything_accepted_is_byte_identical(scan, parts):
    html = build(parts)
    with scanning(scan):
        assert rewrite(html, ALL) == html


@SCANS
@common
@given(parts=pieces, allowed=consents, cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=8))
def test_chunk_boundaries_do_not_matter(scan, parts, allowed, cuts):
    html = build(parts)
    cuts = [c % (len(html) + 1) for c in cuts]
    with scanning(scan):
        assert rewrite(html, allowed, cuts) == rewrite(html, allowed)


def test_every_split_point_of_a_small_page():
    html = build(VENDOR[:4] + FIRST_PARTY[:3] + ["<!-- x -->", "<svg><style>a</style></svg>"])
    allowed = frozenset({"google.analytics"})
    whole = rewrite(html, allowed)
    for i in range(len(html) + 1):
        assert rewrite(html, allowed, [i]) == whole, i


@SCANS
def test_hypothesis_case_svg_math_mi_textarea_script(scan):
    """Found by test_no_refused_tag_is_live_in_the_output: inside <svg>, <math><mi> are SVG elements
    (no integration point), so <textarea> is not RCDATA and the script after it is markup. gate read
    it as textarea text and kept it; html5lib (and Chromium: svg:math > svg:mi > svg:textarea) do not."""
    parts = ["<svg>", "<math><mi>", "<textarea>", VENDOR[0]]
    html = build(parts)
    with scanning(scan):
        out = rewrite(html, frozenset())
    assert "google.analytics" in live_tags(html, REGISTRY)
    assert not live_tags(out, REGISTRY)
